// The gatekeeper dashboard's enhancements: the flag search narrows the list as you type (when the whole list
// is on the page), and the list's filter menus apply when changed. Without JavaScript the same box submits
// ?q= and the server searches; the menus apply with their button.
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
      // As the server searches: every word somewhere in the name, description, owner or tags.
      var words = needle.split(/\s+/).filter(Boolean);
      var shown = 0;
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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-gk-filter]").forEach(setUpFilter);
    document.querySelectorAll("select[data-gk-autosubmit]").forEach(setUpAutosubmit);
  });
})();
