"""REC-1 (signed documentation cannot change by any path), REC-4 (nothing
clinical is hard-deleted), and the history django-pghistory keeps."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.urls import reverse
from django.utils import timezone

from audit.dbroles import APP_ROLE, NO_DELETE_TABLES
from charting import services
from charting.models import ADMINISTRATION_CLINICAL_COLUMNS, Administration, Encounter, Pause, SignedRecordError, VialUse
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def signed_adm(clinic, nurse):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 2))
    site = AccessSiteFactory(encounter=encounter, label="A")
    adm = AdministrationFactory(encounter=encounter, access_site=site, drug=DrugFactory(name="infliximab"), started_at=T0, stopped_at=T0 + dt.timedelta(minutes=90))
    Pause.objects.create(administration=adm, paused_at=T0 + dt.timedelta(minutes=10), resumed_at=T0 + dt.timedelta(minutes=20), reason="Pump alarm")
    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="LOT1", size_value=Decimal(100), size_unit="mg", count=5)
    Encounter.objects.filter(pk=encounter.pk).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    return Administration.objects.get(pk=adm.pk)


def sql(statement: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def amendment(amendment_id: str = "amendment-1"):
    """What the #4 amendment service does at the start of its transaction."""
    sql("SELECT set_config('chairside.amendment', %s, true)", [amendment_id])


def _other_value(field: models.Field) -> str:
    """A SQL expression giving column `field` a value different from any it holds."""
    col = field.column
    if isinstance(field, models.ForeignKey):
        return "gen_random_uuid()" if isinstance(field.target_field, models.UUIDField) else f"coalesce({col}, 0) + 100000"
    if isinstance(field, models.DateTimeField):
        return f"coalesce({col}, now()) + interval '1 minute'"
    if isinstance(field, models.DecimalField):
        return f"coalesce({col}, 0) + 1"
    if isinstance(field, models.BooleanField):
        return f"NOT {col}"
    return f"{col} || 'x'"


CLINICAL_FIELDS = [f for f in Administration._meta.concrete_fields if f.column in ADMINISTRATION_CLINICAL_COLUMNS]


def test_rec1_every_clinical_column_is_covered():
    assert {f.column for f in CLINICAL_FIELDS} == set(ADMINISTRATION_CLINICAL_COLUMNS)
    # Every column of the table is clinical except the id.
    assert {f.column for f in Administration._meta.concrete_fields} - set(ADMINISTRATION_CLINICAL_COLUMNS) == {"id"}


@pytest.mark.parametrize("field", CLINICAL_FIELDS, ids=lambda f: f.column)
def test_rec1_raw_sql_update_of_a_signed_administration_is_refused(signed_adm, field):
    with pytest.raises(IntegrityError, match="signed documentation cannot be changed"), transaction.atomic():
        sql(f"UPDATE charting_administration SET {field.column} = {_other_value(field)} WHERE id = %s", [signed_adm.pk])


@pytest.mark.parametrize("field", CLINICAL_FIELDS, ids=lambda f: f.column)
def test_rec1_the_same_update_passes_the_trigger_inside_an_amendment(signed_adm, field):
    """(The table's CHECK constraints still apply: an amendment is no licence
    for an unknown route; only the signed-record trigger steps aside.)"""
    try:
        with transaction.atomic():
            amendment()
            sql(f"UPDATE charting_administration SET {field.column} = {_other_value(field)} WHERE id = %s", [signed_adm.pk])
            transaction.set_rollback(True)  # FK columns point nowhere: never commit
    except IntegrityError as exc:
        assert "signed documentation" not in str(exc)
        assert "check constraint" in str(exc)


def test_rec1_orm_save_and_queryset_update_are_refused(signed_adm):
    signed_adm.dose_value = Decimal("600")
    with pytest.raises(SignedRecordError, match="amendment"):
        signed_adm.save()
    with pytest.raises(SignedRecordError):
        signed_adm.save(update_fields=["dose_value"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Administration.objects.filter(pk=signed_adm.pk).update(stopped_at=T0 + dt.timedelta(minutes=60))
    signed_adm.refresh_from_db()
    assert signed_adm.dose_value == Decimal("500") and signed_adm.stopped_at == T0 + dt.timedelta(minutes=90)


def test_rec1_save_without_a_change_and_draft_changes_pass(signed_adm, nurse):
    signed_adm.save()  # same values: nothing to refuse
    draft = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=signed_adm.encounter.clinic)))
    draft.dose_value = Decimal("7")
    draft.save()
    Administration.objects.filter(pk=draft.pk).update(route="iv_push")


