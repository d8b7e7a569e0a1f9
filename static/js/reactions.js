// The Reaction form ticks the drugs that were running when the page was
// drawn. A drug card's Start or Stop tap swaps only that card (htmx), so keep
// the tick of that drug in step with its card: ticked while it runs or is
// paused, unticked once stopped. A tick the nurse changed by hand stays until
// that drug's card changes state again. The server pauses only a ticked drug
// that is running when the form is saved (charting/clinical.py).
(function () {
  "use strict";
  var known = {};
  function sync() {
    document.querySelectorAll("article.administration[id^='adm-']").forEach(function (card) {
      var pk = card.id.slice(4);
      var state = card.dataset.state;
      if (known[pk] === state) return;
      var first = !(pk in known);
      known[pk] = state;
      if (first) return; // the server ticked it already
      var box = document.querySelector("input[name='reaction-administrations'][value='" + pk + "']");
      if (box) box.checked = state === "running" || state === "paused";
    });
  }
  document.addEventListener("DOMContentLoaded", sync);
  document.addEventListener("htmx:afterSettle", sync);
})();
