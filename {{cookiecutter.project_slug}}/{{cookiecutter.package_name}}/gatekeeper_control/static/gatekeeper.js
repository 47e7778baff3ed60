// The gatekeeper dashboard's enhancements; every page works without them:
// - the flag search narrows the list as you type when the whole list is on the page (without JavaScript the
//   box submits ?q= and the server searches), and the list's filter menus apply when changed;
// - the rollout form shows the rest variant's share as you type (without it, the server works it out);
// - forms that change what every user sees ask once more in a dialog (the required box stays the rule);
// - the exposure chart shows an hour's counts as text when it is focused or pointed at.
(function () {
  "use strict";

  function setUpFilter(input) {
    var table = document.querySelector(input.getAttribute("data-gk-filter"));
    if (!table) {
      return;
    }
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-gk-search]"));
    var count = document.querySelector("[data-gk-count]");
    var empty = document.querySelector("[data-gk-empty]");
    // The server's count of every flag: after ?q= the page holds only the matches, not the total.
    var total = count && count.hasAttribute("data-gk-total") ? count.getAttribute("data-gk-total") : rows.length;

    function apply() {
      var needle = input.value.trim().toLowerCase();
      var shown = 0;
      // As the server searches: every word somewhere in the name, description, owner or tags.
      var words = needle.split(/\s+/).filter(Boolean);
      rows.forEach(function (row) {
        var text = row.getAttribute("data-gk-search");
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !match;
        if (match) {
          shown += 1;
        }
      });
      if (count) {
        count.textContent = needle ? shown + " of " + total + " flags shown." : total + " flags.";
      }
      if (empty) {
        empty.hidden = shown !== 0;
      }
    }

    input.addEventListener("input", apply);
    // "/" focuses the filter, as in most developer tools.
    document.addEventListener("keydown", function (event) {
      var typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (event.key === "/" && !typing) {
        event.preventDefault();
        input.focus();
      }
    });
  }

  function setUpAutosubmit(select) {
    select.addEventListener("change", function () {
      var form = select.form;
      if (form) {
        form.submit();
      }
    });
  }

  function setUpShares(form) {
    var inputs = Array.prototype.slice.call(form.querySelectorAll("input[data-gk-share]"));
    var rest = form.querySelector("output[data-gk-rest]");
    if (!rest) {
      return;
    }
    function apply() {
      var total = 0;
      var valid = inputs.every(function (input) {
        var text = input.value.trim().replace(/%$/, "");
        var share = text === "" ? 0 : Number(text);
        total += share;
        return isFinite(share) && share >= 0 && share <= 100;
      });
      var left = Math.round((100 - total) * 100) / 100;
      rest.textContent = valid && left >= 0 ? String(left) : "?";
      rest.classList.toggle("gk-rest-invalid", !(valid && left >= 0));
    }
    inputs.forEach(function (input) {
      input.addEventListener("input", apply);
    });
  }

  function setUpConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-gk-confirm"))) {
        event.preventDefault();
      }
    });
  }

  // One Tab stop for the chart's 24 hours (the newest); the arrow keys move between them.
  function setUpChart(chart) {
    var readout = chart.parentNode.querySelector("[data-gk-readout]");
    var hours = Array.prototype.slice.call(chart.querySelectorAll("[data-gk-hour]"));
    hours.forEach(function (hour, index) {
      hour.setAttribute("tabindex", index === hours.length - 1 ? "0" : "-1");
      function show() {
        if (readout) {
          readout.textContent = hour.getAttribute("data-gk-hour");
        }
      }
      hour.addEventListener("focus", show);
      hour.addEventListener("mouseenter", show);
      hour.addEventListener("keydown", function (event) {
        var step = { ArrowLeft: -1, ArrowRight: 1, Home: -index, End: hours.length - 1 - index }[event.key];
        var next = step === undefined ? null : hours[index + step];
        if (next) {
          event.preventDefault();
          hour.setAttribute("tabindex", "-1");
          next.setAttribute("tabindex", "0");
          next.focus();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-gk-filter]").forEach(setUpFilter);
    document.querySelectorAll("select[data-gk-autosubmit]").forEach(setUpAutosubmit);
    document.querySelectorAll("form[data-gk-shares]").forEach(setUpShares);
    document.querySelectorAll("form[data-gk-confirm]").forEach(setUpConfirm);
    document.querySelectorAll("[data-gk-chart]").forEach(setUpChart);
  });
})();