def test_rec1_orm_save_passes_inside_an_amendment(signed_adm):
    with transaction.atomic():
        amendment()
        signed_adm.dose_value = Decimal("600")
        signed_adm.save(update_fields=["dose_value"])
    assert Administration.objects.get(pk=signed_adm.pk).dose_value == Decimal("600")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE charting_pause SET resumed_at = resumed_at + interval '5 minutes' WHERE administration_id = %s",
        "UPDATE charting_vialuse SET count = count + 1 WHERE administration_id = %s",
        "UPDATE charting_accesssite SET location = 'right arm' WHERE id = (SELECT access_site_id FROM charting_administration WHERE id = %s)",
        "UPDATE charting_encounter SET status = 'draft', signed_by_id = NULL, signed_at = NULL WHERE id = (SELECT encounter_id FROM charting_administration WHERE id = %s)",
        "UPDATE charting_encounter SET date_of_service = date_of_service + 1 WHERE id = (SELECT encounter_id FROM charting_administration WHERE id = %s)",
    ],
    ids=["pause", "vials", "access_site", "unsign", "date_of_service"],
)
def test_rec1_pauses_vials_sites_and_the_signature_are_frozen_too(signed_adm, statement):
    with pytest.raises(IntegrityError, match="signed documentation"), transaction.atomic():
        sql(statement, [signed_adm.pk])


