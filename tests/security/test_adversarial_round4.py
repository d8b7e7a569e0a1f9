"""Round 4 attacks (session 4): flags refreshed inside the charting writes
(record_vials, remove_vials, confirm_waste, correct_time, sign_encounter,
amend_administration) and "up to" HCPCS codes by dose (Drug.dose_tiers,
Drug.code_for_dose, services._dose_code).

Expected everywhere: never a 500, never a wrong billing code set silently,
every change of a signed record audited, flags that agree with the sweep,
writes that are atomic whatever the client sends.

Tests marked xfail(strict=True) are open findings: they pass once fixed.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from decimal import Decimal

import pytest
from django import forms
from django.contrib import admin as django_admin
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting import services
from charting.models import Administration, AmendmentReason, DocumentationFlag, Drug
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, chart_vials

from .conftest import HTMX

TIERS = [{"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}]
T0 = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)


def methylpred(tiers=None) -> Drug:
    drug = DrugFactory(name="methylprednisolone sodium succinate", hcpcs="J2920", billing_unit_value=Decimal(40), billing_unit_unit="mg", admin_family="therapeutic")
    Drug.objects.filter(pk=drug.pk).update(dose_tiers=TIERS if tiers is None else tiers)
    drug.refresh_from_db()
    return drug


def draft(clinic):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    return enc, AccessSiteFactory(encounter=enc, label="A")


def add_post(client, enc, site, drug, dose, unit, *, key=True, **extra):
    data = {"adm-drug": drug.pk, "adm-route": "iv_push", "adm-access_site": site.pk, "adm-dose_value": dose, "adm-dose_unit": unit, "adm-purpose": "treatment"}
    if key:
        data["idempotency_key"] = str(uuid.uuid4())
    return client.post(reverse("charting:add_administration", kwargs={"pk": enc.pk}), data, **extra)


def code_of(adm) -> tuple:
    adm = Administration.objects.select_related("drug").get(pk=adm.pk)
    return adm.hcpcs, adm.hcpcs_unit_value, adm.hcpcs_unit_unit


@pytest.fixture
def nurse_client(nurse):
    client = Client(raise_request_exception=False)
    client.force_login(nurse)
    return client


# --- 1. add_administration lost its transaction -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_add_a_drug_without_a_tap_key_is_charted_not_a_500(nurse_client, clinic):
    """Control: over HTTP the @phi decorator's transaction (audit/phi.py run) covers the view, so F1 does not show here."""
    enc, site = draft(clinic)
    response = add_post(nurse_client, enc, site, DrugFactory(name="infliximab"), "500", "mg", key=False)
    assert response.status_code == 302, response.status_code
    assert enc.administrations.count() == 1


@pytest.mark.django_db(transaction=True)
def test_add_administration_service_is_atomic_on_its_own(clinic, nurse):
    enc, site = draft(clinic)
    adm = services.add_administration(enc, drug=DrugFactory(name="infliximab"), route="iv_infusion", access_site=site, dose_value=Decimal(500), dose_unit="mg", purpose="treatment", actor=nurse)
    assert adm.pk is not None


@pytest.mark.django_db(transaction=True)
def test_add_with_a_tap_key_still_works_in_autocommit(nurse_client, clinic):
    """Control: with a key the write runs inside _once's transaction."""
    enc, site = draft(clinic)
    response = add_post(nurse_client, enc, site, methylpred(), "100", "mg")
    assert response.status_code == 302
    assert code_of(enc.administrations.get())[:2] == ("J2930", Decimal(125))


# --- 2. dose_tiers as an admin may type them ---------------------------------------------

