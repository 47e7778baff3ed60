// The gatekeeper dashboard's one enhancement: the flag filter narrows the list as you type.
// Without JavaScript the same box submits ?q= and the server filters.
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
      rows.forEach(function (row) {
        var match = !needle || row.getAttribute("data-gk-search").indexOf(needle) !== -1;
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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-gk-filter]").forEach(setUpFilter);
  });
})();
