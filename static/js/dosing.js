// Dosing help (issue #8): "Use this dose" copies the computed dose into the
// drug's Edit form, opens it and puts the focus on the dose, so the nurse
// checks it and taps Save changes. It never saves. Without JavaScript the
// button submits its GET form instead, and the server shows the Edit form
// with the dose filled in (charting/views_clinical.py dosing_help).
(function () {
  "use strict";
  // A drug card redrawn by a tap (htmx) does not know the vitals: fill an
  // empty Weight of its Dosing help from the vitals section's latest weight.
  function prefillWeight() {
    var vitals = document.getElementById("vitals");
    var weight = vitals && vitals.dataset.latestWeightKg;
    if (!weight) return;
    document.querySelectorAll(".dosing-help input[name='weight_kg']").forEach(function (input) {
      if (!input.value) input.value = weight;
    });
  }
  document.addEventListener("DOMContentLoaded", prefillWeight);
  document.addEventListener("htmx:afterSettle", prefillWeight);

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-dosing-use]");
    if (!button) return;
    var field = document.getElementById(button.dataset.doseField);
    if (!field) return; // no Edit form on this page: let the form go to the server
    event.preventDefault();
    field.value = button.dataset.dose;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    var unit = document.getElementById(button.dataset.unitField);
    if (unit) {
      unit.value = "mg";
      unit.dispatchEvent(new Event("change", { bubbles: true }));
    }
    var details = document.getElementById(button.dataset.details);
    if (details) details.open = true;
    field.scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
  });
})();