# (tiers, why) that must never give a 500 when a nurse charts 100 mg.
MALFORMED = [
    pytest.param(5, id="number"),
    pytest.param(True, id="boolean"),
    pytest.param({"hcpcs": "J2930", "up_to": "125", "unit": "mg"}, id="dict-not-list"),
    pytest.param("J2920; J2930", id="string"),
    pytest.param([{"hcpcs": "J2920", "up_to": "forty", "unit": "mg"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}], id="not-a-number"),
    pytest.param([{"hcpcs": "J2920"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}], id="missing-keys"),
    pytest.param(["J2920", {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}], id="mixed-list"),
    pytest.param([{"hcpcs": "J2930", "up_to": "0", "unit": "mg"}], id="zero"),
    pytest.param([{"hcpcs": "J2920", "up_to": "-40", "unit": "mg"}], id="negative"),
    pytest.param([{"hcpcs": "J2920", "up_to": "0.0001", "unit": "mg"}], id="rounds-to-zero"),
    pytest.param([{"hcpcs": "J2930", "up_to": "NaN", "unit": "mg"}], id="nan"),
    pytest.param([{"hcpcs": "J2930", "up_to": "Infinity", "unit": "mg"}], id="infinity"),
    pytest.param([{"hcpcs": "J2930", "up_to": "1e400", "unit": "mg"}], id="huge"),
    pytest.param([{"hcpcs": None, "up_to": "125", "unit": "mg"}], id="hcpcs-null"),
    pytest.param([{"hcpcs": "J2930-TOO-LONG", "up_to": "125", "unit": "mg"}], id="hcpcs-too-long"),
    pytest.param([{"hcpcs": "J2930", "up_to": "125", "unit": "kg"}], id="unknown-unit"),
    pytest.param([{"hcpcs": "J2930", "up_to": "125", "unit": "mg"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}], id="duplicates"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("tiers", MALFORMED)
def test_a_malformed_dose_tiers_never_gives_a_500_when_charting(nurse_client, clinic, tiers):
    enc, site = draft(clinic)
    response = add_post(nurse_client, enc, site, methylpred(tiers), "100", "mg")
    assert response.status_code < 500, response.status_code
    assert enc.administrations.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("tiers", MALFORMED)
def test_a_malformed_dose_tiers_never_gives_a_500_when_editing(nurse_client, clinic, nurse, tiers):
    enc, site = draft(clinic)
    drug = methylpred([])
    adm = services.add_administration(enc, drug=drug, route="iv_push", access_site=site, dose_value=Decimal(30), dose_unit="mg", purpose="treatment", actor=nurse)
    Drug.objects.filter(pk=drug.pk).update(dose_tiers=tiers)
    data = {"dose_value": "100", "dose_unit": "mg", "purpose": "treatment", "route": "iv_push", "access_site": str(site.pk), "concurrent_with": "", "bag": ""}
    response = nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX)
    assert response.status_code < 500, response.status_code


def _admin_drug_form(admin_user, drug, tiers):
    """The admin's Drug change form, as posted, with `tiers` typed in the HCPCS-by-dose box."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    admin_user.user_permissions.add(*Permission.objects.filter(codename__in=["view_drug", "change_drug"]))
    admin_user = get_user_model().objects.get(pk=admin_user.pk)  # no cached permissions
    model_admin = django_admin.site._registry[Drug]
    request = RequestFactory().post("/")
    request.user = admin_user
    form_class = model_admin.get_form(request, drug, change=True)
    initial = form_class(instance=drug).initial
    data = {}
    for name, field in form_class.base_fields.items():
        value = initial.get(name)
        if isinstance(field, forms.JSONField):
            value = json.dumps(value)
        data[name] = "" if value is None else value
    data["dose_tiers"] = json.dumps(tiers)
    return form_class(data, instance=drug)


@pytest.mark.django_db
def test_the_admin_can_save_well_formed_tiers(admin):
    """Control for the next test: the form as built is valid with good tiers."""
    form = _admin_drug_form(admin, methylpred(), TIERS)
    assert "dose_tiers" in form.fields  # the admin may change drugs: the box is there
    assert form.is_valid(), form.errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tiers",
    [
        5,
        {"hcpcs": "J2930", "up_to": "125", "unit": "mg"},
        [{"hcpcs": "J2930", "up_to": "0", "unit": "mg"}],
        [{"hcpcs": "J2930", "up_to": "NaN", "unit": "mg"}],
        [{"hcpcs": "J2920", "up_to": "40", "unit": "MG"}, {"hcpcs": "J2930", "up_to": "125", "unit": "mg"}],
        [{"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, {"hcpcs": "J2920", "up_to": "125", "unit": "mg"}],
        [{"hcpcs": "J2930-TOO-LONG", "up_to": "125", "unit": "mg"}],
    ],
    ids=["number", "dict", "zero", "nan", "unit-case", "duplicate-code", "long-code"],
)
def test_the_admin_cannot_save_malformed_tiers(admin, tiers):
    form = _admin_drug_form(admin, methylpred(), tiers)
    assert "dose_tiers" in form.fields
    assert not form.is_valid() and "dose_tiers" in form.errors, form.errors


@pytest.mark.xfail(strict=True, reason="F5, left open: tiers are checked where they are written (Drug.clean, the admin form; the seed's parser); written around that (shell, SQL), unusable tiers leave the catalog code, and no coding warning names them yet")
@pytest.mark.django_db
def test_a_tier_unit_typo_does_not_silently_bill_the_smallest_code(nurse_client, clinic):
    enc, site = draft(clinic)
    tiers = [{"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, {"hcpcs": "J2930", "up_to": "125", "unit": "MG"}]
    add_post(nurse_client, enc, site, methylpred(tiers), "100", "mg")
    assert code_of(enc.administrations.get())[0] != "J2920"


@pytest.mark.django_db
def test_duplicate_tier_codes_do_not_bill_a_code_beyond_its_amount(nurse_client, clinic):
    enc, site = draft(clinic)
    tiers = [{"hcpcs": "J2920", "up_to": "40", "unit": "mg"}, {"hcpcs": "J2920", "up_to": "125", "unit": "mg"}]
    add_post(nurse_client, enc, site, methylpred(tiers), "100", "mg")
    hcpcs, unit_value, _ = code_of(enc.administrations.get())
    assert not (hcpcs == "J2920" and unit_value == Decimal(125))


# --- 3. doses in other units, a dose taken away ------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("dose", "unit", "expected"),
    [
        ("0.1", "g", ("J2930", Decimal(125), "mg")),
        ("0.04", "g", ("J2920", Decimal(40), "mg")),
        ("40000", "mcg", ("J2920", Decimal(40), "mg")),
        ("40001", "mcg", ("J2930", Decimal(125), "mg")),
        ("1", "g", ("J2930", Decimal(125), "mg")),
        ("2", "mL", ("J2920", None, "")),  # no conversion: the catalog code, no billing unit of the tier
        ("2", "units", ("J2920", None, "")),
    ],
)
def test_doses_in_g_mcg_ml_through_the_add_form(nurse_client, clinic, dose, unit, expected):
    enc, site = draft(clinic)
    assert add_post(nurse_client, enc, site, methylpred(), dose, unit).status_code == 302
    assert code_of(enc.administrations.get()) == expected


@pytest.mark.django_db
def test_taking_the_dose_away_after_a_tier_was_set_clears_the_tier(nurse_client, clinic, nurse):
    enc, site = draft(clinic)
    adm = services.add_administration(enc, drug=methylpred(), route="iv_push", access_site=site, dose_value=Decimal(100), dose_unit="mg", purpose="treatment", actor=nurse)
    assert code_of(adm)[0] == "J2930"
    data = {"dose_value": "", "dose_unit": "", "purpose": "treatment", "route": "iv_push", "access_site": str(site.pk), "concurrent_with": "", "bag": ""}
    response = nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX)
    assert response.status_code == 200
    adm.refresh_from_db()
    assert adm.dose_value is None
    assert code_of(adm) == ("J2920", None, "")


@pytest.mark.django_db
def test_an_edit_to_mg_to_g_keeps_the_right_tier(nurse_client, clinic, nurse):
    enc, site = draft(clinic)
    adm = services.add_administration(enc, drug=methylpred(), route="iv_push", access_site=site, dose_value=Decimal(100), dose_unit="mg", purpose="treatment", actor=nurse)
    data = {"dose_value": "0.03", "dose_unit": "g", "purpose": "treatment", "route": "iv_push", "access_site": str(site.pk), "concurrent_with": "", "bag": ""}
    assert nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX).status_code == 200
    assert code_of(adm) == ("J2920", Decimal(40), "mg")


@pytest.mark.django_db
def test_a_code_someone_set_outside_the_tiers_is_kept_on_edit_and_a_tier_code_follows_the_dose(nurse_client, clinic, nurse):
    enc, site = draft(clinic)
    adm = services.add_administration(enc, drug=methylpred(), route="iv_push", access_site=site, dose_value=Decimal(30), dose_unit="mg", purpose="treatment", actor=nurse)
    Administration.objects.filter(pk=adm.pk).update(hcpcs_override="J3490", hcpcs_unit_value=None, hcpcs_unit_unit="")
    data = {"dose_value": "100", "dose_unit": "mg", "purpose": "treatment", "route": "iv_push", "access_site": str(site.pk), "concurrent_with": "", "bag": ""}
    nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX)
    assert code_of(adm)[0] == "J3490"
    # An imported/typed override equal to a tier code is treated as the app's own: it follows the dose.
    Administration.objects.filter(pk=adm.pk).update(hcpcs_override="J2920", hcpcs_unit_value=Decimal(40), hcpcs_unit_unit="mg")
    data["dose_value"] = "110"
    nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX)
    assert code_of(adm) == ("J2930", Decimal(125), "mg")


@pytest.mark.xfail(strict=True, reason="F7, left open: a code set from the tiers is recognised by the current tiers; once an admin retires them, the administration keeps the old code on a dose edit (a flag saying the app chose the code is not built)")
@pytest.mark.django_db
def test_a_tier_code_does_not_outlive_the_tiers(nurse_client, clinic, nurse):
    enc, site = draft(clinic)
    drug = methylpred()
    adm = services.add_administration(enc, drug=drug, route="iv_push", access_site=site, dose_value=Decimal(100), dose_unit="mg", purpose="treatment", actor=nurse)
    assert code_of(adm)[0] == "J2930"
    Drug.objects.filter(pk=drug.pk).update(dose_tiers=[], hcpcs="J2919", billing_unit_value=Decimal(5))
    data = {"dose_value": "30", "dose_unit": "mg", "purpose": "treatment", "route": "iv_push", "access_site": str(site.pk), "concurrent_with": "", "bag": ""}
    assert nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX).status_code == 200
    assert code_of(adm)[0] != "J2930"


# --- 4. amending the dose of a signed encounter ------------------------------------------


def _signed_methylpred(clinic, nurse, dose="30", fillers=0):
    enc, site = draft(clinic)
    for i in range(fillers):
        filler_site = AccessSiteFactory(encounter=enc, label=f"S{i}")
        chart_vials(AdministrationFactory(encounter=enc, access_site=filler_site, drug=DrugFactory(name=f"filler {i}"), started_at=T0, stopped_at=T0 + dt.timedelta(minutes=90)))
    adm = services.add_administration(enc, drug=methylpred(), route="iv_push", access_site=site, dose_value=Decimal(dose), dose_unit="mg", purpose="treatment", actor=nurse)
    Administration.objects.filter(pk=adm.pk).update(started_at=T0, stopped_at=T0 + dt.timedelta(minutes=5), recorded_at=T0)
    services.record_vials(Administration.objects.get(pk=adm.pk), ndc="0009-0039-28", lot="MP1", expiry=None, container_type="single_dose", size_value=Decimal(125), size_unit="mg", count=1, actor=nurse)
    waste = Decimal(125) - Decimal(dose)
    services.confirm_waste(Administration.objects.get(pk=adm.pk), wasted_value=waste, wasted_unit="mg", actor=nurse)
    services.sign_encounter(enc, actor=nurse)
    return enc, Administration.objects.get(pk=adm.pk)


def _amend(client, adm, field, value):
    prefix = f"amend-{adm.pk}"
    reason = AmendmentReason.objects.get(code="transcription_error").pk
    return client.post(reverse("charting:amend_administration", kwargs={"pk": adm.pk}), {f"{prefix}-field": field, f"{prefix}-new_value": value, f"{prefix}-reason": reason}, **HTMX)


@pytest.mark.django_db
def test_amending_the_dose_of_a_signed_drug_moves_it_to_the_other_tier_and_the_recode_bills_it(nurse_client, clinic, nurse):
    from coding.services import suggest_for_encounter

    enc, adm = _signed_methylpred(clinic, nurse, dose="30")
    assert code_of(adm)[0] == "J2920"
    response = _amend(nurse_client, adm, "dose_value", "100")
    assert response.status_code == 200 and b"Amended" in response.content
    assert code_of(adm) == ("J2930", Decimal(125), "mg")  # the signed-record trigger let the code columns through
    lines = sorted((line.code, line.units) for line in suggest_for_encounter(enc.pk).lines.all() if line.code.startswith("J"))
    assert ("J2930", 1) in lines and not any(code == "J2920" for code, _ in lines)


@pytest.mark.django_db
def test_amending_the_dose_unit_to_ml_clears_the_tier_on_a_signed_record(nurse_client, clinic, nurse):
    enc, adm = _signed_methylpred(clinic, nurse, dose="100")
    assert code_of(adm)[0] == "J2930"
    assert _amend(nurse_client, adm, "dose_unit", "mL").status_code == 200
    assert code_of(adm) == ("J2920", None, "")


@pytest.mark.django_db
def test_the_code_change_of_an_amendment_is_audited(nurse_client, clinic, nurse):
    enc, adm = _signed_methylpred(clinic, nurse, dose="30")
    _amend(nurse_client, adm, "dose_value", "100")
    event = AuditEvent.objects.filter(action="charting.administration.amended").get()
    assert "J2930" in json.dumps(event.detail)


@pytest.mark.django_db
def test_the_code_picked_at_an_edit_is_audited(nurse_client, clinic, nurse):
    enc, site = draft(clinic)
    adm = services.add_administration(enc, drug=methylpred(), route="iv_push", access_site=site, dose_value=Decimal(30), dose_unit="mg", purpose="treatment", actor=nurse)
    data = {"dose_value": "100", "dose_unit": "mg", "purpose": "treatment", "route": "iv_push", "access_site": str(site.pk), "concurrent_with": "", "bag": ""}
    nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), data, **HTMX)
    event = AuditEvent.objects.filter(action="charting.administration.edited").get()
    assert "J2930" in json.dumps(event.detail)


@pytest.mark.django_db
def test_an_amendment_does_not_reopen_not_signed(nurse_client, clinic, nurse):
    enc, adm = _signed_methylpred(clinic, nurse, dose="30")
    _amend(nurse_client, adm, "dose_value", "100")
    assert not DocumentationFlag.objects.open().filter(encounter=enc, kind=DocumentationFlag.Kind.NOT_SIGNED).exists()


# --- 5. the vial reconciliation against a J2930 drug -------------------------------------


@pytest.mark.django_db
def test_vial_reconciliation_agrees_with_a_j2930_administration(clinic, nurse):
    from coding.services import suggest_for_encounter
    from reports import reports

    enc, adm = _signed_methylpred(clinic, nurse, dose="100")
    suggest_for_encounter(enc.pk)
    filters = reports.Filters(clinics=(clinic,), date_from=enc.date_of_service, date_to=enc.date_of_service)
    rows = list(reports.vial_lot_rows(filters))
    assert len(rows) == 1
    drug, hcpcs, ndcs, lots, unit, adms, containers, opened, opened_units, units, jw, diff, mismatches = rows[0]
    assert (hcpcs, unit, containers, opened_units, units, jw, mismatches) == ("J2930", "125 mg", 1, 1, 1, 0, 0)
    assert list(reports.vial_mismatch_rows(filters)) == []


@pytest.mark.django_db
def test_vial_reconciliation_after_an_amendment_to_the_other_tier(nurse_client, clinic, nurse):
    from coding.services import suggest_for_encounter
    from reports import reports

    enc, adm = _signed_methylpred(clinic, nurse, dose="30")
    _amend(nurse_client, adm, "dose_value", "100")
    # The waste was charted against 30 mg (95 mg); the nurse also amends nothing else: the report
    # must not show a J2920 row any more.
    suggest_for_encounter(enc.pk)
    filters = reports.Filters(clinics=(clinic,), date_from=enc.date_of_service, date_to=enc.date_of_service)
    assert {row[1] for row in reports.vial_lot_rows(filters)} == {"J2930"}


# --- 6. flags refreshed by the writes -----------------------------------------------------


@pytest.mark.django_db
def test_signing_opens_exactly_what_the_sweep_would_and_resolves_not_signed(clinic, nurse):
    from charting import checks

    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=timezone.localdate())
    adm = AdministrationFactory(encounter=enc, drug=DrugFactory(name="rituximab"), dose_value=Decimal(700), dose_unit="mg")
    now = timezone.now()
    Administration.objects.filter(pk=adm.pk).update(started_at=now - dt.timedelta(hours=2), stopped_at=now - dt.timedelta(hours=1), recorded_at=now - dt.timedelta(hours=2))
    issues = checks.check_encounter(services.Encounter.objects.for_chart().get(pk=enc.pk), now=now, signing=True)
    services.sign_encounter(enc, actor=nurse, confirmed=checks.digest([i for i in issues if i.blocking]))
    assert not DocumentationFlag.objects.open().filter(encounter=enc, kind=DocumentationFlag.Kind.NOT_SIGNED).exists()
    result = services.sweep_flags(now=timezone.now())
    assert (result["opened"], result["resolved"]) == (0, 0), result


def _sign_queries(client, clinic, n):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    for i in range(n):
        site = AccessSiteFactory(encounter=enc, label=f"S{i}")
        adm = AdministrationFactory(encounter=enc, access_site=site, drug=DrugFactory(name=f"filler {i}"), started_at=T0, stopped_at=T0 + dt.timedelta(minutes=90))
        chart_vials(adm)
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(reverse("charting:sign_encounter", kwargs={"pk": enc.pk}), {}, **HTMX)
    assert response.status_code < 500
    assert enc.__class__.objects.get(pk=enc.pk).is_signed
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_signing_costs_the_same_queries_for_1_and_12_drugs(nurse_client, clinic):
    assert _sign_queries(nurse_client, clinic, 1) == _sign_queries(nurse_client, clinic, 12)


def _amend_queries(client, clinic, nurse, n):
    enc, adm = _signed_methylpred(clinic, nurse, dose="30", fillers=n)
    with CaptureQueriesContext(connection) as ctx:
        assert _amend(client, adm, "dose_value", "100").status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_amending_costs_the_same_queries_for_2_and_12_drugs(nurse_client, clinic, nurse):
    assert _amend_queries(nurse_client, clinic, nurse, 1) == _amend_queries(nurse_client, clinic, nurse, 11)


# --- 7. double submits and races now that the writes refresh flags ---------------------


def run_together(*callables, timeout=30):
    barrier = threading.Barrier(len(callables))
    results: list = [None] * len(callables)

    def worker(i, fn):
        try:
            barrier.wait()
            results[i] = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(callables)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread is stuck (deadlock?)"
    return results


def run_named(timeout=60, **callables) -> dict:
    """Each callable in a thread NAMED by its keyword (the tests' patched
    services look at the thread's name); {name: ("ok", result) | ("error", exc)}."""
    results: dict = {}

    def worker(name, fn):
        try:
            results[name] = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[name] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name, fn), name=name) for name, fn in callables.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "stuck"
    return results


