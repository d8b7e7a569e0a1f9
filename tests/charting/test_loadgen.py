"""generate_load_data (charting/loadgen.py) and the sweep's one-statement floor.

The generated data feed the sweep benchmark (benchmarks/sweep_bench.py): the
rows must satisfy every database constraint, carry each kind of gap the
checks look for, and the sweep must find exactly what the single SQL
statement of `checks.gaps_sql` finds on them.
"""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from charting import checks, loadgen, services
from charting.models import AccessSite, Administration, Clinic, DocumentationFlag, Encounter, Patient, Pause, VialUse

TODAY = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 10, 23, 0, tzinfo=dt.UTC)


@pytest.fixture
def generated(db):
    return loadgen.generate(clinics=3, encounters=1500, seed=11, days=60, today=TODAY)


def test_counts_match_the_rows_written_and_every_encounter_has_a_nurse_and_a_drug(generated):
    assert generated.clinics == Clinic.objects.filter(name__startswith="Load clinic 11-").count() == 3
    assert generated.encounters == Encounter.objects.count() == 1500
    assert generated.patients == Patient.objects.count()
    assert generated.administrations == Administration.objects.count()
    assert generated.access_sites == AccessSite.objects.count()
    assert generated.vial_uses == VialUse.objects.count()
    assert generated.pauses == Pause.objects.count()
    # 2.8 administrations per encounter on average (the visit mix in the module docstring).
    assert 2.5 < generated.administrations / generated.encounters < 3.1
    assert not Encounter.objects.filter(administrations__isnull=True).exists()
    assert not Encounter.objects.exclude(clinic__staff__isnull=False).exists()
    # Dates of service stay in the window, all in the past or today.
    assert Encounter.objects.filter(date_of_service__gt=TODAY).count() == 0
    assert Encounter.objects.filter(date_of_service__lte=TODAY - dt.timedelta(days=60)).count() == 0


def test_every_kind_of_gap_is_there_and_the_sweep_equals_the_one_statement(generated):
    result = services.sweep_flags(now=NOW)
    kinds = set(DocumentationFlag.objects.values_list("kind", flat=True))
    assert kinds == {check.kind.value for check in checks.CHECKS}
    # About 2 % of encounters carry a gap; a chart complete everywhere else.
    assert 0.01 < DocumentationFlag.objects.values("encounter").distinct().count() / generated.encounters < 0.05
    sql, params = checks.gaps_sql(checks.Sweep(now=NOW, limits=checks.Limits.from_settings()))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        one_statement = sorted((kind, str(e), str(a) if a else None, s) for kind, e, a, s in cursor.fetchall())
    swept = sorted(
        (kind, str(e), str(a) if a else None, s)
        for kind, e, a, s in DocumentationFlag.objects.open().values_list("kind", "encounter_id", "administration_id", "access_site_id")
    )
    assert swept == one_statement
    assert result["opened"] == len(swept)


def test_the_chair_side_checks_agree_with_the_sweep_on_generated_data(generated):
    services.sweep_flags(now=NOW)
    flagged = set(DocumentationFlag.objects.open().values_list("encounter_id", flat=True))
    sample = list(flagged)[:40] + list(Encounter.objects.exclude(pk__in=flagged).values_list("pk", flat=True)[:40])
    for encounter in Encounter.objects.for_chart().filter(pk__in=sample):
        at_chair = sorted(i.record_key for i in checks.check_encounter(encounter, now=NOW))
        by_sweep = sorted(
            (f.kind, f.administration_id or f.access_site_id or f.encounter_id)
            for f in DocumentationFlag.objects.open().filter(encounter=encounter)
        )
        assert [(k, str(r)) for k, r in at_chair] == [(k, str(r)) for k, r in by_sweep], encounter.pk


def test_the_same_seed_twice_is_refused_and_bad_sizes_are_clear(db):
    loadgen.generate(clinics=1, encounters=10, seed=5, today=TODAY)
    with pytest.raises(CommandError, match="seed 5 is already here"):
        call_command("generate_load_data", "--clinics", "1", "--encounters", "10", "--seed", "5")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("generate_load_data", "--clinics", "0", "--encounters", "10", "--seed", "6")


def test_command_prints_one_line_of_counts(db):
    out = io.StringIO()
    call_command("generate_load_data", "--clinics", "2", "--encounters", "40", "--seed", "9", stdout=out)
    line = out.getvalue().strip()
    assert line.startswith("clinics=2 ") and "encounters=40 " in line and "administrations=" in line
    assert Encounter.objects.count() == 40


def test_audit_rows_one_per_encounter_on_an_unbroken_chain_and_no_history_rows(generated):
    """One audit row per encounter (signed: its signing; draft: its last view),
    oldest first, linked onto the hash chain (verify_audit passes); the load
    runs with the row triggers off (superuser), so no pghistory rows."""
    from audit import chain
    from audit.models import AuditEvent

    rows = AuditEvent.objects.filter(object_type="charting.encounter", username__startswith="load-11-nurse-")
    assert generated.audit_events == rows.count() == 1500
    assert rows.filter(action="charting.encounter.sign").count() == Encounter.objects.filter(status="signed").count()
    ats = list(rows.order_by("seq").values_list("at", flat=True))
    assert ats == sorted(ats)
    checked, problem = chain.verify()
    assert problem is None and checked == AuditEvent.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM charting_administrationevent")
        assert cursor.fetchone()[0] == 0
