// The "ready to bill" panel's fix links name the input that closes the gap
// (charting/checks.py, *_FIELD_ANCHORS). Land there: open the <details> the
// input sits in, bring it to the middle of the screen and focus it, so the
// nurse types straight away. The same link tapped twice makes no hashchange,
// hence the click listener.
(function () {
  "use strict";
  function land() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (!el) return;
    for (var d = el.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
      d.open = true;
    }
    el.scrollIntoView({ block: "center" });
    if (el.matches("input, select, textarea")) el.focus({ preventScroll: true });
  }
  window.addEventListener("hashchange", land);
  document.addEventListener("DOMContentLoaded", land);
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href*='#']");
    if (link && link.pathname === window.location.pathname && link.hash === window.location.hash) {
      window.setTimeout(land, 0);
    }
  });
})();
