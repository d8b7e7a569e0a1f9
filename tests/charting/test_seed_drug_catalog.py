"""seed_drug_catalog: parsing of the shared catalog, idempotence, saline."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from charting.management.commands.seed_drug_catalog import parse_family, parse_hcpcs, parse_unit
from charting.models import Drug

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 mg", (Decimal("10"), "mg")),
        ("10 mg (unverified)", (Decimal("10"), "mg")),
        ("up to 50 mg", (Decimal("50"), "mg")),
        ("per 1 mg (unverified)", (Decimal("1"), "mg")),
        ("n/a", (None, "")),
        ("unverified", (None, "")),
    ],
)
def test_parse_unit(text, expected):
    assert parse_unit(text) == expected


def test_parse_hcpcs_and_family():
    assert parse_hcpcs("J1745 (unverified)") == "J1745"
    assert parse_hcpcs("unverified") == ""
    assert parse_family("chemo_complex: 96413/+96415", {}) == "chemo_complex"
    assert parse_family("therapeutic 96372 if given in clinic (unverified)", {}) == "therapeutic"
    assert parse_family("payer-dependent", {}) == "chemo_complex"  # Medicare default, R36/R38
    assert parse_family("as Actemra", {"actemra": "chemo_complex"}) == "chemo_complex"


def test_seed_is_idempotent_and_keeps_unverified_marks_visible():
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    count = Drug.objects.count()
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    assert Drug.objects.count() == count == 48  # 47 rows + plain saline

    remicade = Drug.objects.get(name="infliximab")
    assert (remicade.hcpcs, remicade.billing_unit_value, remicade.billing_unit_unit, remicade.admin_family, remicade.is_verified) == ("J1745", Decimal("10"), "mg", "chemo_complex", True)
    unbranded = Drug.objects.get(name="infliximab (unbranded, Janssen)")
    assert unbranded.hcpcs == "J1745" and not unbranded.is_verified
    assert "hcpcs_code: J1745 (unverified)" in unbranded.verification_status and unbranded.has_unverified_facts
    assert Drug.objects.get(name="denosumab").admin_family == "therapeutic"
    assert Drug.objects.get(name="methotrexate (injection)").single_dose is False
    saline = Drug.objects.get(name="sodium chloride 0.9%")
    assert (saline.admin_family, saline.is_verified) == ("hydration", False)
    assert "Added by Chairside" in saline.verification_status


def test_reseeding_keeps_an_admins_confirmation():
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    Drug.objects.filter(name="golimumab (IV)").update(is_verified=True)
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    assert Drug.objects.get(name="golimumab (IV)").is_verified
