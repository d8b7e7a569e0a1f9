// Barcode scanning on the encounter page (issue #8, templates/charting/_scan.html).
//
// A handheld scanner in keyboard mode "types" the barcode, then Enter; Enter
// submits the scan's own form (htmx posts it, or the browser without
// JavaScript). This file only helps around that:
// - GS1 barcodes separate fields with FNC1, which a scanner sends as the
//   ASCII group separator (29). A keyboard cannot type it: scanners emulate
//   it as Ctrl+], which a browser ignores, so it is put into the scan field.
// - After a scan, focus goes where the nurse continues: back to the scan
//   field after a refusal (scan again), else to the first empty field of the
//   Vials form, else its Save button.
(function () {
  "use strict";
  var GS = String.fromCharCode(29);

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.classList.contains("scan-input")) return;
    if (event.ctrlKey && (event.key === "]" || event.code === "BracketRight")) {
      event.preventDefault();
      var start = input.selectionStart === null ? input.value.length : input.selectionStart;
      var end = input.selectionEnd === null ? start : input.selectionEnd;
      input.setRangeText(GS, start, end, "end");
    }
  });

  function focusAfterVialScan(entry) {
    var result = entry.querySelector(".scan-result");
    var scanField = entry.querySelector(".scan-input");
    if (!result || result.getAttribute("data-level") === "danger") {
      if (scanField) scanField.focus();
      return;
    }
    var vialForm = entry.querySelector("form:not(.vial-scan)");
    if (!vialForm) return;
    var fields = vialForm.querySelectorAll("input:not([type=hidden]), select");
    for (var i = 0; i < fields.length; i++) {
      if (!fields[i].value) {
        fields[i].focus();
        return;
      }
    }
    var save = vialForm.querySelector("button[type=submit]");
    if (save) save.focus();
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || !target.id) return;
    // outerHTML swaps replace the target: look it up again by its id.
    var swapped = document.getElementById(target.id);
    if (!swapped) return;
    if (swapped.id.indexOf("vial-entry-") === 0) {
      focusAfterVialScan(swapped);
    } else if (swapped.id === "wristband" && swapped.querySelector("[data-testid=wristband-error]")) {
      var field = swapped.querySelector(".scan-input");
      if (field) field.focus();
    }
  });
})();
