"""Attack 7: vial charting, payers in the database, rule pages, incomplete-record
flags (sign anyway) and the coder queue's flag filter.

Every refusal is a clear message or a 4xx, never a 500 and never lost data.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting import checks, services
from charting.models import Administration, Encounter, VialUse
from charting.services import ChartingError
from coding.models import Payer, PayerFamilyOverride
from coding.services import suggest_for_encounter
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def url(name, obj):
    return reverse(f"charting:{name}", kwargs={"pk": obj.pk})


def body(response) -> str:
    return response.content.decode()


GOOD = {"ndc": "57894-030-01", "lot": "AB123", "expiry": "", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "5"}


@pytest.fixture
def nurse_client(client, nurse):
    client.force_login(nurse)
    return client


# --- the Vials form ---------------------------------------------------------------


@pytest.mark.parametrize(
    "change, expect",
    [
        ({"ndc": "12-34"}, "NDC"),
        ({"ndc": "5789403001"}, "NDC"),  # 10 digits, no hyphens: ambiguous
        ({"ndc": "57894-030-01-9"}, "NDC"),
        ({"ndc": "５７８９４-０３０-０１"}, "NDC"),  # full-width digits
        ({"ndc": "57894-030-01\n"}, None),  # trailing newline stripped: accepted
        ({"ndc": ""}, "NDC"),
        ({"count": "0"}, "1"),
        ({"count": "-3"}, "1"),
        ({"count": "99999999999999999999999"}, "999"),
        ({"count": "1e3"}, "whole number"),
        ({"size_value": "0"}, "0.001"),
        ({"size_value": "-5"}, "0.001"),
        ({"size_value": "NaN"}, "number"),
        ({"size_value": "Infinity"}, "number"),
        ({"size_value": "1" * 40}, "digits"),
        ({"size_unit": "mL"}, "converts"),
        ({"size_unit": "units"}, "converts"),
        ({"size_unit": "kg"}, "valid choice"),
        ({"container_type": "both"}, "valid choice"),
        ({"expiry": "2000-01-01"}, "expired"),
        ({"expiry": "not a date"}, "date"),
        ({"lot": "x" * 41}, "40"),
        ({"lot": "   "}, "lot"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_vial_form_bad_input_is_a_message(nurse_client, adm, change, expect, htmx):
    response = nurse_client.post(url("record_vials", adm), GOOD | change, follow=not htmx, **(HTMX if htmx else {}))
    assert response.status_code in (200, 400)
    if expect is None:
        assert VialUse.objects.filter(administration=adm).count() == 1
        return
    assert VialUse.objects.filter(administration=adm).count() == 0
    assert expect.lower() in body(response).lower()


def test_vial_lot_with_script_is_stored_as_text_and_escaped(nurse_client, adm):
    lot = "<script>alert(1)</script>"
    response = nurse_client.post(url("record_vials", adm), GOOD | {"lot": lot}, follow=True)
    assert response.status_code == 200
    assert VialUse.objects.get(administration=adm).lot == lot
    page = body(nurse_client.get(url("encounter", adm.encounter)))
    assert lot not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_vials_double_post_is_one_row_one_audit(nurse_client, adm):
    for _ in range(2):
        assert nurse_client.post(url("record_vials", adm), GOOD, follow=True).status_code == 200
    assert VialUse.objects.filter(administration=adm).count() == 1
    assert AuditEvent.objects.filter(action="charting.administration.vials_recorded").count() == 1


# --- waste ------------------------------------------------------------------------


@pytest.fixture
def six_vials(adm, nurse):
    """500 mg dose from 6 x 100 mg single-dose vials: 100 mg left."""
    return services.record_vials(
        adm, ndc="57894-030-01", lot="L1", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=6, actor=nurse
    )


@pytest.mark.parametrize(
    "posted",
    [
        {"wasted_value": "100.001", "wasted_unit": "mg"},
        {"wasted_value": "0.2", "wasted_unit": "g"},
        {"wasted_value": "100000001", "wasted_unit": "mcg"},
        {"wasted_value": "1", "wasted_unit": "mL"},
        {"wasted_value": "-1", "wasted_unit": "mg"},
        {"none": "on", "wasted_value": "5", "wasted_unit": "mg"},
        {"wasted_unit": "mg"},
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_waste_more_than_left_or_malformed_is_refused(nurse_client, six_vials, posted, htmx):
    response = nurse_client.post(url("confirm_waste", six_vials), posted, follow=not htmx, **(HTMX if htmx else {}))
    assert response.status_code in (200, 400)
    six_vials.refresh_from_db()
    assert six_vials.waste_confirmed_at is None and six_vials.wasted_value is None


def test_waste_exactly_what_was_left_is_accepted(nurse_client, six_vials):
    nurse_client.post(url("confirm_waste", six_vials), {"wasted_value": "0.1", "wasted_unit": "g"}, follow=True)
    six_vials.refresh_from_db()
    assert six_vials.wasted_value == Decimal("0.1") and six_vials.wasted_unit == "g"


def test_waste_on_multi_dose_is_refused(nurse_client, adm, nurse):
    services.record_vials(
        adm, ndc="57894-030-01", lot="L1", expiry=None, container_type="multi_dose", size_value=Decimal(1000), size_unit="mg", count=1, actor=nurse
    )
    response = nurse_client.post(url("confirm_waste", adm), {"wasted_value": "0", "wasted_unit": "mg", "none": "on"}, follow=True)
    assert response.status_code == 200
    assert "multi-dose" in body(response)
    adm.refresh_from_db()
    assert adm.waste_confirmed_at is None


def test_service_waste_on_multi_dose_is_refused(adm, nurse):
    services.record_vials(
        adm, ndc="57894-030-01", lot="L1", expiry=None, container_type="multi_dose", size_value=Decimal(1000), size_unit="mg", count=1, actor=nurse
    )
    with pytest.raises(ChartingError, match="multi-dose"):
        services.confirm_waste(adm, wasted_value=Decimal(0), wasted_unit="mg", actor=nurse)


# --- signed encounter ----------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_vials_waste_remove_on_a_signed_encounter_are_refused(nurse_client, six_vials, nurse, htmx):
    Encounter.objects.filter(pk=six_vials.encounter_id).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    row = VialUse.objects.get(administration=six_vials)
    before = AuditEvent.objects.filter(action__startswith="charting.administration", outcome="success").count()
    kw = HTMX if htmx else {}
    for name, data in (
        ("record_vials", GOOD | {"lot": "NEW"}),
        ("confirm_waste", {"none": "on", "wasted_unit": "mg"}),
        ("remove_vials", {"vial": str(row.pk)}),
    ):
        response = nurse_client.post(url(name, six_vials), data, **kw)
        assert response.status_code in (400, 409), name  # 400: the form's own error comes first
        if response.status_code == 409 and htmx:
            response = nurse_client.get(response["HX-Redirect"])
        assert "signed" in body(response), name
    assert list(VialUse.objects.filter(administration=six_vials)) == [row]
    six_vials.refresh_from_db()
    assert six_vials.waste_confirmed_at is None
    # No change was audited; the refused requests are audited as failures (AUD-1).
    assert AuditEvent.objects.filter(action__startswith="charting.administration", outcome="success").count() == before


# --- remove_vials with someone else's row -------------------------------------------


@pytest.mark.parametrize("vial", ["other_drug", "other_clinic", "garbage", "-1", "", "99999999999999999999999"])
def test_remove_vials_with_a_foreign_id_removes_nothing(nurse_client, six_vials, encounter, nurse, other_clinic, other_clinic_nurse, vial):
    other = AdministrationFactory(encounter=encounter, label="other", drug=DrugFactory(name="other drug"), access_site=six_vials.access_site)
    services.record_vials(
        other, ndc="57894-030-01", lot="L2", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=5, actor=nurse
    )
    far = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=other_clinic, mrn="FAR-1")), label="far")
    services.record_vials(
        far, ndc="57894-030-01", lot="L3", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=5, actor=other_clinic_nurse
    )
    ids = {"other_drug": str(VialUse.objects.get(administration=other).pk), "other_clinic": str(VialUse.objects.get(administration=far).pk)}
    total = VialUse.objects.count()
    response = nurse_client.post(url("remove_vials", six_vials), {"vial": ids.get(vial, vial)}, follow=True)
    assert response.status_code == 200
    assert VialUse.objects.count() == total


def test_remove_vials_on_another_clinics_administration_is_404(nurse_client, other_clinic, other_clinic_nurse):
    far = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=other_clinic, mrn="FAR-2")), label="far")
    services.record_vials(
        far, ndc="57894-030-01", lot="L3", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=5, actor=other_clinic_nurse
    )
    row = VialUse.objects.get(administration=far)
    for name, data in (("remove_vials", {"vial": str(row.pk)}), ("record_vials", GOOD), ("confirm_waste", {"none": "on", "wasted_unit": "mg"})):
        assert nurse_client.post(url(name, far), data).status_code == 404
    assert VialUse.objects.filter(pk=row.pk).exists()


# --- recode ----------------------------------------------------------------------------


@pytest.mark.parametrize("bogus", ["bogus", "1", str(uuid.uuid4()), "'; drop table x; --", ""])
def test_recode_with_a_bogus_id_is_a_command_error(bogus):
    with pytest.raises(CommandError) as info:
        call_command("recode", bogus)
    assert info.value.returncode == 2


def test_recode_of_a_draft_is_a_command_error(encounter):
    with pytest.raises(CommandError, match="signed"):
        call_command("recode", str(encounter.pk))


# --- rule pages -------------------------------------------------------------------------


@pytest.mark.parametrize("rule_id", ["R0", "R999", "..", "../", "R1%00", "R1%2F..", "%2e%2e", "r1", "R01", " R1", "R1 ", "<script>", "x" * 5000])
def test_rule_page_with_a_bogus_id_is_404(client, coder, rule_id):
    client.force_login(coder)
    response = client.get(f"/coder/rules/{rule_id}/")
    assert response.status_code == 404


def test_rule_page_works_and_is_refused_to_a_nurse(client, coder, nurse):
    client.force_login(coder)
    assert client.get("/coder/rules/R1/").status_code == 200
    client.force_login(nurse)
    assert client.get("/coder/rules/R1/").status_code == 403
    client.logout()
    assert client.get("/coder/rules/R1/").status_code in (302, 403)


# --- payers in the admin --------------------------------------------------------------------


@pytest.fixture
def payer(db):
    return Payer.objects.update_or_create(code="acme", defaults={"name": "Acme"})[0]


def payer_form(payer, **change):
    data = {
        "name": payer.name,
        "distinct_modifier": "59",
        "separate_encounter_modifier": "59",
        "injection_repeat_modifier": "59",
        "secondary_hydration_59": payer.secondary_hydration_59,
        "report_jz": "on",
        "family_overrides-TOTAL_FORMS": "0",
        "family_overrides-INITIAL_FORMS": "0",
        "family_overrides-MIN_NUM_FORMS": "0",
        "family_overrides-MAX_NUM_FORMS": "1000",
    }
    return data | change


@pytest.mark.parametrize("role", ["nurse", "coder"])
@pytest.mark.parametrize("staff", [False, True])
def test_nurse_or_coder_cannot_edit_a_payer_in_the_admin(client, clinic, payer, role, staff):
    user = UserFactory(username=f"{role}_{staff}", roles=[role], clinics=[clinic], is_staff=staff)
    client.force_login(user)
    change = reverse("admin:coding_payer_change", args=[payer.pk])
    assert client.get(change).status_code in (302, 403)
    response = client.post(change, payer_form(payer, name="Hacked", distinct_modifier="XU"))
    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert "login" in response["Location"]
    assert client.post(reverse("admin:coding_payer_add"), payer_form(payer) | {"code": "evil", "name": "Evil"}).status_code in (302, 403)
    payer.refresh_from_db()
    assert payer.name == "Acme" and payer.distinct_modifier == "59"
    assert not Payer.objects.filter(code="evil").exists()


@pytest.mark.parametrize(
    "change",
    [
        {"distinct_modifier": "ZZ"},
        {"secondary_hydration_59": "sometimes"},
        {"same_drug_runs": "bogus"},
        {"hydration_volume_floor_ml": "-1"},
        {"hydration_volume_floor_ml": "99999999999999"},
        {"line_dates": ""},
        {"family_overrides-TOTAL_FORMS": "1", "family_overrides-0-hcpcs": "j0717", "family_overrides-0-family": "therapeutic"},
        {"family_overrides-TOTAL_FORMS": "1", "family_overrides-0-hcpcs": "J0717", "family_overrides-0-family": "hydration"},
        {
            "family_overrides-TOTAL_FORMS": "2",
            "family_overrides-0-hcpcs": "J0717",
            "family_overrides-0-family": "therapeutic",
            "family_overrides-1-hcpcs": "J0717",
            "family_overrides-1-family": "chemo_complex",
        },
        {"family_overrides-TOTAL_FORMS": "garbage"},
    ],
)
def test_admin_invalid_policy_value_is_a_form_error(client, admin, payer, change):
    client.force_login(admin)
    before = Payer.objects.filter(pk=payer.pk).values().get()
    before.pop("updated_at")
    data = (
        payer_form(
            payer,
            same_drug_runs="sum",
            split_dose_injection="one_injection",
            mixed_bag="one_infusion",
            line_dates="start_date",
            combine_hydration_segments="on",
            jz_when_discard_below_unit="on",
        )
        | change
    )
    response = client.post(reverse("admin:coding_payer_change", args=[payer.pk]), data)
    assert response.status_code in (200, 400), response.status_code
    after = Payer.objects.filter(pk=payer.pk).values().get()
    after.pop("updated_at")
    assert after == before
    assert not PayerFamilyOverride.objects.filter(payer=payer).exists()
    payer.to_policy()  # still valid for the engine


@pytest.mark.parametrize("code", ["ACME2", "has space", "a/b", "", "x" * 41])
def test_admin_adding_a_payer_with_a_bad_code_is_a_form_error(client, admin, payer, code):
    client.force_login(admin)
    count = Payer.objects.count()
    data = payer_form(payer, same_drug_runs="sum", split_dose_injection="one_injection", mixed_bag="one_infusion", line_dates="start_date") | {
        "code": code,
        "name": "New",
    }
    response = client.post(reverse("admin:coding_payer_add"), data)
    assert response.status_code == 200
    assert Payer.objects.count() == count


# --- a payer code without a Payer row -------------------------------------------------------


def test_admin_edits_every_policy_setting(client, admin, payer):
    """Every PayerPolicy setting is a field of the admin form (not only the first five)."""
    client.force_login(admin)
    data = payer_form(
        payer,
        same_drug_runs="sequential",
        split_dose_injection="one_injection",
        mixed_bag="one_infusion",
        line_dates="start_date",
        hydration_volume_floor_ml="50",
        port_flush_with_em="on",
    )
    response = client.post(reverse("admin:coding_payer_change", args=[payer.pk]), data)
    assert response.status_code == 302, body(response)
    payer.refresh_from_db()
    assert payer.hydration_volume_floor_ml == 50 and payer.port_flush_with_em and payer.same_drug_runs == "sequential"
    payer.to_policy()


def test_encounter_with_unknown_payer_codes_with_a_warning(client, coder, signed_encounter):
    Encounter.objects.filter(pk=signed_encounter.pk).update(payer="no-such-payer")
    suggestion = suggest_for_encounter(signed_encounter.pk)
    assert any(w.get("kind") == "payer_policy" or "payer" in str(w).lower() for w in suggestion.warnings)
    client.force_login(coder)
    assert client.get(reverse("coding:review", kwargs={"encounter_id": signed_encounter.pk})).status_code == 200
    call_command("recode", str(signed_encounter.pk))


# --- sign anyway ------------------------------------------------------------------------------


@pytest.fixture
def incomplete(adm):
    """A stopped drug with no vials charted: signing asks for confirmation."""
    now = timezone.now()
    Administration.objects.filter(pk=adm.pk).update(started_at=now - dt.timedelta(minutes=90), stopped_at=now - dt.timedelta(minutes=30))
    adm.refresh_from_db()
    return adm


def _digest(encounter):
    # What the page's "Sign anyway" posts: the blocking items as at signing.
    issues = checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=timezone.now(), signing=True)
    blocking = [i for i in issues if i.blocking]
    assert blocking
    return checks.digest(blocking)


def test_sign_anyway_replayed_twice_signs_once(nurse_client, incomplete):
    enc = incomplete.encounter
    response = nurse_client.post(url("sign_encounter", enc), follow=True)
    assert response.status_code == 200
    assert Encounter.objects.get(pk=enc.pk).status != "signed"
    digest = _digest(enc)
    for _ in range(2):
        assert nurse_client.post(url("sign_encounter", enc), {"confirmed": digest}, follow=True).status_code == 200
    enc.refresh_from_db()
    assert enc.status == "signed"
    assert AuditEvent.objects.filter(action="charting.encounter.signed").count() == 1


@pytest.mark.parametrize("confirmed", ["garbage", "", "x" * 100000])
def test_sign_anyway_with_a_wrong_digest_asks_again(nurse_client, incomplete, confirmed):
    response = nurse_client.post(url("sign_encounter", incomplete.encounter), {"confirmed": confirmed}, follow=True)
    assert response.status_code == 200
    assert Encounter.objects.get(pk=incomplete.encounter_id).status != "signed"


def test_sign_anyway_by_a_coder_is_403(client, coder, incomplete):
    digest = _digest(incomplete.encounter)
    client.force_login(coder)
    assert client.post(url("sign_encounter", incomplete.encounter), {"confirmed": digest}).status_code == 403
    assert Encounter.objects.get(pk=incomplete.encounter_id).status != "signed"
    assert not AuditEvent.objects.filter(action="charting.encounter.signed").exists()


# --- the queue's flag filter -------------------------------------------------------------------


@pytest.mark.parametrize("query", ["?flags=garbage", "?flags=", "?flags=open&flags=x", "?flags=%00", "?flags[]=open", "?flags=" + "o" * 10000])
def test_queue_flag_filter_garbage_is_not_a_500(client, coder, signed_encounter, query):
    client.force_login(coder)
    assert client.get(reverse("coding:queue") + query).status_code == 200
