"""Fixing what the flags point at on a DRAFT encounter (issue #5), and
striking a drug as entered in error (REC-4).

One test per check: the gap is charted, the flag is open, the ready panel's
fix link names an input that is on the page, the fix goes through the new
form (htmx and plain POST), the panel clears and the flag is resolved at
once (services.refresh_flags, no sweep). Then bad input (kept as typed, field
errors), signed encounters (409), another clinic (404), and entered in error.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting import services
from charting.models import AdminFamily, Administration, Amendment, AmendmentReason, DocumentationFlag, OtherService
from coding.documentation import encounter_doc
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
H = dt.timedelta(hours=1)


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic))


@pytest.fixture
def site(encounter):
    return AccessSiteFactory(encounter=encounter, label="A")


def given(encounter, site, *, name="infliximab", start_hours_ago=2, minutes=60, family=AdminFamily.CHEMO_COMPLEX, **kwargs):
    """A drug given (started and stopped) on `site`."""
    started = timezone.now() - start_hours_ago * H
    stopped = started + dt.timedelta(minutes=minutes) if minutes is not None else None
    kwargs.setdefault("label", name[:20])
    drug = DrugFactory(name=name, admin_family=family)
    return AdministrationFactory(encounter=encounter, access_site=site, drug=drug, started_at=started, stopped_at=stopped, **kwargs)


def page(client, encounter) -> str:
    response = client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk}))
    assert response.status_code == 200
    return response.content.decode()


def fix_anchor(html: str, kind: str) -> str:
    """The id the panel's fix link for `kind` lands on (asserting it is on the page)."""
    match = re.search(rf'href="[^"]*#([^"]+)" data-testid="fix-{kind}"', html)
    assert match, f"no fix link for {kind}"
    anchor = match.group(1)
    assert f'id="{anchor}"' in html, f"the fix link of {kind} points at #{anchor}, which is not on the page"
    return anchor


def edit_data(adm, **changes) -> dict:
    data = {
        "dose_value": "" if adm.dose_value is None else str(adm.dose_value),
        "dose_unit": adm.dose_unit,
        "purpose": adm.purpose,
        "route": adm.route,
        "access_site": str(adm.access_site_id or ""),
        "concurrent_with": str(adm.concurrent_with_id or ""),
        "bag": adm.bag,
    }
    return data | changes


def post(client, url, data, htmx: bool):
    response = client.post(url, data, **(HTMX if htmx else {}))
    if htmx:
        assert response.status_code == 200, response.content[:500]
        assert response["HX-Trigger"] == "chart-changed"
    else:
        assert response.status_code == 302
    return response


def open_flag(encounter, kind):
    return DocumentationFlag.objects.open().filter(encounter=encounter, kind=kind).first()


def assert_fixed(client, encounter, kind, flag):
    assert f'data-testid="issue-{kind}"' not in page(client, encounter)
    flag.refresh_from_db()
    assert flag.resolved_at is not None, "refresh_flags should have resolved the flag at once"
    assert open_flag(encounter, kind) is None


