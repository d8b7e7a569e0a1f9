"""AUD-4 (append-only audit rows) and AUD-5 (SHA-256 hash chain, verify_audit)."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.contrib.admin.sites import site as admin_site
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS, verify
from audit.dbroles import APP_ROLE
from audit.models import AuditChainHead, AuditEvent, Outcome
from audit.services import record

pytestmark = pytest.mark.django_db


def append(n: int, actor=None) -> list[AuditEvent]:
    return [record(f"charting.test.event{i}", actor=actor, patient_id=uuid.uuid4(), detail={"i": i, "dose": "12.5"}) for i in range(n)]


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def tamper(statement: str, params=()) -> None:
    """Change the table out of band, as a superuser who disabled the trigger.
    (Deferred foreign-key checks are run first: PostgreSQL refuses ALTER TABLE
    with pending trigger events.)"""
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_append_only")
    sql(statement, params)
    sql("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_append_only")


def run_verify() -> tuple[int, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


# --- AUD-5: the chain -------------------------------------------------------------


def test_aud5_rows_form_a_chain_from_genesis_and_verify(nurse):
    events = append(5, actor=nurse)
    rows = list(AuditEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("seq"))
    first = AuditEvent.objects.order_by("seq").first()
    assert first.prev_hash == GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    assert all(len(r.row_hash) == 64 for r in rows)
    head = AuditChainHead.objects.get()
    assert (head.seq, head.last_hash) == (rows[-1].seq, rows[-1].row_hash)
    code, out, err = run_verify()
    assert (code, err) == (0, "") and "audit chain OK" in out


def test_aud5_verify_audit_names_the_modified_row(nurse):
    events = append(6, actor=nurse)
    target = AuditEvent.objects.get(pk=events[2].pk)
    tamper("UPDATE audit_auditevent SET detail = '{\"i\": 99}' WHERE id = %s", [target.pk])
    code, _, err = run_verify()
    assert code == 1
    assert f"seq={target.seq} (id={target.pk})" in err and "modified" in err


def test_aud5_verify_audit_names_the_row_after_a_deleted_one(nurse):
    events = append(6, actor=nurse)
    gone, after = AuditEvent.objects.get(pk=events[2].pk), AuditEvent.objects.get(pk=events[3].pk)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [gone.pk])
    code, _, err = run_verify()
    assert code == 1
    assert f"seq={after.seq} (id={after.pk})" in err and "missing" in err


def test_aud5_verify_audit_detects_reordered_rows(nurse):
    events = append(6, actor=nurse)
    a, b = AuditEvent.objects.get(pk=events[1].pk), AuditEvent.objects.get(pk=events[4].pk)
    # Swap the two rows' places in the chain (seq), through a free value.
    tamper("UPDATE audit_auditevent SET seq = 999999999 WHERE id = %s", [a.pk])
    tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [a.seq, b.pk])
    tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [b.seq, a.pk])
    code, _, err = run_verify()
    assert code == 1
    assert f"seq={a.seq} (id={b.pk})" in err


def test_aud5_verify_audit_detects_rows_cut_from_the_end(nurse):
    events = append(4, actor=nurse)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])
    code, _, err = run_verify()
    assert code == 1
    assert "chain head" in err and "removed from the end" in err


def test_aud5_verify_audit_detects_a_recomputed_row_hash_without_relinking(nurse):
    """Rewriting a row AND its own hash still breaks the next row's link."""
    events = append(4, actor=nurse)
    target = AuditEvent.objects.get(pk=events[1].pk)
    target.action = "charting.test.forged"
    from audit.chain import row_hash

    forged = row_hash(target)
    tamper("UPDATE audit_auditevent SET action = %s, row_hash = %s WHERE id = %s", ["charting.test.forged", forged, target.pk])
    code, _, err = run_verify()
    assert code == 1
    nxt = AuditEvent.objects.get(pk=events[2].pk)
    assert f"seq={nxt.seq} (id={nxt.pk})" in err and "prev_hash" in err


