"""Drugs billed under "up to" codes by dose (R46; the catalog's methylprednisolone
sodium succinate row: J2920 up to 40 mg, J2930 up to 125 mg; shared scenario
pc-28: 100 mg from a 125 mg vial = J2930 x1 JZ, not J2920 x3)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command

from charting import services
from charting.management.commands.seed_drug_catalog import parse_dose_tiers
from charting.models import Administration, Drug
from coding.services import suggest_for_encounter
from tests.factories import AccessSiteFactory, EncounterFactory, PatientFactory

CELL = "J2920 (up to 40 mg); J2930 (up to 125 mg) (unverified: CMS revised methylprednisolone codes on 2024-04-01; a 5 mg code may replace them)"
TIERS = [{"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}]


@pytest.mark.parametrize(
    ("cell", "tiers"),
    [
        (CELL, TIERS),
        ("J2930 (up to 125 mg); J2920 (up to 40 mg)", TIERS),  # ascending whatever the order in the cell
        ("J1200 (up to 50 mg)", []),  # one code: the catalog code is the code
        ("J9250 (5 mg) / J9260 (50 mg) historically", []),  # per-amount codes are not "up to" codes
        ("J1745", []),
    ],
)
def test_parse_dose_tiers(cell, tiers):
    assert parse_dose_tiers(cell) == tiers


@pytest.mark.parametrize(
    ("dose", "unit", "expected"),
    [
        ("40", "mg", ("J2920", Decimal("40"), "mg")),
        ("20", "mg", ("J2920", Decimal("40"), "mg")),
        ("40.001", "mg", ("J2930", Decimal("125"), "mg")),
        ("100", "mg", ("J2930", Decimal("125"), "mg")),
        ("125", "mg", ("J2930", Decimal("125"), "mg")),
        ("1", "g", ("J2930", Decimal("125"), "mg")),  # above the largest: its units (1 g = x8, R46)
        ("40000", "mcg", ("J2920", Decimal("40"), "mg")),
        ("2", "mL", None),  # does not convert: the catalog code stands
    ],
)
def test_code_for_dose_is_the_smallest_up_to_code_that_covers_it(dose, unit, expected):
    assert Drug(name="m", dose_tiers=TIERS).code_for_dose(Decimal(dose), unit) == expected


def test_no_tiers_no_dose_or_a_malformed_admin_edit_give_no_code():
    assert Drug(name="m").code_for_dose(Decimal(10), "mg") is None
    assert Drug(name="m", dose_tiers=TIERS).code_for_dose(None, "mg") is None
    assert Drug(name="m", dose_tiers=[{"hcpcs": "J2920", "up_to": "forty", "unit": "mg"}]).code_for_dose(Decimal(10), "mg") is None


@pytest.fixture
def methylpred(db):
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    drug = Drug.objects.get(name="methylprednisolone sodium succinate")
    assert (drug.hcpcs, drug.dose_tiers) == ("J2920", TIERS)
    return drug


@pytest.mark.django_db
def test_charting_the_dose_picks_the_code_and_an_edit_follows_the_dose(methylpred, clinic, nurse):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    site = AccessSiteFactory(encounter=enc, label="A")
    adm = services.add_administration(enc, drug=methylpred, route="iv_push", access_site=site, dose_value=Decimal(100), dose_unit="mg", purpose="treatment", actor=nurse)
    adm.refresh_from_db()
    assert (adm.hcpcs, adm.hcpcs_unit_value, adm.hcpcs_unit_unit) == ("J2930", Decimal(125), "mg")
    adm = services.edit_administration(adm, dose_value=Decimal(40), dose_unit="mg", purpose=adm.purpose, route=adm.route, access_site=site, concurrent_with=None, bag="", actor=nurse)
    adm.refresh_from_db()
    assert (adm.hcpcs, adm.hcpcs_unit_value) == ("J2920", Decimal(40))
    # A code someone set that is not one of the tiers is theirs: kept.
    Administration.objects.filter(pk=adm.pk).update(hcpcs_override="J3490")
    adm = services.edit_administration(Administration.objects.get(pk=adm.pk), dose_value=Decimal(100), dose_unit="mg", purpose=adm.purpose, route=adm.route, access_site=site, concurrent_with=None, bag="", actor=nurse)
    adm.refresh_from_db()
    assert adm.hcpcs == "J3490"


@pytest.mark.django_db
def test_100_mg_from_a_125_mg_vial_is_coded_j2930_once_with_jz(methylpred, clinic, nurse):
    """pc-28's drug line through the app: chart, vials, waste none, sign, code."""
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    site = AccessSiteFactory(encounter=enc, label="A")
    adm = services.add_administration(enc, drug=methylpred, route="iv_push", access_site=site, dose_value=Decimal(100), dose_unit="mg", purpose="treatment", actor=nurse)
    start = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
    Administration.objects.filter(pk=adm.pk).update(started_at=start, stopped_at=start + dt.timedelta(minutes=5))
    adm.refresh_from_db()
    services.record_vials(adm, ndc="0009-0039-28", lot="MP1", expiry=None, container_type="single_dose", size_value=Decimal(125), size_unit="mg", count=1, actor=nurse)
    services.confirm_waste(Administration.objects.get(pk=adm.pk), wasted_value=Decimal(0), wasted_unit="mg", actor=nurse)
    services.sign_encounter(enc, actor=nurse)
    suggestion = suggest_for_encounter(enc.pk)
    drug_lines = sorted((line.code, line.units, tuple(line.modifiers)) for line in suggestion.lines.all() if line.code.startswith("J"))
    assert drug_lines == [("J2930", 1, ("JZ",))]