# --- one test per check -------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_dose_missing_is_fixed_on_the_drug_card(nurse_client, encounter, site, htmx):
    adm = given(encounter, site, dose_value=None, dose_unit="")
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "dose_missing")
    assert flag is not None
    html = page(nurse_client, encounter)
    assert fix_anchor(html, "dose_missing") == f"id_edit_{adm.pk}_dose_value"
    response = post(nurse_client, reverse("charting:edit_administration", kwargs={"pk": adm.pk}), edit_data(adm, dose_value="350", dose_unit="mg"), htmx)
    adm.refresh_from_db()
    assert (adm.dose_value, adm.dose_unit) == (Decimal("350"), "mg")
    if htmx:
        assert "350 mg" in response.content.decode()
    assert_fixed(nurse_client, encounter, "dose_missing", flag)
    row = AuditEvent.objects.filter(action="charting.administration.edited").get()
    assert row.detail["changed"]["dose_value"] == {"old": None, "new": "350"}


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_no_access_site_is_fixed_by_picking_the_site(nurse_client, encounter, site, htmx):
    adm = given(encounter, None, route="iv_push", minutes=0)
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "no_access_site")
    assert flag is not None
    assert fix_anchor(page(nurse_client, encounter), "no_access_site") == f"id_edit_{adm.pk}_access_site"
    post(nurse_client, reverse("charting:edit_administration", kwargs={"pk": adm.pk}), edit_data(adm, access_site=str(site.pk)), htmx)
    adm.refresh_from_db()
    assert adm.access_site_id == site.pk
    assert_fixed(nurse_client, encounter, "no_access_site", flag)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_hydration_without_indication_is_fixed_by_the_purpose(nurse_client, encounter, site, htmx):
    adm = given(encounter, site, name="sodium chloride 0.9%", family=AdminFamily.HYDRATION, dose_value=Decimal("1000"), dose_unit="mL")
    assert adm.admin_class == AdminFamily.HYDRATION
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "hydration_no_indication")
    assert flag is not None
    assert fix_anchor(page(nurse_client, encounter), "hydration_no_indication") == f"id_edit_{adm.pk}_purpose"
    post(nurse_client, reverse("charting:edit_administration", kwargs={"pk": adm.pk}), edit_data(adm, purpose="hydration_medically_necessary"), htmx)
    assert_fixed(nurse_client, encounter, "hydration_no_indication", flag)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_overlap_on_one_site_is_fixed_by_concurrent_with(nurse_client, encounter, site, htmx):
    first = given(encounter, site, name="infliximab", start_hours_ago=3, minutes=120)
    second = given(encounter, site, name="methylprednisolone", start_hours_ago=2, minutes=30)
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "overlap_same_site")
    assert flag is not None and flag.administration_id == second.pk
    assert fix_anchor(page(nurse_client, encounter), "overlap_same_site") == f"id_edit_{second.pk}_concurrent_with"
    post(nurse_client, reverse("charting:edit_administration", kwargs={"pk": second.pk}), edit_data(second, concurrent_with=str(first.pk)), htmx)
    second.refresh_from_db()
    assert second.concurrent_with_id == first.pk
    assert_fixed(nurse_client, encounter, "overlap_same_site", flag)


def test_overlap_can_be_fixed_by_a_shared_bag_too(nurse_client, encounter, site):
    first = given(encounter, site, name="infliximab", start_hours_ago=3, minutes=120, bag="1")
    second = given(encounter, site, name="methylprednisolone", start_hours_ago=2, minutes=30)
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "overlap_same_site")
    post(nurse_client, reverse("charting:edit_administration", kwargs={"pk": second.pk}), edit_data(second, bag="1"), True)
    assert first.bag == "1"
    assert_fixed(nurse_client, encounter, "overlap_same_site", flag)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_second_site_without_a_reason_is_fixed_on_the_site(nurse_client, encounter, site, htmx):
    other = AccessSiteFactory(encounter=encounter, label="B", separate_site_medically_required=True, reason="")
    given(encounter, site, name="infliximab")
    given(encounter, other, name="vincristine")
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "second_site_no_reason")
    assert flag is not None and flag.access_site_id == other.pk
    assert fix_anchor(page(nurse_client, encounter), "second_site_no_reason") == f"id_siteedit_{other.pk}_reason"
    response = post(nurse_client, reverse("charting:edit_access_site", kwargs={"pk": encounter.pk}), {"site": other.pk, "separate_site_medically_required": "on", "reason": "Vesicant on its own line"}, htmx)
    if htmx:
        assert "Vesicant on its own line" in response.content.decode()
    other.refresh_from_db()
    assert (other.separate_site_medically_required, other.reason) == (True, "Vesicant on its own line")
    assert_fixed(nurse_client, encounter, "second_site_no_reason", flag)
    assert AuditEvent.objects.filter(action="charting.access_site.edited").count() == 1


