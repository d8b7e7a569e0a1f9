"""import_scenarios, and the acceptance check: database path = pure path.

For every scenario of tests/scenarios/*.json, importing it (patient, encounter,
sites, administrations, pauses, services), signing it and running
`suggest_for_encounter` must give the same lines as `evaluate(parse_scenario(...))`.

Every line of every scenario is compared, drug lines included: containers,
waste, NDC and the scenario's own billing unit are charted too (VialUse,
Administration.container_type / wasted_* / hcpcs_unit_*).
"""

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from charting.models import Administration, Drug, Encounter, Pause, VialUse
from coding.engine import evaluate, parse_scenario
from coding.management.commands.import_scenarios import UNVERIFIED, patient_identity
from coding.models import Suggestion

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
SCENARIOS = [(path, obj) for path in SCENARIO_FILES for obj in json.loads(path.read_text())]

pytestmark = pytest.mark.django_db


def _multiset(lines) -> Counter:
    """Stored or pure lines, with the drug line's NDC, its quantity and unit ("" = None)."""
    return Counter(
        (line.code, line.units, tuple(sorted(line.modifiers)), line.ndc or None, line.ndc_quantity, line.ndc_unit or None)
        for line in lines
    )


def _write(tmp_path, scenarios, name="one.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(scenarios))
    return str(path)


def test_scenarios_are_there():
    assert len(SCENARIOS) >= 90


@pytest.mark.parametrize(("path", "scenario"), SCENARIOS, ids=[obj["id"] for _, obj in SCENARIOS])
def test_database_path_codes_like_the_pure_path(path, scenario, tmp_path):
    pure = evaluate(parse_scenario(scenario))

    call_command("import_scenarios", _write(tmp_path, [scenario]), stdout=io.StringIO())

    encounter = Encounter.objects.get(external_id=scenario["id"])
    assert encounter.is_signed
    stored = Suggestion.objects.current().get(encounter=encounter).lines.all()
    assert _multiset(stored) == _multiset(pure.lines)


def test_import_stores_the_chart_and_is_idempotent(tmp_path):
    scenario = next(obj for _, obj in SCENARIOS if obj["id"] == "office-rituximab-stopped-for-reaction-then-resumed")
    path = _write(tmp_path, [scenario])
    out = io.StringIO()

    call_command("import_scenarios", path, stdout=out)
    call_command("import_scenarios", path, stdout=out)

    encounter = Encounter.objects.select_related("patient", "clinic").get(external_id=scenario["id"])
    assert encounter.clinic.name == f"Chairside Demo Clinic ({scenario['timezone']})"
    assert encounter.clinic.time_zone == scenario["timezone"]
    assert encounter.patient.mrn == patient_identity(scenario["id"])[0]
    assert sorted(encounter.administrations.values_list("label", flat=True)) == sorted(a["id"] for a in scenario["administrations"])
    assert Pause.objects.filter(administration__encounter=encounter).count() == sum(len(a["pauses"]) for a in scenario["administrations"])
    assert Encounter.objects.count() == 1 and Suggestion.objects.count() == 1
    text = out.getvalue()
    assert f"imported {scenario['id']}" in text and f"skipped {scenario['id']}" in text


def test_drugs_are_matched_from_the_catalog_or_added_unverified(tmp_path):
    catalog = Drug.objects.create(name="Rituximab", hcpcs="J9312", billing_unit_value=10, billing_unit_unit="mg", admin_family="chemo_complex", is_verified=True)
    scenario = next(obj for _, obj in SCENARIOS if obj["id"] == "office-rituximab-premeds-pushes-chemo-initial")

    call_command("import_scenarios", _write(tmp_path, [scenario]), stdout=io.StringIO())

    rows = {a.label: a for a in Administration.objects.select_related("drug")}
    assert rows["3"].drug == catalog and rows["3"].hcpcs_override == ""
    assert rows["1"].drug.verification_status == UNVERIFIED and rows["1"].drug.hcpcs == "J1200"
    assert rows["1"].admin_class == "therapeutic"


def test_no_sign_leaves_drafts(tmp_path):
    scenario = SCENARIOS[0][1]
    call_command("import_scenarios", "--no-sign", _write(tmp_path, [scenario]), stdout=io.StringIO())
    assert Encounter.objects.get().status == "draft"
    assert not Suggestion.objects.exists()


def test_a_bad_file_names_file_and_field_and_exits_2(tmp_path):
    scenario = json.loads(json.dumps(SCENARIOS[0][1]))
    scenario["administrations"][0]["route"] = "by mouth"
    path = _write(tmp_path, [SCENARIOS[1][1], scenario], name="bad.json")

    with pytest.raises(CommandError) as excinfo:
        call_command("import_scenarios", path, stdout=io.StringIO())

    assert excinfo.value.returncode == 2
    assert "bad.json" in str(excinfo.value) and "[1].administrations[0].route" in str(excinfo.value)
    assert not Encounter.objects.exists()  # nothing written when any file is bad


def test_a_missing_file_exits_2(tmp_path):
    with pytest.raises(CommandError) as excinfo:
        call_command("import_scenarios", str(tmp_path / "nope.json"))
    assert excinfo.value.returncode == 2 and "nope.json" in str(excinfo.value)


def _scenario(scenario_id):
    return json.loads(json.dumps(next(obj for _, obj in SCENARIOS if obj["id"] == scenario_id)))


def test_containers_waste_and_ndc_are_charted(tmp_path):
    scenario = _scenario("pc-03")  # infliximab 184 mg from 2 x 100 mg single-dose vials, 16 mg wasted, NDC
    call_command("import_scenarios", _write(tmp_path, [scenario]), stdout=io.StringIO())

    adm = Administration.objects.get(encounter__external_id="pc-03", label="1")
    vial = VialUse.objects.get(administration=adm)
    assert (vial.ndc, vial.lot, vial.size_value, vial.size_unit, vial.count) == ("57894-030-01", "", 100, "mg", 2)
    assert adm.container_type == "single_dose" and (adm.wasted_value, adm.wasted_unit) == (16, "mg") and adm.waste_confirmed


def test_a_container_of_mixed_sizes_is_charted_without_a_size(tmp_path):
    scenario = _scenario("office-rituximab-712mg-vasculitis-jw")  # 4 vials, size null, 87.5 mg wasted
    call_command("import_scenarios", _write(tmp_path, [scenario]), stdout=io.StringIO())

    vial = VialUse.objects.get()
    assert vial.size_value is None and vial.size_unit == "" and vial.count == 4 and vial.ndc == ""


def test_a_billing_unit_other_than_the_catalogs_is_kept_on_the_administration(tmp_path):
    Drug.objects.create(name="rituximab", hcpcs="J9312", billing_unit_value=100, billing_unit_unit="mg", admin_family="chemo_complex")
    scenario = _scenario("office-rituximab-1000mg-ra-jz")  # the scenario says 10 mg per unit
    call_command("import_scenarios", _write(tmp_path, [scenario]), stdout=io.StringIO())

    adm = Administration.objects.get()
    assert (adm.hcpcs_unit_value, adm.hcpcs_unit_unit) == (10, "mg")
    lines = Suggestion.objects.current().get().lines.filter(code="J9312")
    assert [(line.units, line.modifiers) for line in lines] == [(100, ["JZ"])]


def test_a_billing_unit_equal_to_the_catalogs_is_not_repeated(tmp_path):
    Drug.objects.create(name="rituximab", hcpcs="J9312", billing_unit_value=10, billing_unit_unit="mg", admin_family="chemo_complex")
    call_command("import_scenarios", _write(tmp_path, [_scenario("office-rituximab-1000mg-ra-jz")]), stdout=io.StringIO())
    assert Administration.objects.get().hcpcs_unit_value is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(container={"type": "multi_dose", "size": None, "count": 1}), "wasted: waste is charted only for single-dose containers"),
        (lambda a: a.pop("container"), "wasted: waste is charted only for single-dose containers"),
        (lambda a: a.update(ndc="5789403001"), "ndc: '5789403001' is not 4-4-2, 5-3-2 or 5-4-1"),
        (lambda a: (a.pop("container"), a.pop("wasted")), "ndc: an NDC is charted with the containers"),
        (lambda a: a["container"].update(size={"value": 0, "unit": "mg"}), "container.size: must be positive"),
        (lambda a: a.update(hcpcs_unit={"value": 0, "unit": "mg"}), "hcpcs_unit: must be positive"),
        (lambda a: a.update(wasted={"value": 0.0001, "unit": "mg"}), "wasted: below 10^9, with at most 3 decimals"),
    ],
)
def test_vials_the_chart_cannot_hold_stop_the_import_with_exit_2(tmp_path, change, message):
    scenario = _scenario("pc-03")
    change(scenario["administrations"][0])

    with pytest.raises(CommandError) as excinfo:
        call_command("import_scenarios", _write(tmp_path, [scenario]), stdout=io.StringIO())

    assert excinfo.value.returncode == 2
    assert f"pc-03: administrations[0].{message}" in str(excinfo.value)
    assert not Encounter.objects.exists()
