"""Vials and waste (R47-R49): constraints by bad insert, the two services
(record_vials, confirm_waste) with their refusals and audit rows, the views thinly."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting import services
from charting.models import Administration, VialUse
from charting.services import ChartingError
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))


@pytest.fixture
def adm(encounter):
    """Infliximab 400 mg (catalog: single-dose 100 mg vials)."""
    return AdministrationFactory(encounter=encounter, label="infliximab", drug=DrugFactory(name="infliximab", single_dose=True), dose_value=Decimal("400"), dose_unit="mg")


def vials(adm, actor, **kw):
    data = {"ndc": "57894-030-01", "lot": "AB1234", "expiry": dt.date(2027, 1, 31), "container_type": "single_dose", "size_value": Decimal("100"), "size_unit": "mg", "count": 4} | kw
    return services.record_vials(Administration.objects.get(pk=adm.pk), **data, actor=actor)


def waste(adm, actor, value, unit="mg"):
    return services.confirm_waste(Administration.objects.get(pk=adm.pk), wasted_value=Decimal(value), wasted_unit=unit, actor=actor)


def actions(adm):
    return list(AuditEvent.objects.filter(object_id=str(adm.pk)).order_by("at", "pk").values_list("action", flat=True))


# --- constraints ------------------------------------------------------------------------


def _vial(**kw):
    return lambda: VialUse.objects.create(**{"administration": AdministrationFactory(), "ndc": "57894-030-01", "lot": "L1", "size_value": 100, "size_unit": "mg", "count": 1} | kw)


def _vial_twice():
    a = AdministrationFactory()
    VialUse.objects.create(administration=a, ndc="57894-030-01", lot="L1", count=1)
    VialUse.objects.create(administration=a, ndc="57894-030-01", lot="L1", count=2)


def _waste(**kw):
    return lambda: AdministrationFactory(**{"container_type": "single_dose", "wasted_value": 0, "wasted_unit": "mg", "waste_confirmed_at": T0} | kw)


BAD_INSERTS = [
    ("vial_use_count_positive", _vial(count=0)),
    ("vial_use_size_positive", _vial(size_value=0)),
    ("vial_use_size_has_unit", _vial(size_unit="")),
    ("vial_use_size_has_unit", _vial(size_value=None)),
    ("vial_use_size_has_unit", _vial(size_unit="drops")),
    ("vial_use_ndc_format", _vial(ndc="5789403001")),  # 10 digits without hyphens: where does the 0 go?
    ("vial_use_ndc_format", _vial(ndc="578-94030-01")),
    ("vial_use_ndc_format", _vial(ndc="57894-030-01 ")),
    ("vial_use_one_row_per_ndc_lot", _vial_twice),
    ("administration_container_type_valid", lambda: AdministrationFactory(container_type="ampoule")),
    ("administration_wasted_unit_valid", _waste(wasted_unit="kg")),
    ("administration_wasted_not_negative", _waste(wasted_value=-1)),
    ("administration_waste_confirmed_with_unit", _waste(waste_confirmed_at=None)),
    ("administration_waste_confirmed_with_unit", _waste(wasted_unit="")),
    ("administration_waste_confirmed_with_unit", lambda: AdministrationFactory(waste_confirmed_at=T0)),
    ("administration_waste_only_single_dose", _waste(container_type="multi_dose")),
    ("administration_waste_only_single_dose", _waste(container_type="")),
    ("administration_hcpcs_unit_positive_with_unit", lambda: AdministrationFactory(hcpcs_unit_value=0, hcpcs_unit_unit="mg")),
    ("administration_hcpcs_unit_positive_with_unit", lambda: AdministrationFactory(hcpcs_unit_value=10)),
]


@pytest.mark.parametrize(("constraint", "insert"), BAD_INSERTS, ids=[f"{i}-{c}" for i, (c, _) in enumerate(BAD_INSERTS)])
def test_bad_insert_is_refused_by_the_database(constraint, insert):
    with pytest.raises(IntegrityError) as exc, transaction.atomic():
        insert()
    assert constraint in str(exc.value)


@pytest.mark.parametrize("ndc", ["0002-7597-01", "50242-040-62", "60575-4112-1", "57894-0030-01", "57894003001"])
def test_every_printed_ndc_shape_is_accepted(ndc):
    VialUse.objects.create(administration=AdministrationFactory(), ndc=ndc, lot="L1", size_value=100, size_unit="mg", count=1)


def test_an_imported_container_may_lack_ndc_lot_and_size_and_waste_none_is_zero():
    a = AdministrationFactory(container_type="single_dose", wasted_value=0, wasted_unit="mg", waste_confirmed_at=T0)
    VialUse.objects.create(administration=a, count=4)
    VialUse.objects.create(administration=a, count=1)  # no NDC: no uniqueness to keep
    assert a.vial_uses.count() == 2 and a.waste_confirmed and not a.needs_waste_confirmation


# --- record_vials ------------------------------------------------------------------------


def test_record_vials_charts_a_row_sets_the_kind_and_audits(adm, nurse):
    result = vials(adm, nurse)

    row = VialUse.objects.get(administration=adm)
    assert (row.ndc, row.lot, row.expiry, row.size_value, row.size_unit, row.count) == ("57894-030-01", "AB1234", dt.date(2027, 1, 31), Decimal(100), "mg", 4)
    assert row.recorded_by == nurse
    assert result.container_type == "single_dose" and result.needs_waste_confirmation
    event = AuditEvent.objects.get(action="charting.administration.vials_recorded")
    assert event.object_id == str(adm.pk) and event.patient_id == adm.encounter.patient_id
    assert event.detail["ndc"] == "57894-030-01" and event.detail["count"] == 4 and event.detail["size_value"] == "100"


def test_two_products_make_two_rows_and_the_same_product_and_lot_updates_its_row(adm, nurse):
    vials(adm, nurse, ndc="50242-051-21", lot="R1", size_value=Decimal(500), count=1)
    vials(adm, nurse, ndc="50242-053-06", lot="R2", size_value=Decimal(100), count=2)
    vials(adm, nurse, ndc="50242-053-06", lot="R2", size_value=Decimal(100), count=3)  # recounted

    rows = list(VialUse.objects.filter(administration=adm).values_list("ndc", "count"))
    assert rows == [("50242-051-21", 1), ("50242-053-06", 3)]
    assert Administration.objects.get(pk=adm.pk).opened_amount("mg") == Decimal(800)
    assert actions(adm) == ["charting.administration.vials_recorded", "charting.administration.vials_recorded", "charting.administration.vials_changed"]


def test_a_double_tap_changes_nothing(adm, nurse):
    vials(adm, nurse)
    again = vials(adm, nurse)
    assert "already charted" in again.notice
    assert VialUse.objects.filter(administration=adm).count() == 1
    assert actions(adm) == ["charting.administration.vials_recorded"]


def test_changing_the_vials_forgets_the_confirmed_waste(adm, nurse):
    vials(adm, nurse)
    waste(adm, nurse, "0")
    changed = vials(adm, nurse, count=5)
    assert changed.notice == "The vials changed: confirm the waste again."
    fresh = Administration.objects.get(pk=adm.pk)
    assert fresh.wasted_value is None and not fresh.waste_confirmed and fresh.needs_waste_confirmation
    assert AuditEvent.objects.filter(action="charting.administration.vials_changed").get().detail["waste_cleared"] is True


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        ({"ndc": "5789403001"}, "ndc", "4-4-2, 5-3-2 or 5-4-1"),
        ({"ndc": "57894-30-01"}, "ndc", "not as printed"),
        ({"ndc": "57894-030-01-9"}, "ndc", "not as printed"),
        ({"ndc": "ABCDE-030-01"}, "ndc", "not as printed"),
        ({"ndc": "  "}, "ndc", "Give the NDC"),
        ({"lot": ""}, "lot", "lot number"),
        ({"lot": "x" * 41}, "lot", "too long"),
        ({"container_type": "ampoule"}, "container_type", "single-dose or multi-dose"),
        ({"size_value": None}, "size_value", "container size"),
        ({"size_value": Decimal(0)}, "size_value", "between"),
        ({"size_value": Decimal("0.0001")}, "size_value", "3 decimals"),
        ({"size_unit": "drops"}, "size_unit", "unit"),
        ({"size_unit": "mL"}, "size_unit", "converts"),  # dose in mg: the waste needs one scale
        ({"count": 0}, "count", "how many"),
        ({"count": None}, "count", "how many"),
        ({"count": 1000}, "count", "how many"),
        ({"expiry": dt.date(2026, 3, 9)}, "expiry", "expired on 2026-03-09"),
    ],
)
def test_record_vials_refuses_bad_input_naming_the_field(adm, nurse, kw, field, words):
    with pytest.raises(ChartingError) as exc:
        vials(adm, nurse, **kw)
    assert exc.value.field == field and words in exc.value.message
    assert not VialUse.objects.exists() and actions(adm) == []


def test_a_size_in_grams_converts_for_a_dose_in_mg(adm, nurse):
    vials(adm, nurse, size_value=Decimal("0.1"), size_unit="g")
    assert Administration.objects.get(pk=adm.pk).opened_amount("mg") == Decimal(400)


def test_one_drug_comes_from_one_kind_of_container(adm, nurse):
    vials(adm, nurse, lot="L1")
    with pytest.raises(ChartingError) as exc:
        vials(adm, nurse, lot="L2", container_type="multi_dose")
    assert exc.value.field == "container_type" and "single-dose" in exc.value.message
    # The only row may change kind (the nurse picked the wrong one).
    assert vials(adm, nurse, lot="L1", container_type="multi_dose").container_type == "multi_dose"


def test_multi_dose_forgets_a_confirmed_waste_so_the_constraint_holds(adm, nurse):
    vials(adm, nurse)
    waste(adm, nurse, "0")
    changed = vials(adm, nurse, container_type="multi_dose")
    fresh = Administration.objects.get(pk=adm.pk)
    assert changed.container_type == "multi_dose" and fresh.wasted_value is None and not fresh.needs_waste_confirmation


# --- confirm_waste -------------------------------------------------------------------------


def test_confirm_none_wasted_is_zero_with_who_and_when(adm, nurse, clock):
    vials(adm, nurse)
    result = waste(adm, nurse, "0")
    assert result.wasted_value == 0 and result.wasted_unit == "mg"
    assert result.waste_confirmed_by == nurse and result.waste_confirmed_at == clock.now
    assert not result.needs_waste_confirmation
    event = AuditEvent.objects.get(action="charting.administration.waste_confirmed")
    assert event.detail == {"wasted_value": "0", "wasted_unit": "mg", "previous_value": None, "previous_unit": None}


def test_confirm_waste_up_to_opened_minus_dose_with_unit_conversion(adm, nurse):
    Administration.objects.filter(pk=adm.pk).update(dose_value=Decimal("384"))
    vials(adm, nurse)  # 4 x 100 mg
    assert waste(adm, nurse, "16").wasted_value == 16
    assert waste(adm, nurse, "0.016", "g").wasted_unit == "g"
    assert waste(adm, nurse, "16000", "mcg").wasted_value == 16000
    assert [e.detail["previous_value"] for e in AuditEvent.objects.filter(action="charting.administration.waste_confirmed").order_by("pk")] == [None, "16.000", "0.016"]


def test_confirming_the_same_waste_again_changes_nothing(adm, nurse):
    vials(adm, nurse)
    waste(adm, nurse, "0")
    again = waste(adm, nurse, "0")
    assert "already confirmed" in again.notice
    assert AuditEvent.objects.filter(action="charting.administration.waste_confirmed").count() == 1


def test_waste_above_opened_minus_dose_is_refused_with_the_arithmetic(adm, nurse):
    Administration.objects.filter(pk=adm.pk).update(dose_value=Decimal("384"))
    vials(adm, nurse)
    with pytest.raises(ChartingError) as exc:
        waste(adm, nurse, "0.017", "g")
    assert exc.value.field == "wasted_value"
    assert exc.value.message == "0.017 g wasted is more than was left: 4 × 100 mg opened − 384 mg given = 0.016 g."
    assert not Administration.objects.get(pk=adm.pk).waste_confirmed


def test_vials_holding_less_than_the_dose_are_refused(adm, nurse):
    vials(adm, nurse, count=3)
    with pytest.raises(ChartingError) as exc:
        waste(adm, nurse, "0")
    assert "hold less than the dose of 400 mg" in exc.value.message


@pytest.mark.parametrize(
    ("setup", "value", "unit", "words"),
    [
        ("no_vials", "0", "mg", "Chart the vials"),
        ("multi_dose", "0", "mg", "multi-dose"),
        ("no_dose", "0", "mg", "Chart the dose"),
        ("vials", "-1", "mg", "between 0 and"),
        ("vials", "0", "mL", "converts to"),
        ("vials", "0", "drops", "unit"),
        ("vials", "1.0005", "mg", "3 decimals"),
        ("unknown_size", "0", "mg", "sizes of the vials"),
    ],
)
def test_confirm_waste_refusals(adm, nurse, setup, value, unit, words):
    if setup in ("vials", "multi_dose", "no_dose"):
        vials(adm, nurse, container_type="multi_dose" if setup == "multi_dose" else "single_dose")
    if setup == "no_dose":
        Administration.objects.filter(pk=adm.pk).update(dose_value=None, dose_unit="")
    if setup == "unknown_size":  # as import_scenarios stores a container of mixed sizes
        Administration.objects.filter(pk=adm.pk).update(container_type="single_dose")
        VialUse.objects.create(administration=adm, count=4)
    with pytest.raises(ChartingError) as exc:
        waste(adm, nurse, value, unit)
    assert words in exc.value.message
    assert not Administration.objects.get(pk=adm.pk).waste_confirmed


@pytest.mark.parametrize("change", [lambda a, n: vials(a, n), lambda a, n: waste(a, n, "0")])
def test_a_signed_encounter_is_changed_only_by_an_amendment(adm, nurse, change):
    vials(adm, nurse)
    type(adm.encounter).objects.filter(pk=adm.encounter_id).update(status="signed", signed_by=UserFactory(), signed_at=timezone.now())
    with pytest.raises(ChartingError) as exc:
        change(adm, nurse)
    assert "signed" in exc.value.message


# --- remove_vials -------------------------------------------------------------------------


def test_removing_a_row_forgets_the_waste_and_keeps_what_it_said_in_the_audit(adm, nurse):
    vials(adm, nurse, lot="L1")
    vials(adm, nurse, lot="L2", ndc="57894-030-02", count=1)
    waste(adm, nurse, "100")
    wrong = VialUse.objects.get(lot="L2")

    result = services.remove_vials(Administration.objects.get(pk=adm.pk), vial_id=wrong.pk, actor=nurse)

    assert result.notice == "Vials struck as entered in error (kept in the record). Confirm the waste again."
    assert result.container_type == "single_dose" and result.wasted_value is None
    assert list(VialUse.objects.values_list("lot", flat=True)) == ["L1"]
    event = AuditEvent.objects.get(action="charting.administration.vials_entered_in_error")
    assert event.detail | {"vial_use_id": None} == {"vial_use_id": None, "reason": "Charted by mistake", "ndc": "57894-030-02", "lot": "L2", "size_value": "100.000", "size_unit": "mg", "count": 1, "waste_cleared": True}
    # REC-4: struck, not deleted.
    assert VialUse.all_objects.get(pk=wrong.pk).entered_in_error_reason == "Charted by mistake"


def test_removing_the_last_row_leaves_no_container_kind_and_a_second_tap_is_a_no_op(adm, nurse):
    vials(adm, nurse)
    row = VialUse.objects.get()
    assert services.remove_vials(adm, vial_id=row.pk, actor=nurse).container_type == ""
    assert services.remove_vials(adm, vial_id=row.pk, actor=nurse).notice == "These vials were already struck as entered in error."
    assert AuditEvent.objects.filter(action="charting.administration.vials_entered_in_error").count() == 1


def test_removing_vials_of_a_signed_encounter_is_refused(adm, nurse):
    vials(adm, nurse)
    type(adm.encounter).objects.filter(pk=adm.encounter_id).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    with pytest.raises(ChartingError):
        services.remove_vials(adm, vial_id=VialUse.objects.get().pk, actor=nurse)
    assert VialUse.objects.exists()


# --- views -------------------------------------------------------------------------------------


def url(name, adm):
    return reverse(f"charting:{name}", kwargs={"pk": adm.pk})


VIAL_POST = {"ndc": "57894-030-01", "lot": "AB1234", "expiry": "2027-01-31", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "4"}


def test_the_drug_card_shows_the_vial_and_waste_forms_with_their_testids(nurse_client, adm):
    body = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter_id})).content.decode()
    for testid in ("vials", "vial-ndc", "vial-lot", "vial-size", "vial-count", "vial-save"):
        assert f'data-testid="{testid}-infliximab"' in body
    assert 'value="single_dose" selected' in body  # prefilled from the catalog's single_dose
    assert 'data-testid="waste-none-infliximab"' not in body  # no vials yet: nothing to waste

    vials(adm, None)
    body = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter_id})).content.decode()
    for testid in ("waste-none", "waste-amount", "waste-save"):
        assert f'data-testid="{testid}-infliximab"' in body
    assert "4 × 100 mg · NDC 57894-030-01 · lot AB1234 · exp 2027-01-31" in body
    assert "Waste not confirmed yet" in body


def test_a_multi_dose_catalog_drug_is_prefilled_multi_dose(nurse_client, encounter):
    AdministrationFactory(encounter=encounter, label="diphenhydramine", drug=DrugFactory(name="diphenhydramine", single_dose=False))
    body = nurse_client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
    assert 'value="multi_dose" selected' in body


def test_nurse_charts_vials_then_waste_through_htmx_partials(nurse_client, adm):
    response = nurse_client.post(url("record_vials", adm), VIAL_POST, **HTMX)
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    body = response.content.decode()
    assert body.lstrip().startswith("<article") and f'id="adm-{adm.pk}"' in body and "<html" not in body
    assert "Vials charted." in body and 'data-testid="waste-none-infliximab"' in body

    response = nurse_client.post(url("confirm_waste", adm), {"none": "on", "wasted_unit": "mg"}, **HTMX)
    assert response.status_code == 200 and "Waste: none, confirmed by Nora Nurse" in response.content.decode()
    fresh = Administration.objects.get(pk=adm.pk)
    assert fresh.wasted_value == 0 and fresh.waste_confirmed_by.username == "nurse"


def test_form_errors_re_render_the_partial_with_status_200(nurse_client, adm):
    response = nurse_client.post(url("record_vials", adm), VIAL_POST | {"ndc": "5789403001"}, **HTMX)
    assert response.status_code == 200
    assert "4-4-2, 5-3-2 or 5-4-1" in response.content.decode() and not VialUse.objects.exists()

    vials(adm, None)
    response = nurse_client.post(url("confirm_waste", adm), {"wasted_value": "", "wasted_unit": "mg"}, **HTMX)
    assert "Give the amount wasted, or tick “none wasted”." in response.content.decode()
    response = nurse_client.post(url("confirm_waste", adm), {"wasted_value": "150", "wasted_unit": "mg"}, **HTMX)
    assert "150 mg wasted is more than was left" in response.content.decode()
    assert not Administration.objects.get(pk=adm.pk).waste_confirmed


def test_a_plain_post_redirects_to_the_drug_with_the_message(nurse_client, adm):
    response = nurse_client.post(url("record_vials", adm), VIAL_POST)
    assert response.status_code == 302 and response["Location"].endswith(f"#adm-{adm.pk}")
    response = nurse_client.post(url("confirm_waste", adm), {"wasted_value": "5", "wasted_unit": "mg", "none": "on"}, follow=True)
    assert "Either “none wasted” or an amount, not both." in response.content.decode()


def test_a_signed_encounter_shows_vials_without_forms_and_refuses_posts(nurse_client, adm, nurse):
    vials(adm, nurse)
    type(adm.encounter).objects.filter(pk=adm.encounter_id).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    body = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter_id})).content.decode()
    assert "4 × 100 mg" in body and 'data-testid="vial-save-infliximab"' not in body
    response = nurse_client.post(url("confirm_waste", adm), {"none": "on", "wasted_unit": "mg"}, **HTMX)
    assert response.status_code == 409 and "signed documentation can only be changed by an amendment" in response.content.decode()
    assert not Administration.objects.get(pk=adm.pk).waste_confirmed


@pytest.mark.parametrize("name", ["record_vials", "confirm_waste"])
def test_a_coder_gets_403(client, coder, adm, name):
    client.force_login(coder)
    assert client.post(url(name, adm), VIAL_POST).status_code == 403
    assert not VialUse.objects.exists()


@pytest.mark.parametrize("name", ["record_vials", "confirm_waste"])
def test_another_clinics_nurse_gets_404(client, other_clinic_nurse, adm, name):
    client.force_login(other_clinic_nurse)
    assert client.post(url(name, adm), VIAL_POST).status_code == 404
    assert not VialUse.objects.exists()


def test_remove_vials_view(client, nurse, coder, other_clinic_nurse, adm):
    vials(adm, nurse)
    row = VialUse.objects.get()
    client.force_login(coder)
    assert client.post(url("remove_vials", adm), {"vial": row.pk}).status_code == 403
    client.force_login(other_clinic_nurse)
    assert client.post(url("remove_vials", adm), {"vial": row.pk}).status_code == 404
    client.force_login(nurse)
    body = client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter_id})).content.decode()
    assert 'data-testid="vial-remove-infliximab-1"' in body
    response = client.post(url("remove_vials", adm), {"vial": "x"}, **HTMX)  # not a row of this drug: nothing to do
    assert response.status_code == 200 and "already struck" in response.content.decode() and VialUse.objects.exists()
    response = client.post(url("remove_vials", adm), {"vial": row.pk}, **HTMX)
    assert response.status_code == 200 and "Vials struck as entered in error" in response.content.decode() and "No vials charted." in response.content.decode()
    assert not VialUse.objects.exists()


def test_another_drugs_vial_row_is_not_removed_through_this_drug(nurse_client, nurse, adm, encounter):
    other = AdministrationFactory(encounter=encounter, label="other")
    vials(other, nurse)
    response = nurse_client.post(url("remove_vials", adm), {"vial": VialUse.objects.get().pk}, **HTMX)
    assert "already struck" in response.content.decode() and VialUse.objects.filter(administration=other).exists()


@pytest.mark.parametrize("name", ["record_vials", "confirm_waste", "remove_vials"])
def test_writes_refuse_get(nurse_client, adm, name):
    assert nurse_client.get(url(name, adm)).status_code == 405


@pytest.mark.parametrize("n", [1, 5])
def test_the_partial_takes_the_same_queries_for_1_and_5_vial_rows(nurse_client, adm, django_assert_max_num_queries, n):
    for i in range(n):
        VialUse.objects.create(administration=adm, ndc="57894-030-01", lot=f"L{i}", size_value=Decimal(500) / n, size_unit="mg", count=1)
    Administration.objects.filter(pk=adm.pk).update(container_type="single_dose")
    # session, user, role check; administration+drug; savepoint; encounter lock;
    # administration lock; vial rows lock; update; audit insert; release; then the
    # partial: administration+drug+site+encounter+patient+clinic+confirmer;
    # pauses; vials; corrections; open flags; amendments = 17
    # + the PHI request's one audit row (audit/phi.py): savepoint, role, chain-head lock, head move, release (the insert counted before) = 22
    # + the session's two-factor check (roles.needs_two_factor, django-otp): +1
    # + the card's Edit form choices on a draft: the encounter's sites and drugs (issue #5b) = 25
    # + the flags refreshed in the same transaction (session 4: savepoint pair, encounter
    #   lock, the encounter with the prefetches the checks read, its open flags) = 39
    with django_assert_max_num_queries(39):
        response = nurse_client.post(url("confirm_waste", adm), {"wasted_value": "100", "wasted_unit": "mg"}, **HTMX)
    assert response.status_code == 200


# --- in the browser ------------------------------------------------------------------------------


@pytest.mark.browser
def test_nurse_charts_vials_and_confirms_no_waste_in_the_browser(live_server, page_factory, nurse, adm):
    from tests.browser.flows import log_in

    page = page_factory()
    log_in(page, live_server.url, "nurse")
    page.goto(live_server.url + reverse("charting:encounter", kwargs={"pk": adm.encounter_id}))
    page.fill('[data-testid="vial-ndc-infliximab"]', "57894-030-01")
    page.fill('[data-testid="vial-lot-infliximab"]', "AB1234")
    page.fill('[data-testid="vial-size-infliximab"]', "100")
    page.fill('[data-testid="vial-count-infliximab"]', "4")
    page.click('[data-testid="vial-save-infliximab"]')
    page.check('[data-testid="waste-none-infliximab"]')  # appears once single-dose vials are charted
    page.click('[data-testid="waste-save-infliximab"]')
    page.wait_for_selector('[data-testid="waste-infliximab"]:has-text("Waste: none")')

    assert "4 × 100 mg · NDC 57894-030-01 · lot AB1234" in page.inner_text('[data-testid="vials-infliximab"]')
    fresh = Administration.objects.get(pk=adm.pk)
    assert fresh.container_type == "single_dose" and fresh.wasted_value == 0 and fresh.waste_confirmed_by == nurse
