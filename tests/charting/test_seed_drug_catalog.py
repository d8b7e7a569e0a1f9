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


def _run(command, **kwargs) -> list[str]:
    import io

    out = io.StringIO()
    call_command(command, stdout=out, **kwargs)
    return out.getvalue().splitlines()


def test_the_summary_counts_the_files_rows_and_the_saline_apart():
    """Regression: it said "48 created (47 rows)" (saline counted as a row of
    the file) and "47 updated" when nothing changed."""
    [first] = _run("seed_drug_catalog")
    assert first.startswith("drug catalog: 47 rows in ") and first.endswith(": 47 created, 0 updated, 0 unchanged; plain saline (not in the file) added")
    Drug.objects.filter(name="denosumab").update(hcpcs="J9999")
    [again] = _run("seed_drug_catalog")
    assert again.endswith(": 0 created, 1 updated, 46 unchanged; plain saline (not in the file) already there")
    assert Drug.objects.get(name="denosumab").hcpcs != "J9999"


def test_setup_demo_says_what_it_created_and_what_was_there(settings):
    first = _run("setup_demo", scenarios=[])
    assert first[0].endswith(": 47 created, 0 updated, 0 unchanged; plain saline (not in the file) added")
    assert first[1:] == [
        "clinic 'Chairside Demo Clinic (America/New_York)': created",
        "users nurse, coder, admin: 3 created, 0 already there",
        first[3],
        "flags: opened=0 resolved=0 open=0",
        "Demo ready: log in as nurse, coder or admin with password 'chairside-demo'.",
    ]
    assert first[3].startswith("today's encounters (") and first[3].endswith("): 3 opened, 0 already open")
    again = _run("setup_demo", scenarios=[])
    assert again[0].endswith(": 0 created, 0 updated, 47 unchanged; plain saline (not in the file) already there")
    assert again[1:4] == [
        "clinic 'Chairside Demo Clinic (America/New_York)': already there",
        "users nurse, coder, admin: 0 created, 3 already there",
        first[3].replace("3 opened, 0 already open", "0 opened, 3 already open"),
    ]
