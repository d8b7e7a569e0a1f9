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

from charting.models import Administration, Drug, Encounter, Pause
from coding.documentation import encounter_doc
from coding.engine import evaluate, parse_scenario
from coding.management.commands.import_scenarios import UNVERIFIED, patient_identity
from coding.models import Suggestion

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
SCENARIOS = [(path, obj) for path in SCENARIO_FILES for obj in json.loads(path.read_text())]

pytestmark = pytest.mark.django_db


def _multiset(lines) -> Counter:
    return Counter((line.code, line.units, tuple(sorted(line.modifiers))) for line in lines)


def _with_ndc(lines) -> Counter:
    """Lines with their NDC fields (ndc_quantity/ndc_unit once the engine has them)."""
    return Counter((line.code, line.units, tuple(sorted(line.modifiers)), line.ndc, getattr(line, "ndc_quantity", None), getattr(line, "ndc_unit", None)) for line in lines)


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
    # The stored line keeps code, units and modifiers; the chart's engine input
    # must also give the same NDC on every drug line.
    assert _with_ndc(evaluate(encounter_doc(encounter)).lines) == _with_ndc(pure.lines)


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
