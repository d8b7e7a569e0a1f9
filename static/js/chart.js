// The nurse's encounter page (templates/charting/encounter.html). No inline
// scripts or styles (CSP): everything the page needs is in data-* attributes.
(function () {
  "use strict";

  // --- Fix links -------------------------------------------------------------
  // The "ready to bill" panel's fix links name the input that closes the gap
  // (charting/checks.py, *_FIELD_ANCHORS). Land there: open the <details> the
  // input sits in, bring it to the middle of the screen and focus it, so the
  // nurse types straight away. The same link tapped twice makes no hashchange,
  // hence the click listener.
  function land() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (!el) return;
    for (var d = el.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
      d.open = true;
    }
    el.scrollIntoView({ block: "center" });
    if (el.matches("input, select, textarea")) el.focus({ preventScroll: true });
    // Whatever still moves the page after this (the panel re-reading itself,
    // a late style), the field ends on screen.
    window.setTimeout(function () {
      var box = el.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) el.scrollIntoView({ block: "center" });
    }, 300);
  }
  window.addEventListener("hashchange", land);
  document.addEventListener("DOMContentLoaded", land);
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href*='#']");
    if (link && link.pathname === window.location.pathname && link.hash === window.location.hash) {
      window.setTimeout(land, 0);
    }
  });

  // --- Server time -------------------------------------------------------------
  // Every element with data-server-now was rendered at that server instant
  // (epoch ms). The first time the script sees it, it notes the difference to
  // the tablet's clock, so a tablet whose clock is off still counts right.
  function serverNow(el) {
    if (!el.dataset.clockOffset) {
      el.dataset.clockOffset = String(Number(el.dataset.serverNow || Date.now()) - Date.now());
    }
    return Date.now() + Number(el.dataset.clockOffset);
  }
  function num(value) {
    return value === undefined || value === "" ? null : Number(value);
  }
  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  // --- Live drip-to-drip timer and the next billing threshold ------------------
  // data-started / -stopped / -paused-since: epoch ms from the server;
  // data-paused-ms: the closed pauses; data-thresholds: "code:minute ..." from
  // coding.engine.thresholds (the server's rules; nothing is computed here).
  function tickTimer(el) {
    var started = num(el.dataset.started);
    if (started === null) return;
    var now = serverNow(el);
    var end = num(el.dataset.stopped);
    if (end === null) end = now;
    var pausedSince = num(el.dataset.pausedSince);
    var paused = Number(el.dataset.pausedMs || 0) + (pausedSince !== null ? Math.max(0, end - pausedSince) : 0);
    var seconds = Math.max(0, Math.floor((end - started - paused) / 1000));
    var minutes = Math.floor(seconds / 60);
    var clock = el.querySelector("[data-timer-clock]");
    if (clock) clock.textContent = minutes + ":" + pad(seconds % 60) + " min";
    var card = el.closest(".administration");
    var minutesCell = card && card.querySelector("[data-timer-minutes]");
    if (minutesCell) minutesCell.textContent = String(minutes);
    var text = el.querySelector("[data-threshold-text]");
    if (!text) return;
    var next = (el.dataset.thresholds || "").split(" ").filter(Boolean).map(function (pair) {
      var parts = pair.split(":");
      return { code: parts[0], minute: Number(parts[1]) };
    }).filter(function (t) { return t.minute > minutes; })[0];
    text.textContent = next ? next.code + " at " + next.minute + " min — " + (next.minute - minutes) + " min to go" : "";
  }

  // --- Undo: the button goes away when the server's window has passed --------
  // Hidden in place (visibility), not removed: nothing below it moves, so a
  // field the nurse was just brought to stays where it is.
  function tickUndo(form) {
    if (serverNow(form) > Number(form.dataset.undoUntil)) {
      form.classList.add("invisible");
      form.setAttribute("aria-hidden", "true");
    }
  }

  // --- Access site checks: "checked N min ago", "check due" -----------------
  function tickSite(el) {
    var now = serverNow(el);
    var minutes = Math.max(0, Math.floor((now - Number(el.dataset.checkedAt)) / 60000));
    var text = el.querySelector("[data-checked-text]");
    if (text && el.dataset.checked) text.textContent = "checked " + minutes + " min ago";
    var due = el.querySelector("[data-check-due]");
    if (due) due.classList.toggle("d-none", now - Number(el.dataset.checkedAt) <= Number(el.dataset.checkEvery) * 60000);
  }

  function tick() {
    document.querySelectorAll("[data-live-timer]").forEach(tickTimer);
    document.querySelectorAll("form[data-undo-until]:not(.invisible)").forEach(tickUndo);
    document.querySelectorAll("[data-site-check]").forEach(tickSite);
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSettle", tick);

  // --- Idempotency keys and retries (RELIABILITY CON-2) ----------------------
  // Each tap gets a new key; a retry of that tap (after a network error or a
  // timeout, or the nurse tapping again before any answer came) sends the SAME
  // key, so the server writes once and answers with the current card.
  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function keyInput(elt) {
    var form = elt && (elt.tagName === "FORM" ? elt : elt.closest && elt.closest("form"));
    return form ? form.querySelector("input[data-tap-key]") : null;
  }
  var banner = function () { return document.querySelector("[data-connection-banner]"); };
  function showBanner(show) {
    var b = banner();
    if (b) b.classList.toggle("d-none", !show);
  }
  var MAX_RETRIES = 5;

  document.addEventListener("htmx:configRequest", function (event) {
    var input = keyInput(event.detail.elt);
    if (!input) return;
    var form = input.form;
    if (form.dataset.awaiting !== "1") {
      input.value = newKey();
      form.dataset.awaiting = "1";
      form.dataset.retries = "0";
    }
    event.detail.parameters[input.name] = input.value;
    event.detail.headers["Idempotency-Key"] = input.value;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || !xhr.status) return; // no answer: sendError / timeout below
    var input = keyInput(event.detail.elt);
    if (input) delete input.form.dataset.awaiting;
    if (navigator.onLine !== false) showBanner(false);
  });

  function retry(event) {
    var input = keyInput(event.detail.elt);
    showBanner(true);
    if (!input) return;
    var form = input.form;
    var tries = Number(form.dataset.retries || 0);
    if (tries >= MAX_RETRIES) return; // the key stays: the nurse's next tap is the same tap
    form.dataset.retries = String(tries + 1);
    window.setTimeout(function () {
      if (document.body.contains(form)) window.htmx.trigger(form, "submit");
    }, 1000 * Math.pow(2, tries));
  }
  document.addEventListener("htmx:sendError", retry);
  document.addEventListener("htmx:timeout", retry);
  window.addEventListener("offline", function () { showBanner(true); });
  window.addEventListener("online", function () { showBanner(false); });
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx && !window.htmx.config.timeout) window.htmx.config.timeout = 20000;
    if (navigator.onLine === false) showBanner(true);
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