def _stopped_pair(clinic):
    enc, site = draft(clinic)
    site_b = AccessSiteFactory(encounter=enc, label="B")
    now = timezone.now()
    enc.__class__.objects.filter(pk=enc.pk).update(date_of_service=timezone.localdate())
    adms = []
    for s, name in ((site, "rituximab"), (site_b, "infliximab")):
        adm = AdministrationFactory(encounter=enc, access_site=s, drug=DrugFactory(name=name), dose_value=Decimal(700), dose_unit="mg")
        Administration.objects.filter(pk=adm.pk).update(started_at=now - dt.timedelta(hours=2), stopped_at=now - dt.timedelta(hours=1), recorded_at=now - dt.timedelta(hours=2))
        adms.append(adm)
    services.refresh_flags(enc.pk, now=now)
    return enc, adms


def _vials_post(nurse, adm):
    def tap():
        client = Client(raise_request_exception=False)
        client.force_login(nurse)
        data = {"ndc": "50242-051-21", "lot": "LOT7", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "7"}
        return client.post(reverse("charting:record_vials", kwargs={"pk": adm.pk}), data, **HTMX).status_code

    return tap


@pytest.mark.django_db(transaction=True)
def test_vials_on_two_drugs_a_double_submit_and_a_sweep_at_once_no_500_no_deadlock(clinic, nurse):
    enc, (a, b) = _stopped_pair(clinic)
    results = run_together(_vials_post(nurse, a), _vials_post(nurse, a), _vials_post(nurse, b), lambda: services.sweep_flags(now=timezone.now()))
    assert all(kind == "ok" for kind, _ in results), results
    assert [status for _, status in results[:3]] == [200, 200, 200]
    open_flags = list(DocumentationFlag.objects.open().filter(encounter=enc).values_list("kind", "administration_id"))
    assert len(open_flags) == len(set(open_flags))
    assert ("ndc_lot_missing", a.pk) not in open_flags and ("ndc_lot_missing", b.pk) not in open_flags


