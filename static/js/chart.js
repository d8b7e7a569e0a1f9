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

// Keyboard: a tap swaps the card it was made in (Start becomes Pause and Stop,
// a saved form comes back as a new card), and the focused button goes with the
// old card. htmx keeps the focus only on an element with the same id in the
// new content; without one the focus would drop to the top of the page and
// Tab would start over. Keep it on the swapped card instead (WCAG 2.4.3), so
// a screen reader reads the new state and Tab goes on from there.
(function () {
  "use strict";
  var pending = null;  // the id of the region that held the focus when its request left
  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.target;
    if (target && target.id && target.contains(document.activeElement)) pending = target.id;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;  // for an outerHTML swap: the old element, its id still readable
    if (!pending || !target || target.id !== pending) return;
    var region = document.getElementById(pending);
    pending = null;
    var active = document.activeElement;
    if (!region || (active && active !== document.body && document.contains(active))) return;
    if (!region.hasAttribute("tabindex")) region.setAttribute("tabindex", "-1");
    region.focus({ preventScroll: true });
  });
})();
