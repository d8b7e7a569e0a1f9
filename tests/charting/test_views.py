"""Nurse views, tested thinly: status, role, clinic scoping, partial vs page, queries."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from charting import services
from charting.models import AccessSite, Administration, Encounter
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, chart_vials

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic, given_name="Ada", family_name="Zed", mrn="ZZCANARY-4711"))


@pytest.fixture
def adm(encounter):
    return AdministrationFactory(encounter=encounter, label="infliximab", drug=DrugFactory(name="infliximab"))


def url(name, obj):
    return reverse(f"charting:{name}", kwargs={"pk": obj.pk})


# --- roles and clinics --------------------------------------------------------------


def test_anonymous_goes_to_login(client, encounter):
    response = client.get(url("encounter", encounter))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("name", ["encounter", "worklist"])
def test_a_coder_gets_403(client, coder, encounter, name):
    client.force_login(coder)
    target = reverse("charting:worklist") if name == "worklist" else url(name, encounter)
    assert client.get(target).status_code == 403


def test_a_coder_cannot_start_a_drug(client, coder, adm):
    client.force_login(coder)
    assert client.post(url("start_administration", adm)).status_code == 403
    adm.refresh_from_db()
    assert adm.started_at is None


@pytest.mark.parametrize("name", ["start_administration", "stop_administration", "resume_administration", "pause_administration", "correct_time"])
def test_another_clinics_administration_is_404(client, other_clinic_nurse, adm, name):
    client.force_login(other_clinic_nurse)
    assert client.post(url(name, adm), {"reason": "x"}).status_code == 404


@pytest.mark.parametrize("name", ["encounter", "add_access_site", "add_administration", "sign_encounter"])
def test_another_clinics_encounter_is_404(client, other_clinic_nurse, encounter, name):
    client.force_login(other_clinic_nurse)
    response = client.get(url(name, encounter)) if name == "encounter" else client.post(url(name, encounter), {})
    assert response.status_code == 404
    # No read is audited as a success; the refusal is audited as denied (AUD-2).
    assert not AuditEvent.objects.filter(outcome="success", patient_id=encounter.patient_id).exists()
    assert AuditEvent.objects.filter(outcome="denied", object_id=str(encounter.pk), actor=other_clinic_nurse).count() == 1


def test_writes_refuse_get(nurse_client, adm):
    assert nurse_client.get(url("start_administration", adm)).status_code == 405
    assert nurse_client.get(url("sign_encounter", adm.encounter)).status_code == 405


# --- worklist ----------------------------------------------------------------------------


def test_worklist_shows_todays_encounters_of_my_clinics(nurse_client, encounter, other_clinic, clinic):
    running = AdministrationFactory(encounter=encounter, started_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    running.flags.create(encounter=encounter, kind="still_running", message="x")
    EncounterFactory(patient=PatientFactory(clinic=other_clinic, family_name="Elsewhere"))
    EncounterFactory(patient=PatientFactory(clinic=clinic, family_name="Yesterday"), date_of_service=dt.date(2020, 1, 1))
    response = nurse_client.get(reverse("charting:worklist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Zed, Ada" in body and "ZZCANARY-4711" in body
    assert [e.patient.family_name for e in response.context["encounters"]] == ["Zed"]
    assert "Elsewhere" not in body  # not even in the patient choices
    row = response.context["encounters"][0]
    assert (row.running_count, row.open_flag_count) == (1, 1)
    assert response["Cache-Control"].startswith("max-age=0")


def test_worklist_query_count_does_not_grow(nurse_client, clinic, django_assert_max_num_queries):
    def build(n):
        for _ in range(n):
            AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)))

    # session, user, role check, my clinics (each one's "today"), encounters with
    # counts as subqueries, my clinics again and earlier days' encounters with
    # open flags, patient choices of the open form, the coders' open queries
    # (with patient, clinic, drug and coder) = 9; + the PHI request's one audit row (audit/phi.py): savepoint, role, chain-head lock, insert, head move, release = 15
    build(1)
    # + the session's two-factor check (roles.needs_two_factor, django-otp): +1
    with django_assert_max_num_queries(16):
        nurse_client.get(reverse("charting:worklist"))
    build(9)
    with django_assert_max_num_queries(16):
        assert len(nurse_client.get(reverse("charting:worklist")).context["encounters"]) == 10


def test_open_encounter_redirects_to_the_chart(nurse_client, clinic):
    patient = PatientFactory(clinic=clinic)
    response = nurse_client.post(reverse("charting:open_encounter"), {"patient": patient.pk, "setting": "office"})
    enc = Encounter.objects.get(patient=patient)
    assert response.status_code == 302 and response["Location"] == url("encounter", enc)


def test_open_encounter_refuses_another_clinics_patient(nurse_client, other_clinic):
    response = nurse_client.post(reverse("charting:open_encounter"), {"patient": PatientFactory(clinic=other_clinic).pk, "setting": "office"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Encounter.objects.exists()


# --- the encounter page ----------------------------------------------------------------------


def test_encounter_page_renders_and_is_audited(nurse_client, nurse, adm):
    response = nurse_client.get(url("encounter", adm.encounter))
    assert response.status_code == 200
    body = response.content.decode()
    for testid in ["sign-encounter", "start-infliximab", "add-site-submit", "add-administration-submit", "correct-infliximab", "status-infliximab"]:
        assert f'data-testid="{testid}"' in body
    assert "HX-Request" in response["Vary"]
    event = AuditEvent.objects.get(action="charting.encounter.viewed")
    assert (event.actor, event.patient_id, event.object_id) == (nurse, adm.encounter.patient_id, str(adm.encounter.pk))


def test_unverified_drugs_are_marked(nurse_client, encounter):
    AdministrationFactory(encounter=encounter, label="doubtful", drug=DrugFactory(name="doubtful", is_verified=False))
    body = nurse_client.get(url("encounter", encounter)).content.decode()
    assert 'data-testid="unverified-doubtful"' in body
    assert "doubtful — unverified" in body  # in the drug select


def test_encounter_page_query_count_does_not_grow(nurse_client, encounter, django_assert_max_num_queries):
    site = AccessSiteFactory(encounter=encounter, label="A")

    def build(n):
        for _ in range(n):
            adm = AdministrationFactory(encounter=encounter, access_site=site, started_at=dt.datetime(2026, 1, 1, 14, tzinfo=dt.UTC))
            adm.pauses.create(paused_at=adm.started_at, resumed_at=adm.started_at + dt.timedelta(minutes=5), reason="x")

    # session, user, role check; encounter+patient+clinic+signer; access sites;
    # other services; administrations+drug+site+waste confirmer; pauses; vials;
    # corrections (+corrector); open flags; amendments (+author, reason);
    # audit insert; drug choices; access-site choices = 15 (a signed encounter
    # adds the coders' queries and, while one is open, the amendment reasons)
    build(1)
    # + the audit row as savepoint, chain-head lock, head move, release (the insert was counted before) = 20
    # + the session's two-factor check (roles.needs_two_factor, django-otp): +1 = 21
    # + issue #8: the access sites' checks, the latest wristband check, the
    #   vitals, the reactions = 25 (as tests/charting/test_query_budgets.py)
    with django_assert_max_num_queries(25):
        nurse_client.get(url("encounter", encounter))
    build(9)
    with django_assert_max_num_queries(25):
        response = nurse_client.get(url("encounter", encounter))
    assert len(response.context["administrations"]) == 10


# --- adding sites and drugs ---------------------------------------------------------------------


def test_add_access_site_plain_post_redirects(nurse_client, encounter):
    response = nurse_client.post(url("add_access_site", encounter), {"site-kind": "peripheral_iv", "site-location": "left forearm", "site-gauge": "22"})
    assert response.status_code == 302
    assert AccessSite.objects.get(encounter=encounter).label == "A"


def test_add_access_site_error_keeps_what_was_typed(nurse_client, encounter):
    data = {"site-kind": "peripheral_iv", "site-location": "right hand", "site-gauge": "22", "site-separate_site_medically_required": "on"}
    page = nurse_client.post(url("add_access_site", encounter), data)
    assert page.status_code == 400
    assert "Say why a separate site was medically required." in page.content.decode()
    partial = nurse_client.post(url("add_access_site", encounter), data, **HTMX)
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body
    assert "Say why a separate site was medically required." in body and 'value="right hand"' in body
    assert not AccessSite.objects.exists()


def test_add_access_site_htmx_success_refreshes_the_page(nurse_client, encounter):
    response = nurse_client.post(url("add_access_site", encounter), {"site-kind": "port"}, **HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == url("encounter", encounter)


def test_add_administration_needs_a_site_for_iv(nurse_client, encounter):
    drug = DrugFactory(name="rituximab")
    data = {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-dose_value": "500", "adm-dose_unit": "mg", "adm-purpose": "treatment"}
    response = nurse_client.post(url("add_administration", encounter), data, **HTMX)
    assert response.status_code == 200 and "This route needs an access site" in response.content.decode()
    site = AccessSiteFactory(encounter=encounter)
    response = nurse_client.post(url("add_administration", encounter), data | {"adm-access_site": site.pk})
    assert response.status_code == 302
    adm = Administration.objects.get()
    assert (adm.label, adm.dose_value, adm.admin_class) == ("rituximab", Decimal("500.000"), "chemo_complex")


# --- one-tap actions --------------------------------------------------------------------------------


def test_start_htmx_returns_the_administration_partial(nurse_client, adm):
    response = nurse_client.post(url("start_administration", adm), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<article class="card mb-3 administration state-running" id="adm-{adm.pk}"')
    assert 'data-testid="stop-infliximab"' in body and 'data-testid="pause-infliximab"' in body
    adm.refresh_from_db()
    assert adm.started_at is not None


def test_start_without_js_redirects_to_the_page(nurse_client, adm):
    response = nurse_client.post(url("start_administration", adm))
    assert response.status_code == 302 and response["Location"] == url("encounter", adm.encounter) + f"#adm-{adm.pk}"


def test_double_tap_stop_reports_instead_of_failing(nurse_client, adm):
    nurse_client.post(url("start_administration", adm), **HTMX)
    nurse_client.post(url("stop_administration", adm), **HTMX)
    again = nurse_client.post(url("stop_administration", adm), **HTMX)
    assert again.status_code == 200
    assert "already stopped at" in again.content.decode()
    assert AuditEvent.objects.filter(action="charting.administration.stopped").count() == 1


def test_refusals_show_on_the_administration(nurse_client, adm):
    response = nurse_client.post(url("stop_administration", adm), **HTMX)
    assert response.status_code == 200 and "has not started yet" in response.content.decode()
    response = nurse_client.post(url("stop_administration", adm), follow=True)
    assert "has not started yet" in response.content.decode()


def test_pause_needs_a_reason_and_resume(nurse_client, adm):
    nurse_client.post(url("start_administration", adm))
    response = nurse_client.post(url("pause_administration", adm), {"reason": ""}, **HTMX)
    assert response.status_code == 200 and "error-infliximab" in response.content.decode()
    response = nurse_client.post(url("pause_administration", adm), {"reason": "Pump alarm"}, **HTMX)
    assert 'data-testid="resume-infliximab"' in response.content.decode()
    response = nurse_client.post(url("resume_administration", adm), **HTMX)
    assert 'data-state="running"' in response.content.decode()


def test_correct_time_form(nurse_client, adm, clinic):
    services.start_administration(adm, actor=None)
    adm.refresh_from_db()
    local = adm.started_at.astimezone(clinic.tz) - dt.timedelta(minutes=5)
    missing_reason = nurse_client.post(url("correct_time", adm), {"target": "started_at", "new_value": local.strftime("%Y-%m-%dT%H:%M")}, **HTMX)
    body = missing_reason.content.decode()
    assert missing_reason.status_code == 200 and "A reason is required." in body and " open>" in body
    ok = nurse_client.post(url("correct_time", adm), {"target": "started_at", "new_value": local.strftime("%Y-%m-%dT%H:%M"), "reason": "Tapped late"}, **HTMX)
    assert "Tapped late" in ok.content.decode() and 'data-testid="corrections-infliximab"' in ok.content.decode()
    adm.refresh_from_db()
    assert adm.started_at.astimezone(clinic.tz).strftime("%H:%M") == local.strftime("%H:%M")
    future = nurse_client.post(url("correct_time", adm), {"target": "started_at", "new_value": "2099-01-01T10:00", "reason": "x"})
    assert future.status_code == 400 and "is in the future" in future.content.decode()


# --- signing -----------------------------------------------------------------------------------------


def test_sign_refused_while_running_then_signed(nurse_client, adm, monkeypatch):
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    nurse_client.post(url("start_administration", adm))
    response = nurse_client.post(url("sign_encounter", adm.encounter), follow=True)
    assert "still running or paused: infliximab" in response.content.decode()
    nurse_client.post(url("stop_administration", adm))
    chart_vials(adm)
    response = nurse_client.post(url("sign_encounter", adm.encounter), follow=True)
    body = response.content.decode()
    assert "Encounter signed" in body and 'data-testid="sign-encounter"' not in body and 'data-testid="start-infliximab"' not in body
    adm.encounter.refresh_from_db()
    assert adm.encounter.status == "signed"
