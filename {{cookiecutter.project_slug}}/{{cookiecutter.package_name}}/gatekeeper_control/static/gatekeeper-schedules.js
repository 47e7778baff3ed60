// Schedule forms: read the date-time input in the viewer's time zone, and show only the fields the chosen
// change needs. Without JavaScript every field shows, and the time is read in UTC (the form says so).
(function () {
  "use strict";

  function zoneName(minutesBehindUtc) {
    var east = -minutesBehindUtc;
    var sign = east < 0 ? "-" : "+";
    var hours = Math.floor(Math.abs(east) / 60);
    var minutes = Math.abs(east) % 60;
    return "UTC" + sign + (hours < 10 ? "0" : "") + hours + ":" + (minutes < 10 ? "0" : "") + minutes;
  }

  function setUpForm(form) {
    var offset = form.querySelector("[data-gk-tz-offset]");
    var action = form.querySelector("[data-gk-action]");
    var zones = form.querySelectorAll("[data-gk-zone]");
    var times = form.querySelectorAll("input[type=datetime-local]");

    function fillOffset() {
      // The offset of the chosen date itself, so a time across a daylight-saving change is read right.
      var first = times.length && times[0].value ? new Date(times[0].value) : new Date();
      var minutes = isNaN(first.getTime()) ? new Date().getTimezoneOffset() : first.getTimezoneOffset();
      if (offset) {
        offset.value = String(minutes);
      }
      Array.prototype.forEach.call(zones, function (zone) {
        zone.textContent = "in your time zone (" + zoneName(minutes) + ")";
      });
    }

    function showNeeded() {
      if (!action) {
        return;
      }
      Array.prototype.forEach.call(form.querySelectorAll("[data-gk-needs]"), function (part) {
        var needed = part.getAttribute("data-gk-needs").split(" ").indexOf(action.value) !== -1;
        part.hidden = !needed;
        Array.prototype.forEach.call(part.querySelectorAll("input, select"), function (field) {
          field.disabled = !needed;
        });
      });
      Array.prototype.forEach.call(form.querySelectorAll(".gk-schedule-hint"), function (hint) {
        hint.hidden = true;
      });
    }

    fillOffset();
    showNeeded();
    Array.prototype.forEach.call(times, function (input) {
      input.addEventListener("change", fillOffset);
    });
    if (action) {
      action.addEventListener("change", showNeeded);
    }
    form.addEventListener("submit", fillOffset);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-gk-schedule-form]"), setUpForm);
})();