def test_rec1_charting_views_answer_409_with_guidance_to_amend(nurse_client, signed_adm):
    url = reverse("charting:stop_administration", kwargs={"pk": signed_adm.pk})
    response = nurse_client.post(url)
    assert response.status_code == 409
    assert "can only be changed by an amendment" in response.content.decode()
    response = nurse_client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and response["HX-Redirect"] == reverse("charting:encounter", kwargs={"pk": signed_adm.encounter_id})
    for name, data in [("pause_administration", {"reason": "x"}), ("record_vials", {"ndc": "57894-030-01", "lot": "LOT2", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "1"}), ("confirm_waste", {"wasted_value": "0", "wasted_unit": "mg"}), ("remove_vials", {"vial": VialUse.objects.get().pk})]:
        assert nurse_client.post(reverse(f"charting:{name}", kwargs={"pk": signed_adm.pk}), data).status_code == 409, name
    response = nurse_client.post(reverse("charting:add_access_site", kwargs={"pk": signed_adm.encounter_id}), {"site-kind": "port"})
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("confirm_waste", {}),  # nothing typed: the form does not validate
        ("confirm_waste", {"wasted_value": "", "wasted_unit": "mg"}),
        ("record_vials", {"ndc": ""}),
        ("correct_time", {"target": "started_at", "new_value": "", "reason": ""}),
        ("pause_administration", {"reason": ""}),
        ("edit_administration", {"dose_value": "x"}),
    ],
)
def test_rec1_a_drug_card_form_posted_to_a_signed_chart_is_refused_whatever_was_typed(nurse_client, signed_adm, name, data):
    """Regression: waste posted to a signed chart with a form that does not
    validate was answered 200 with nothing to show (the signed card has no
    waste form): silently ignored. It is the 409 of every signed write."""
    url = reverse(f"charting:{name}", kwargs={"pk": signed_adm.pk})
    response = nurse_client.post(url, data)
    assert response.status_code == 409 and "can only be changed by an amendment" in response.content.decode()
    response = nurse_client.post(url, data, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and "can only be changed by an amendment" in response.content.decode()
    assert response["HX-Redirect"] == reverse("charting:encounter", kwargs={"pk": signed_adm.encounter_id})
    assert Administration.objects.get(pk=signed_adm.pk).waste_confirmed_at is None


def test_rec1_pghistory_keeps_the_original_row_byte_for_byte(signed_adm):
    """The insert snapshot of the administration is the row as first charted;
    an amendment's update adds a snapshot and leaves that one as it was."""
    from charting.models import AdministrationEvent

    columns = [f.column for f in Administration._meta.concrete_fields]
    select = ", ".join(f"{c}::text" for c in columns)

    def row(table: str, where: str):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {select} FROM {table} WHERE {where}", [signed_adm.pk])
            return cursor.fetchall()

    original = row("charting_administration", "id = %s")[0]
    with transaction.atomic():
        amendment()
        sql("UPDATE charting_administration SET dose_value = 600 WHERE id = %s", [signed_adm.pk])
    snapshots = AdministrationEvent.objects.filter(pgh_obj_id=signed_adm.pk).order_by("pgh_id")
    assert [e.pgh_label for e in snapshots] == ["insert", "update"]
    history = row("charting_administrationevent", "pgh_obj_id = %s ORDER BY pgh_id")
    assert history[0] == original
    assert history[1] != original and Administration.objects.get(pk=signed_adm.pk).dose_value == Decimal("600")


# --- REC-4 ---------------------------------------------------------------------------


@pytest.mark.parametrize("table", NO_DELETE_TABLES)
def test_rec4_app_role_cannot_delete_clinical_rows(signed_adm, table):
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        sql(f"SET LOCAL ROLE {APP_ROLE}")
        sql(f"DELETE FROM {table}")
    assert isinstance(excinfo.value.__cause__, psycopg.errors.InsufficientPrivilege)


def test_rec4_app_role_can_still_chart(clinic, nurse):
    with transaction.atomic():
        sql(f"SET LOCAL ROLE {APP_ROLE}")
        encounter = services.open_encounter(PatientFactory(clinic=clinic), clinic=clinic, setting="office", actor=nurse)
        site = services.add_access_site(encounter, kind="peripheral_iv", actor=nurse)
        adm = services.add_administration(encounter, drug=DrugFactory(name="zz drug"), route="iv_infusion", access_site=site, dose_value=Decimal(5), dose_unit="mg", purpose="treatment", actor=nurse)
        services.start_administration(adm, actor=nurse)


def test_rec4_vials_charted_by_mistake_are_struck_with_a_reason_not_deleted(nurse_client, nurse, clinic):
    adm = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), drug=DrugFactory(name="struck drug"))
    services.record_vials(adm, ndc="57894-030-01", lot="WRONG", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=5, actor=nurse)
    row = VialUse.objects.get(administration=adm)
    response = nurse_client.post(reverse("charting:remove_vials", kwargs={"pk": adm.pk}), {"vial": row.pk, "reason": "Wrong lot scanned"})
    assert response.status_code == 302
    struck = VialUse.all_objects.get(pk=row.pk)
    assert (struck.entered_in_error_reason, struck.entered_in_error_by) == ("Wrong lot scanned", nurse) and struck.entered_in_error_at is not None
    assert not VialUse.objects.filter(administration=adm).exists()
    # The same NDC and lot can be charted again once the wrong row is struck.
    services.record_vials(Administration.objects.get(pk=adm.pk), ndc="57894-030-01", lot="WRONG", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=4, actor=nurse)
    assert VialUse.all_objects.filter(administration=adm).count() == 2


def test_rec4_no_write_url_ever_lowers_a_clinical_row_count(client, clinic, nurse, coder):
    """Every write URL of the app, called by its role on real rows: the number
    of rows of each clinical table never goes down (no delete endpoint)."""
    from tests.security.test_urls import CODER_WRITE, NURSE_WRITE

    adm = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), drug=DrugFactory(name="count drug"))
    services.record_vials(adm, ndc="57894-030-01", lot="L1", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=5, actor=nurse)
    vial = VialUse.objects.get(administration=adm)

    def counts():
        with connection.cursor() as cursor:
            return {t: (cursor.execute(f"SELECT count(*) FROM {t}"), cursor.fetchone()[0])[1] for t in NO_DELETE_TABLES}

    for name in sorted(NURSE_WRITE | CODER_WRITE):
        client.force_login(nurse if name.startswith("charting:") else coder)
        kwarg = {"pk": adm.pk} if "administration" in name or "vial" in name or "time" in name or "waste" in name or "in_error" in name else {"pk": adm.encounter_id}
        url = reverse(name) if name == "charting:open_encounter" else reverse(name, kwargs=kwarg) if name.startswith("charting:") else None
        if url is None:
            continue
        before = counts()
        client.post(url, {"vial": vial.pk, "reason": "x"})
        after = counts()
        assert all(after[t] >= before[t] for t in NO_DELETE_TABLES), (name, before, after)