@pytest.mark.django_db(transaction=True)
def test_waste_twice_and_sign_at_once_no_500_no_deadlock(clinic, nurse):
    enc, (a, b) = _stopped_pair(clinic)
    for adm in (a, b):
        services.record_vials(Administration.objects.get(pk=adm.pk), ndc="50242-051-21", lot="LOT7", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=7, actor=nurse)

    def waste(adm):
        return lambda: services.confirm_waste(Administration.objects.get(pk=adm.pk), wasted_value=Decimal(0), wasted_unit="mg", actor=nurse)

    def sign():
        try:
            return services.sign_encounter(enc, actor=nurse)
        except services.ChartingError as exc:  # signed before the waste: asks for a confirmation, or refused after
            return exc

    results = run_together(waste(a), waste(a), waste(b), sign)
    assert all(kind == "ok" or isinstance(value, services.ChartingError) for kind, value in results), results
    open_flags = list(DocumentationFlag.objects.open().filter(encounter=enc).values_list("kind", "administration_id"))
    assert len(open_flags) == len(set(open_flags))


@pytest.mark.django_db
def test_striking_the_only_vial_reopens_its_flag_at_once(nurse_client, clinic, nurse):
    enc, (a, _) = _stopped_pair(clinic)
    services.record_vials(Administration.objects.get(pk=a.pk), ndc="50242-051-21", lot="LOT7", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=7, actor=nurse)
    assert not DocumentationFlag.objects.open().filter(administration=a, kind="ndc_lot_missing").exists()
    vial = a.vial_uses.get()
    response = nurse_client.post(reverse("charting:remove_vials", kwargs={"pk": a.pk}), {"vial": vial.pk, "reason": "wrong lot"}, **HTMX)
    assert response.status_code == 200
    assert DocumentationFlag.objects.open().filter(administration=a, kind="ndc_lot_missing").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_strikes_of_the_same_vial_at_once_no_500_one_flag(clinic, nurse):
    enc, (a, _) = _stopped_pair(clinic)
    services.record_vials(Administration.objects.get(pk=a.pk), ndc="50242-051-21", lot="LOT7", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=7, actor=nurse)
    vial = a.vial_uses.get()

    def strike():
        client = Client(raise_request_exception=False)
        client.force_login(nurse)
        return client.post(reverse("charting:remove_vials", kwargs={"pk": a.pk}), {"vial": vial.pk, "reason": "wrong lot"}, **HTMX).status_code

    results = run_together(strike, strike)
    assert results == [("ok", 200), ("ok", 200)], results
    assert DocumentationFlag.objects.open().filter(administration=a, kind="ndc_lot_missing").count() == 1
    assert AuditEvent.objects.filter(action="charting.administration.vials_entered_in_error").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_sweep_and_a_vial_save_on_the_same_encounter_do_not_deadlock(clinic, nurse, monkeypatch):
    enc, (a, b) = _stopped_pair(clinic)
    # b is complete; a still lacks its vials. b carries a stale open flag (its gap closed
    # by a write that does not refresh): the sweep will resolve it; a's gap has no flag
    # yet: the sweep will open it.
    chart_vials(b)
    DocumentationFlag.objects.filter(encounter=enc).delete()
    DocumentationFlag.objects.create(encounter=enc, administration=b, kind="ndc_lot_missing", message="stale", field="ndc", created_at=timezone.now() - dt.timedelta(hours=1))
    sweep_between_steps = threading.Event()
    real_open_flags = services._open_flags

    def open_flags(issues, now):
        if threading.current_thread().name == "sweep" and not sweep_between_steps.is_set():
            sweep_between_steps.set()  # step 2 (resolve) done, step 4 (insert) next
            threading.Event().wait(2)  # let the vial save take the encounter's lock and reach its refresh
        return real_open_flags(issues, now)

    monkeypatch.setattr(services, "_open_flags", open_flags)

    def vials():
        sweep_between_steps.wait(20)
        return services.record_vials(Administration.objects.get(pk=a.pk), ndc="50242-051-21", lot="LOT7", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=7, actor=nurse)

    results = run_named(sweep=lambda: services.sweep_flags(now=timezone.now()), vials=vials)
    assert results["vials"][0] == "ok" and results["sweep"][0] == "ok", results