def never_started(encounter, site):
    """A drug added seven hours ago and never started, with its flag."""
    adm = AdministrationFactory(encounter=encounter, access_site=site, drug=DrugFactory(name="rituximab"), label="rituximab")
    Administration.objects.filter(pk=adm.pk).update(recorded_at=timezone.now() - 7 * H)
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "never_started")
    assert flag is not None and flag.administration_id == adm.pk
    return adm, flag


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_never_started_is_fixed_by_the_start_button(nurse_client, encounter, site, htmx):
    adm, flag = never_started(encounter, site)
    assert fix_anchor(page(nurse_client, encounter), "never_started") == f"start-{adm.pk}"
    post(nurse_client, reverse("charting:start_administration", kwargs={"pk": adm.pk}), {}, htmx)
    adm.refresh_from_db()
    assert adm.started_at is not None
    assert_fixed(nurse_client, encounter, "never_started", flag)


def test_never_started_is_fixed_by_striking_it_as_entered_in_error(nurse_client, encounter, site):
    given(encounter, site)
    adm, flag = never_started(encounter, site)
    post(nurse_client, reverse("charting:enter_in_error", kwargs={"pk": adm.pk}), {"reason": "Order cancelled"}, True)
    assert_fixed(nurse_client, encounter, "never_started", flag)


def test_never_started_is_fixed_by_correcting_in_the_start_it_had(nurse_client, encounter, site):
    adm, flag = never_started(encounter, site)
    started = timezone.localtime(timezone.now() - 2 * H, encounter.clinic.tz)
    if started.date() != encounter.date_of_service:  # just after midnight: the start is today
        started = timezone.localtime(timezone.now(), encounter.clinic.tz)
    data = {"target": "started_at", "new_value": started.strftime("%Y-%m-%dT%H:%M"), "reason": "Started, the tap was missed"}
    post(nurse_client, reverse("charting:correct_time", kwargs={"pk": adm.pk}), data, True)
    adm.refresh_from_db()
    assert adm.started_at is not None
    flag.refresh_from_db()
    assert flag.resolved_at is not None


def test_nothing_charted_is_fixed_by_adding_a_drug(nurse_client, encounter, site):
    # An encounter opened seven hours ago, nothing charted since.
    type(encounter).objects.filter(pk=encounter.pk).update(created_at=timezone.now() - 7 * H)
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "nothing_charted")
    assert flag is not None and flag.administration_id is None
    assert fix_anchor(page(nurse_client, encounter), "nothing_charted") == "administration-form"
    drug = DrugFactory(name="denosumab", admin_family=AdminFamily.THERAPEUTIC)
    data = {"adm-drug": drug.pk, "adm-route": "subcutaneous", "adm-dose_value": "60", "adm-dose_unit": "mg", "adm-purpose": "treatment", "adm-admin_class": ""}
    response = nurse_client.post(reverse("charting:add_administration", kwargs={"pk": encounter.pk}), data)
    assert response.status_code == 302, response.content.decode()[:500]
    flag.refresh_from_db()
    assert flag.resolved_at is not None and open_flag(encounter, "nothing_charted") is None


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_em_visit_without_the_separate_work_note_is_fixed_by_the_note(nurse_client, encounter, site, htmx):
    given(encounter, site)
    em = OtherService.objects.create(encounter=encounter, kind=OtherService.Kind.EM_VISIT, level="99213")
    services.refresh_flags(encounter.pk, now=timezone.now())
    flag = open_flag(encounter, "em_not_separate")
    assert flag is not None
    assert fix_anchor(page(nurse_client, encounter), "em_not_separate") == "em-note"
    response = post(nurse_client, reverse("charting:document_em_service", kwargs={"pk": encounter.pk}), {"service": em.pk, "significant_separately_identifiable": "on", "note": "New rash: assessed and treated"}, htmx)
    if htmx:
        assert "separate work documented" in response.content.decode()
    em.refresh_from_db()
    assert (em.significant_separately_identifiable, em.detail) == (True, "New rash: assessed and treated")
    assert_fixed(nurse_client, encounter, "em_not_separate", flag)
    assert encounter_doc(encounter).other_services[0].significant_separately_identifiable is True


