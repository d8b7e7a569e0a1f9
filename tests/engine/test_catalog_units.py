"""Billing units the engine takes when an administration carries no
``hcpcs_unit`` (scenarios/README.md; R46): the table must agree with the drug
catalog (charting/data/drug-catalog.csv) and with every unit the public
scenarios chart, and a drug line must come out without a charted unit."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from enginekit import adm, doc

from coding.engine import Quantity, evaluate, load_scenario_file
from coding.engine.drugs import CATALOG_UNITS

ROOT = Path(__file__).resolve().parents[2]
UNIT_RE = re.compile(r"^(?:per |up to )?(\d+(?:\.\d+)?)\s*(mg|mcg|g|mL)\b")


def test_catalog_rows_with_one_code_and_unit_agree():
    checked = 0
    with (ROOT / "charting" / "data" / "drug-catalog.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            code = re.fullmatch(r"([A-Z]\d{4})(?: \(unverified\))?", row["hcpcs_code"].strip())
            unit = UNIT_RE.match(row["hcpcs_billing_unit"].strip())
            if not code or not unit:
                continue  # several codes in one cell, or no unit
            assert CATALOG_UNITS[code.group(1)] == Quantity(Decimal(unit.group(1)), unit.group(2)), row["generic_name"]
            checked += 1
    assert checked >= 30


def test_public_scenario_units_agree():
    for path in sorted((ROOT / "tests" / "scenarios").glob("*.json")):
        for _raw, d in load_scenario_file(path):
            for a in d.administrations:
                if a.hcpcs and a.hcpcs_unit is not None:
                    assert CATALOG_UNITS[a.hcpcs] == a.hcpcs_unit, (d.id, a.hcpcs)


def test_drug_line_without_charted_unit_uses_catalog():
    """R46: infliximab 400 mg, J1745 per 10 mg, unit not charted -> 40 units."""
    a = replace(adm("1", "chemo_complex", stop=120), hcpcs="J1745", dose=Quantity(Decimal(400), "mg"))
    result = evaluate(doc(a))
    assert [(l.code, l.units) for l in result.lines if l.code == "J1745"] == [("J1745", 40)]
    assert "billing_unit_from_catalog" in [w.kind for w in result.warnings]


def test_unknown_code_without_unit_is_left_to_the_coder():
    a = replace(adm("1", stop=60), hcpcs="J3490", dose=Quantity(Decimal(20), "mg"))
    result = evaluate(doc(a))
    assert not [l for l in result.lines if l.code == "J3490"]
    assert "billing_unit_unknown" in [w.kind for w in result.warnings]