@pytest.mark.django_db(transaction=True)
def test_a_vial_save_during_a_sweep_is_not_a_500(clinic, nurse, monkeypatch):
    enc, (a, b) = _stopped_pair(clinic)
    chart_vials(b)
    DocumentationFlag.objects.filter(encounter=enc).delete()
    DocumentationFlag.objects.create(encounter=enc, administration=b, kind="ndc_lot_missing", message="stale", field="ndc", created_at=timezone.now() - dt.timedelta(hours=1))
    sweep_resolved = threading.Event()
    real_open_flags, real_refresh = services._open_flags, services._refresh

    def open_flags(issues, now):
        if threading.current_thread().name == "sweep" and not sweep_resolved.is_set():
            sweep_resolved.set()  # the stale flag is resolved (locked) by the sweep
            threading.Event().wait(1)  # the nurse's save writes its audit row meanwhile
        return real_open_flags(issues, now)

    def refresh(encounter):
        if threading.current_thread().name == "vials":
            threading.Event().wait(3)  # the sweep now waits on the audit chain head
        return real_refresh(encounter)

    monkeypatch.setattr(services, "_open_flags", open_flags)
    monkeypatch.setattr(services, "_refresh", refresh)

    def vials():
        sweep_resolved.wait(20)
        return _vials_post(nurse, a)()

    results = run_named(sweep=lambda: services.sweep_flags(now=timezone.now()), vials=vials)
    assert results["vials"] == ("ok", 200), results


def _strike_queries(client, clinic, nurse, n):
    enc, (a, _) = _stopped_pair(clinic)
    for i in range(n):
        site = AccessSiteFactory(encounter=enc, label=f"S{i}")
        chart_vials(AdministrationFactory(encounter=enc, access_site=site, drug=DrugFactory(name=f"filler {i}"), started_at=T0, stopped_at=T0 + dt.timedelta(minutes=90)))
    services.record_vials(Administration.objects.get(pk=a.pk), ndc="50242-051-21", lot="LOT7", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=7, actor=nurse)
    vial = a.vial_uses.get()
    with CaptureQueriesContext(connection) as ctx:
        assert client.post(reverse("charting:remove_vials", kwargs={"pk": a.pk}), {"vial": vial.pk}, **HTMX).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_striking_vials_costs_the_same_queries_for_3_and_13_drugs(nurse_client, clinic, nurse):
    assert _strike_queries(nurse_client, clinic, nurse, 1) == _strike_queries(nurse_client, clinic, nurse, 11)