# --- bad input is kept as typed --------------------------------------------------------


def test_a_bad_dose_keeps_what_was_typed_and_shows_the_field_error(nurse_client, encounter, site):
    adm = given(encounter, site, dose_value=None, dose_unit="")
    url = reverse("charting:edit_administration", kwargs={"pk": adm.pk})
    response = nurse_client.post(url, edit_data(adm, dose_value="-5", dose_unit="mg", bag="bag one"), **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "The dose must be more than 0." in body
    assert 'value="-5"' in body and 'value="bag one"' in body
    assert f'id="id_edit_{adm.pk}_dose_value"' in body and "is-invalid" in body
    # A plain POST gets the page back (400) with the same typed values.
    response = nurse_client.post(url, edit_data(adm, dose_value="-5", dose_unit="mg", bag="bag one"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "The dose must be more than 0." in body and 'value="-5"' in body and 'value="bag one"' in body
    adm.refresh_from_db()
    assert adm.dose_value is None and adm.bag == ""


def test_a_route_needing_a_site_without_one_is_refused_on_the_site_field(nurse_client, encounter, site):
    adm = given(encounter, None, route="subcutaneous", minutes=0)
    response = nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": adm.pk}), edit_data(adm, route="iv_push", dose_value="7"), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "IV push needs an access site" in body
    assert 'value="7"' in body
    adm.refresh_from_db()
    assert adm.route == "subcutaneous"


def test_concurrent_with_must_be_another_drug_of_this_encounter_on_the_same_site(nurse_client, encounter, site):
    other_site = AccessSiteFactory(encounter=encounter, label="B")
    first = given(encounter, other_site, name="infliximab")
    second = given(encounter, site, name="methylprednisolone")
    with pytest.raises(services.ChartingError) as exc:
        services.edit_administration(second, **_kwargs(second, concurrent_with=first), actor=None)
    assert exc.value.field == "concurrent_with" and "same access site" in exc.value.message
    elsewhere = given(EncounterFactory(patient=encounter.patient), None, name="rituximab", route="subcutaneous")
    with pytest.raises(services.ChartingError) as exc:
        services.edit_administration(second, **_kwargs(second, concurrent_with=elsewhere), actor=None)
    assert exc.value.field == "concurrent_with"
    with pytest.raises(services.ChartingError) as exc:
        services.edit_administration(second, **_kwargs(second, concurrent_with=second), actor=None)
    assert exc.value.field == "concurrent_with"
    # Through the form: a drug of another encounter is not even a choice.
    response = nurse_client.post(reverse("charting:edit_administration", kwargs={"pk": second.pk}), edit_data(second, concurrent_with=str(elsewhere.pk)), **HTMX)
    assert "Select a valid choice" in response.content.decode()


def _kwargs(adm, **changes):
    data = {"dose_value": adm.dose_value, "dose_unit": adm.dose_unit, "purpose": adm.purpose, "route": adm.route, "access_site": adm.access_site, "concurrent_with": None, "bag": adm.bag}
    return data | changes


def test_a_separate_site_without_a_reason_and_an_em_tick_without_a_note_are_refused(nurse_client, encounter, site):
    response = nurse_client.post(reverse("charting:edit_access_site", kwargs={"pk": encounter.pk}), {"site": site.pk, "separate_site_medically_required": "on", "reason": "  "}, **HTMX)
    assert response.status_code == 200 and "Say why a separate site was medically required." in response.content.decode()
    assert 'checked' in response.content.decode()
    em = OtherService.objects.create(encounter=encounter, kind=OtherService.Kind.EM_VISIT, level="99214")
    response = nurse_client.post(reverse("charting:document_em_service", kwargs={"pk": encounter.pk}), {"service": em.pk, "significant_separately_identifiable": "on", "note": ""})
    assert response.status_code == 400 and "Describe the significant, separately identifiable work." in response.content.decode()
    site.refresh_from_db()
    em.refresh_from_db()
    assert not site.separate_site_medically_required and not em.significant_separately_identifiable


def test_no_change_is_a_no_op_without_an_audit_event_of_a_change(encounter, site, nurse):
    adm = given(encounter, site)
    adm = services.edit_administration(adm, **_kwargs(adm), actor=nurse)
    assert adm.notice == "Nothing changed."
    assert not AuditEvent.objects.filter(action="charting.administration.edited").exists()


def test_a_changed_dose_forgets_a_confirmed_waste(encounter, site, nurse):
    from tests.factories import chart_vials

    adm = chart_vials(given(encounter, site))
    assert adm.waste_confirmed_at is not None
    adm = services.edit_administration(adm, **_kwargs(adm, dose_value=Decimal("450")), actor=nurse)
    adm.refresh_from_db()
    assert adm.waste_confirmed_at is None and adm.wasted_value is None
    assert "confirm the waste again" in adm.notice


# --- signed: amend instead; another clinic: 404 ------------------------------------------


def _sign(encounter):
    signer = UserFactory(username="signer", roles=["nurse"], clinics=[encounter.clinic])
    type(encounter).objects.filter(pk=encounter.pk).update(status="signed", signed_by=signer, signed_at=timezone.now())


def test_signed_encounter_answers_409_amend_instead(nurse_client, encounter, site):
    adm = given(encounter, site, dose_value=None, dose_unit="")
    em = OtherService.objects.create(encounter=encounter, kind=OtherService.Kind.EM_VISIT, level="99213")
    _sign(encounter)
    requests = [
        (reverse("charting:edit_administration", kwargs={"pk": adm.pk}), edit_data(adm, dose_value="350", dose_unit="mg")),
        (reverse("charting:edit_access_site", kwargs={"pk": encounter.pk}), {"site": site.pk, "separate_site_medically_required": "on", "reason": "x"}),
        (reverse("charting:document_em_service", kwargs={"pk": encounter.pk}), {"service": em.pk, "significant_separately_identifiable": "on", "note": "x"}),
    ]
    for url, data in requests:
        for extra in (HTMX, {}):
            response = nurse_client.post(url, data, **extra)
            assert response.status_code == 409, (url, response.status_code)
            assert "amendment" in response.content.decode()
    with pytest.raises(services.SignedEncounterError):
        services.edit_administration(adm, **_kwargs(adm, dose_value=Decimal("1")), actor=None)
    adm.refresh_from_db()
    site.refresh_from_db()
    em.refresh_from_db()
    assert adm.dose_value is None and not site.separate_site_medically_required and not em.significant_separately_identifiable
    # The signed chart offers no Edit form (the Amend form is the path).
    html = page(nurse_client, encounter)
    assert f'id="id_edit_{adm.pk}_dose_value"' not in html and f"amend-form-{adm.label}" in html


def test_a_site_or_service_of_another_encounter_is_refused(nurse_client, encounter, site):
    elsewhere = EncounterFactory(patient=encounter.patient)
    foreign_site = AccessSiteFactory(encounter=elsewhere, label="Z")
    foreign_em = OtherService.objects.create(encounter=elsewhere, kind=OtherService.Kind.EM_VISIT)
    response = nurse_client.post(reverse("charting:edit_access_site", kwargs={"pk": encounter.pk}), {"site": foreign_site.pk, "separate_site_medically_required": "on", "reason": "x"})
    assert response.status_code == 302
    response = nurse_client.post(reverse("charting:document_em_service", kwargs={"pk": encounter.pk}), {"service": foreign_em.pk, "significant_separately_identifiable": "on", "note": "x"}, **HTMX)
    assert response.status_code == 200 and response["HX-Redirect"]
    foreign_site.refresh_from_db()
    foreign_em.refresh_from_db()
    assert not foreign_site.separate_site_medically_required and not foreign_em.significant_separately_identifiable


def test_another_clinics_records_are_404(client, other_clinic_nurse, encounter, site):
    adm = given(encounter, site)
    em = OtherService.objects.create(encounter=encounter, kind=OtherService.Kind.EM_VISIT)
    client.force_login(other_clinic_nurse)
    for url, data in [
        (reverse("charting:edit_administration", kwargs={"pk": adm.pk}), edit_data(adm, dose_value="1")),
        (reverse("charting:enter_in_error", kwargs={"pk": adm.pk}), {"reason": "x"}),
        (reverse("charting:edit_access_site", kwargs={"pk": encounter.pk}), {"site": site.pk, "reason": "x", "separate_site_medically_required": "on"}),
        (reverse("charting:document_em_service", kwargs={"pk": encounter.pk}), {"service": em.pk, "note": "x", "significant_separately_identifiable": "on"}),
    ]:
        assert client.post(url, data, **HTMX).status_code == 404
    adm.refresh_from_db()
    assert adm.entered_in_error_at is None and adm.dose_value == Decimal("500")


# --- entered in error (REC-4) ------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_entered_in_error_is_struck_kept_and_left_out_of_checks_and_coding(nurse_client, nurse, encounter, site, htmx):
    kept = given(encounter, site, name="infliximab", start_hours_ago=3, minutes=120)
    wrong = given(encounter, site, name="rituximab", start_hours_ago=2, minutes=30, dose_value=None, dose_unit="")
    services.refresh_flags(encounter.pk, now=timezone.now())
    assert open_flag(encounter, "dose_missing") is not None and open_flag(encounter, "overlap_same_site") is not None
    assert {a.id for a in encounter_doc(encounter).administrations} == {str(kept.pk), str(wrong.pk)}

    post(nurse_client, reverse("charting:enter_in_error", kwargs={"pk": wrong.pk}), {"reason": "Charted on the wrong patient"}, htmx)

    wrong = Administration.objects.get(pk=wrong.pk)  # never deleted
    assert wrong.entered_in_error_reason == "Charted on the wrong patient" and wrong.entered_in_error_by == nurse
    assert abs(wrong.entered_in_error_at - timezone.now()) < dt.timedelta(minutes=1)
    assert not DocumentationFlag.objects.open().filter(administration=wrong).exists()
    assert [a.id for a in encounter_doc(type(encounter).objects.get(pk=encounter.pk)).administrations] == [str(kept.pk)]
    # The sweep's SQL agrees: nothing of the struck drug is flagged again.
    services.sweep_flags(now=timezone.now())
    assert not DocumentationFlag.objects.open().filter(administration=wrong).exists()
    assert not DocumentationFlag.objects.open().filter(encounter=encounter, kind__in=["dose_missing", "overlap_same_site"]).exists()
    html = page(nurse_client, encounter)
    card = html[html.index(f'id="adm-{wrong.pk}"') :]
    card = card[: card.index("</article>")]
    assert 'data-entered-in-error="true"' in card and "text-decoration-line-through" in card
    assert "Charted on the wrong patient" in card and "rituximab" in card
    assert f"id_edit_{wrong.pk}_" not in card and "start-" not in card
    assert 'data-testid="issue-dose_missing"' not in html
    row = AuditEvent.objects.get(action="charting.administration.entered_in_error")
    assert row.detail["reason"] == "Charted on the wrong patient"
    # A second strike changes nothing.
    again = services.enter_administration_in_error(wrong, reason="again", actor=nurse)
    assert "already struck" in again.notice
    assert Administration.objects.get(pk=wrong.pk).entered_in_error_reason == "Charted on the wrong patient"


def test_entered_in_error_needs_a_reason_and_keeps_nothing_half_done(nurse_client, encounter, site):
    adm = given(encounter, site)
    response = nurse_client.post(reverse("charting:enter_in_error", kwargs={"pk": adm.pk}), {"reason": ""}, **HTMX)
    assert response.status_code == 200 and "Say why this drug was entered in error." in response.content.decode()
    adm.refresh_from_db()
    assert adm.entered_in_error_at is None


def test_a_concurrent_with_pointing_at_a_struck_drug_is_dropped_from_the_engine_input(encounter, site, nurse):
    first = given(encounter, site, name="infliximab", start_hours_ago=3, minutes=120)
    second = given(encounter, site, name="methylprednisolone", start_hours_ago=2, minutes=30, concurrent_with=first)
    services.enter_administration_in_error(first, reason="Never given", actor=nurse)
    (only,) = encounter_doc(type(encounter).objects.get(pk=encounter.pk)).administrations
    assert only.id == str(second.pk) and only.concurrent_with is None


def test_a_signed_drug_is_struck_by_an_amendment_with_a_reason(nurse_client, encounter, site, nurse):
    adm = given(encounter, site, name="rituximab")
    _sign(encounter)
    url = reverse("charting:enter_in_error", kwargs={"pk": adm.pk})
    # Without the amendment's reason: refused, nothing changed.
    response = nurse_client.post(url, {"reason": "Wrong patient"}, **HTMX)
    assert response.status_code == 200 and "A reason is required." in response.content.decode()
    assert Administration.objects.get(pk=adm.pk).entered_in_error_at is None
    # Outside the service, the database refuses (REC-1).
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Administration.objects.filter(pk=adm.pk).update(entered_in_error_at=timezone.now(), entered_in_error_reason="x")
    reason = AmendmentReason.objects.get(code="transcription_error")
    response = nurse_client.post(url, {"reason": "Wrong patient", "amendment_reason": reason.code}, **HTMX)
    assert response.status_code == 200
    adm.refresh_from_db()
    assert adm.entered_in_error_at is not None and adm.entered_in_error_by == nurse
    amendment = Amendment.objects.get(administration=adm)
    assert (amendment.field, amendment.reason, amendment.reason_text, amendment.author) == ("entered_in_error", reason, "Wrong patient", nurse)
    assert encounter_doc(type(encounter).objects.get(pk=encounter.pk)).administrations == ()
    assert 'data-entered-in-error="true"' in page(nurse_client, encounter)


def test_the_amend_form_does_not_offer_entered_in_error(encounter, site):
    adm = given(encounter, site)
    _sign(encounter)
    with pytest.raises(services.ChartingError) as exc:
        services.amend_administration(adm, field="entered_in_error", new_value="x", reason="transcription_error", actor=None)
    assert exc.value.field == "field"
    from charting.forms import AmendForm

    assert "entered_in_error" not in dict(AmendForm(administration=adm).fields["field"].choices)


def test_a_struck_drug_does_not_block_signing_or_count_as_running(encounter, site, nurse):
    adm = given(encounter, site, minutes=None)  # still running
    services.enter_administration_in_error(adm, reason="Started on the wrong chair", actor=nurse)
    # Not refused as "still running": signing only asks about the chart being
    # empty now (its one drug struck).
    with pytest.raises(services.NeedsConfirmation) as asked:
        services.sign_encounter(encounter, actor=nurse)
    assert [i.kind for i in asked.value.issues] == ["nothing_charted"]
    signed = services.sign_encounter(encounter, actor=nurse, confirmed=asked.value.digest)
    assert signed.is_signed


def test_the_constraint_wants_a_reason_with_the_strike(encounter, site):
    from django.db import IntegrityError, transaction

    adm = given(encounter, site)
    with pytest.raises(IntegrityError), transaction.atomic():
        Administration.objects.filter(pk=adm.pk).update(entered_in_error_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        Administration.objects.filter(pk=adm.pk).update(entered_in_error_reason="no time")