TAMPERS = st.sampled_from(["modify_action", "modify_detail", "modify_at", "modify_patient", "modify_outcome", "modify_username", "delete", "swap", "delete_tail"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(min_value=2, max_value=7), kind=TAMPERS, data=st.data())
def test_aud5_hypothesis_any_single_tamper_is_detected(nurse, n, kind, data):
    """Random appends, then one random out-of-band change: verify always fails."""
    with transaction.atomic():
        events = append(n, actor=nurse if data.draw(st.booleans()) else None)
        assert verify()[1] is None
        k = data.draw(st.integers(min_value=0, max_value=n - 1))
        row = AuditEvent.objects.get(pk=events[k].pk)
        if kind == "modify_action":
            tamper("UPDATE audit_auditevent SET action = action || 'x' WHERE id = %s", [row.pk])
        elif kind == "modify_detail":
            tamper("UPDATE audit_auditevent SET detail = detail || '{\"extra\": 1}' WHERE id = %s", [row.pk])
        elif kind == "modify_at":
            tamper("UPDATE audit_auditevent SET at = at + interval '1 microsecond' WHERE id = %s", [row.pk])
        elif kind == "modify_patient":
            tamper("UPDATE audit_auditevent SET patient_id = %s WHERE id = %s", [uuid.uuid4(), row.pk])
        elif kind == "modify_outcome":
            tamper("UPDATE audit_auditevent SET outcome = %s WHERE id = %s", [Outcome.DENIED if row.outcome != Outcome.DENIED else Outcome.SUCCESS, row.pk])
        elif kind == "modify_username":
            tamper("UPDATE audit_auditevent SET username = username || 'x' WHERE id = %s", [row.pk])
        elif kind == "delete":
            tamper("DELETE FROM audit_auditevent WHERE id = %s", [row.pk])
        elif kind == "delete_tail":
            tamper("DELETE FROM audit_auditevent WHERE seq >= %s", [row.seq])
        else:  # swap with another row
            other = AuditEvent.objects.get(pk=events[(k + 1) % n].pk)
            tamper("UPDATE audit_auditevent SET seq = 999999999 WHERE id = %s", [row.pk])
            tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [row.seq, other.pk])
            tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [other.seq, row.pk])
        assert verify()[1] is not None, kind
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_aud5_eight_threads_appending_at_once_still_verify(nurse):
    """The chain head is taken under a row lock: concurrent appends never fork it."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                with transaction.atomic():
                    record("charting.test.concurrent", actor=None, detail={"thread": n, "i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    checked, problem = verify()
    assert problem is None
    assert AuditEvent.objects.filter(action="charting.test.concurrent").count() == 80
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, checked + 1))


# --- AUD-4: append-only -------------------------------------------------------------


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET action = 'x' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"])
def test_aud4_trigger_refuses_update_and_delete_even_for_the_owner(nurse, statement):
    event = append(1, actor=nurse)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql(statement, [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk, action=event.action).exists()


def test_aud4_orm_update_and_delete_are_refused(nurse):
    event = append(1, actor=nurse)[0]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(outcome=Outcome.DENIED)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
        "TRUNCATE audit_auditevent",
    ],
)
def test_aud4_app_role_has_no_update_delete_or_truncate_on_the_audit_table(nurse, statement):
    import psycopg

    event = append(1, actor=nurse)[0]
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        sql(f"SET LOCAL ROLE {APP_ROLE}")
        sql(statement, [event.pk] if "%s" in statement else ())
    assert isinstance(excinfo.value.__cause__, psycopg.errors.InsufficientPrivilege)
    assert "permission denied" in str(excinfo.value)


def test_aud4_app_role_can_append_and_read_audit_rows(nurse):
    """As chairside_app the application still writes (and the chain still verifies)."""
    with transaction.atomic():
        sql(f"SET LOCAL ROLE {APP_ROLE}")
        append(3, actor=nurse)
        assert AuditEvent.objects.count() >= 3
    assert verify()[1] is None


def test_aud4_admin_offers_no_add_change_or_delete(rf, admin):
    from django.contrib.auth import get_user_model

    superuser = get_user_model().objects.create_superuser("root_aud4", password="x-very-long-password-1")
    model_admin = admin_site._registry[AuditEvent]
    request = rf.get("/")
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)
