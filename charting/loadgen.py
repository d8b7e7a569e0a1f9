"""Invented encounters at clinic-network scale, for benchmarks (issue #9, #5).

`generate(clinics=N, encounters=N, seed=S)` writes clinics, one nurse per
clinic, patients, encounters, access sites, administrations, vial uses,
pauses, time corrections, E/M services and audit rows (one per encounter:
its signing, or its last view for a draft, on the hash chain) with
PostgreSQL's COPY — no per-row INSERT, no model `save()`. The same seed
gives the same rows (ids included: every UUID comes from the seeded
generator).

Triggers: as a superuser (the benchmarks' `postgres`), the load runs with
`session_replication_role = replica`, which switches off the row triggers
for this transaction only: django-pghistory's history rows and the
signed-record guards (charting/models.py) are for charting, and firing them
for a million invented rows made the load ~5x slower; foreign keys are not
re-checked either (the generator makes parents before children). Without
superuser rights the triggers run and the load is merely slower.

The visit mix follows a rheumatology infusion centre (invented, not sampled
from anywhere real):

=============  ====  ===================================================================
visit          share administrations
=============  ====  ===================================================================
infliximab      35%  diphenhydramine push, methylprednisolone push, infliximab 2 h
rituximab       15%  diphenhydramine push, methylprednisolone push, acetaminophen 15 min,
                     rituximab 4-5 h with a reaction pause in 1 of 5
IVIG            15%  diphenhydramine push, Privigen 2.5-3.5 h
tocilizumab     15%  methylprednisolone push, tocilizumab 60 min with its saline
                     drug vehicle (not billed)
hydration       10%  hydration 60-120 min, ondansetron push
injections      10%  denosumab SC, methylprednisolone acetate IM
=============  ====  ===================================================================

That is 2.8 administrations per encounter on average (printed by the
command). One encounter in 50 carries one documentation gap, the kinds in
turn, of those the sweep flags (charting/checks.py): a drug still running, no access site,
hydration without indication, dose missing, waste not confirmed, no lot,
a pause never resumed, a late entry, an unmarked overlap on one site, a
second site without a reason, an unsigned encounter, an E/M visit without the
separate note, a drug added but never started, and an encounter with nothing
charted (its one drug struck as entered in error before it was started).
Everything else is complete.

Times: dates of service run back from `today` (clinic-local), visits start
between 08:00 and 14:00 local time; stored in UTC like everything else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import Callable
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, models, transaction

from audit import chain
from audit.models import AuditChainHead, AuditEvent, Category

from .models import (
    AccessSite,
    AdminFamily,
    Clinic,
    Drug,
    Encounter,
    OtherService,
    Patient,
    Pause,
    TimeCorrection,
    VialUse,
)
from .models import Administration as Adm

TIME_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix")
GAP_EVERY = 50  # 2 % of encounters carry one gap
GAP_KINDS = (
    "still_running",
    "no_access_site",
    "hydration_no_indication",
    "dose_missing",
    "waste_unconfirmed",
    "ndc_lot_missing",
    "pause_not_resumed",
    "late_entry",
    "overlap_same_site",
    "second_site_no_reason",
    "not_signed",
    "em_not_separate",
    "never_started",
    "nothing_charted",
)
DRUGS = {
    # key: catalog name
    "infliximab": "infliximab",
    "rituximab": "rituximab",
    "tocilizumab": "tocilizumab",
    "ivig": "immune globulin IV 10% (Privigen)",
    "saline": "sodium chloride 0.9% (hydration)",
    "diphenhydramine": "diphenhydramine HCl",
    "methylprednisolone": "methylprednisolone sodium succinate",
    "methylprednisolone_im": "methylprednisolone acetate",
    "acetaminophen": "acetaminophen (IV)",
    "ondansetron": "ondansetron HCl",
    "denosumab": "denosumab",
}


@dataclasses.dataclass
class Counts:
    clinics: int = 0
    patients: int = 0
    encounters: int = 0
    access_sites: int = 0
    administrations: int = 0
    vial_uses: int = 0
    pauses: int = 0
    time_corrections: int = 0
    other_services: int = 0
    audit_events: int = 0

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items())


class _Table:
    """Rows of one model, COPYed in one go. Values are given by attname; the
    other columns take the model field's default (or NULL / "" / the
    generation time for auto_now(_add) fields), so a column added later with a
    default needs no change here."""

    def __init__(self, model: type[models.Model], now: dt.datetime):
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields]
        self.now = now
        self.rows: list[tuple] = []
        self.next_id = 0
        if isinstance(model._meta.pk, models.AutoField):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT coalesce(max({connection.ops.quote_name(model._meta.pk.column)}), 0) FROM {connection.ops.quote_name(model._meta.db_table)}")
                self.next_id = cursor.fetchone()[0]

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _fill(self, field: models.Field, given: dict):
        if field.attname in given:
            value = given[field.attname]
        elif field.primary_key and isinstance(field, models.AutoField):
            value = self.new_id()
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = self.now
        elif field.has_default():
            value = field.get_default()
        elif field.null:
            value = None
        elif field.empty_strings_allowed:
            value = ""
        else:
            raise ValueError(f"{self.model.__name__}.{field.attname}: no value and no default")
        if isinstance(field, models.JSONField):
            return field.get_db_prep_save(value, connection)
        return value

    def add(self, **given) -> None:
        self.rows.append(tuple(self._fill(f, given) for f in self.fields))

    def copy(self) -> int:
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        sql = f"COPY {connection.ops.quote_name(self.model._meta.db_table)} ({columns}) FROM STDIN"
        with connection.cursor() as cursor:
            with cursor.cursor.copy(sql) as copy:
                for row in self.rows:
                    copy.write_row(row)
        n = len(self.rows)
        self.rows = []
        return n


class _Generator:
    def __init__(self, seed: int, today: dt.date, now: dt.datetime):
        self.rng = random.Random(seed)
        self.today = today
        self.now = now
        self.tables = {m: _Table(m, now) for m in (Patient, Encounter, AccessSite, Adm, VialUse, Pause, TimeCorrection, OtherService)}
        self.drugs = {key: Drug.objects.get(name=name) for key, name in DRUGS.items()}
        self.counts = Counts()
        # (at, actor id, action, encounter id, patient id): chained and COPYed at the end, in time order.
        self.audit: list[tuple[dt.datetime, int, str, uuid.UUID, uuid.UUID]] = []

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def ndc(self) -> str:
        r = self.rng
        return f"{r.randrange(10000, 99999)}-{r.randrange(1000, 9999)}-{r.randrange(10, 99)}"

    # --- one encounter --------------------------------------------------------------------

    def encounter(self, n: int, clinic: Clinic, tz: ZoneInfo, nurse_id: int, patient_id: uuid.UUID, day: dt.date) -> None:
        """The `n`-th encounter; one in GAP_EVERY carries a gap, the kinds in turn."""
        r = self.rng
        gap = GAP_KINDS[n // GAP_EVERY % len(GAP_KINDS)] if n % GAP_EVERY == GAP_EVERY - 1 else None
        enc_id = self.uuid()
        start = dt.datetime.combine(day, dt.time(r.randrange(8, 14), r.choice((0, 15, 30, 45))), tzinfo=tz).astimezone(dt.UTC)
        signed = gap != "not_signed" and day < self.today
        end_of_visit = start
        site_a = self._site(enc_id, "A", start, nurse_id)
        self.counts.access_sites += 1

        visit = r.choices(("infliximab", "rituximab", "ivig", "tocilizumab", "hydration", "injections"), (35, 15, 15, 15, 10, 10))[0]
        if gap == "hydration_no_indication":
            visit = "hydration"
        elif visit == "injections" and gap in ("no_access_site", "overlap_same_site", "second_site_no_reason"):
            visit = "infliximab"
        plan: list[tuple] = []  # (drug key, route, minutes, dose, unit, purpose, family override)
        if visit == "infliximab":
            plan = [("diphenhydramine", "iv_push", 2, 25, "mg", "treatment"), ("methylprednisolone", "iv_push", 2, 40, "mg", "treatment"),
                    ("infliximab", "iv_infusion", r.randrange(120, 151), r.choice((300, 400, 500, 700)), "mg", "treatment")]
        elif visit == "rituximab":
            plan = [("diphenhydramine", "iv_push", 2, 50, "mg", "treatment"), ("methylprednisolone", "iv_push", 2, 100, "mg", "treatment"),
                    ("acetaminophen", "iv_infusion", 15, 1000, "mg", "treatment"), ("rituximab", "iv_infusion", r.randrange(240, 301), 1000, "mg", "treatment")]
        elif visit == "ivig":
            plan = [("diphenhydramine", "iv_push", 2, 25, "mg", "treatment"), ("ivig", "iv_infusion", r.randrange(150, 211), r.choice((20, 30, 40)), "g", "treatment")]
        elif visit == "tocilizumab":
            plan = [("methylprednisolone", "iv_push", 2, 40, "mg", "treatment"), ("tocilizumab", "iv_infusion", r.randrange(60, 76), r.choice((400, 560, 800)), "mg", "treatment"),
                    ("saline", "iv_infusion", r.randrange(60, 76), 250, "mL", "drug_vehicle")]
        elif visit == "hydration":
            plan = [("saline", "iv_infusion", r.randrange(60, 121), 1000, "mL", "hydration_medically_necessary"), ("ondansetron", "iv_push", 2, 4, "mg", "treatment")]
        else:
            plan = [("denosumab", "subcutaneous", 1, 60, "mg", "treatment"), ("methylprednisolone_im", "intramuscular", 1, 40, "mg", "treatment")]
        if gap == "nothing_charted":
            plan = plan[-1:]  # the one drug, struck before it was started (patient sent home)

        target = max((i for i, step in enumerate(plan) if self._gap_fits(gap, *step)), default=None)
        t = start + dt.timedelta(minutes=5)
        previous_iv: dict | None = None
        adm_ids: list[uuid.UUID] = []
        for i, (key, route, minutes, dose, unit, purpose) in enumerate(plan):
            drug = self.drugs[key]
            adm_id = self.uuid()
            started = t
            stopped: dt.datetime | None = started + dt.timedelta(minutes=minutes)
            if key == "saline" and purpose == "drug_vehicle" and previous_iv is not None:
                started, stopped = previous_iv["started_at"], previous_iv["stopped_at"]  # carries the drug: same bag
            fields = dict(
                id=adm_id, encounter_id=enc_id, label=str(i + 1), drug_id=drug.pk, admin_class=drug.admin_family, route=route,
                access_site_id=site_a if route in ("iv_infusion", "iv_push") else None, dose_value=Decimal(dose), dose_unit=unit,
                purpose=purpose, started_at=started, stopped_at=stopped, recorded_by_id=nurse_id, recorded_at=started - dt.timedelta(minutes=1),
            )
            if key == "saline":
                fields["admin_class"] = AdminFamily.HYDRATION
            billable = bool(drug.hcpcs) and purpose not in ("kvo", "flush", "drug_vehicle") and fields["admin_class"] != AdminFamily.HYDRATION
            if billable:
                vials = 1 if unit != "mg" or dose <= 100 else -(-dose // 100)
                fields["container_type"] = "single_dose" if drug.single_dose else "multi_dose"
                if drug.single_dose:
                    fields.update(wasted_value=Decimal(0), wasted_unit=unit, waste_confirmed_by_id=nurse_id, waste_confirmed_at=stopped)
                self.tables[VialUse].add(administration_id=adm_id, ndc=self.ndc(), lot=f"L{r.randrange(100000, 999999)}", count=vials,
                                         recorded_by_id=nurse_id, recorded_at=started)
                self.counts.vial_uses += 1
            if key == "rituximab" and r.random() < 0.2:
                paused = started + dt.timedelta(minutes=r.randrange(30, 90))
                self.tables[Pause].add(administration_id=adm_id, paused_at=paused, resumed_at=paused + dt.timedelta(minutes=20),
                                       reason="infusion reaction, grade 1", recorded_by_id=nurse_id, recorded_at=paused)
                self.counts.pauses += 1
                stopped = stopped + dt.timedelta(minutes=20)
                fields["stopped_at"] = stopped
                if "waste_confirmed_at" in fields:
                    fields["waste_confirmed_at"] = stopped
            if route == "iv_infusion" and purpose != "drug_vehicle":
                previous_iv = fields
            if r.random() < 0.01:  # an amended stop time, with its reason
                self.tables[TimeCorrection].add(administration_id=adm_id, field="stopped_at", original_value=stopped + dt.timedelta(minutes=3),
                                                new_value=stopped, reason="Pump clock drift; stop taken from the pump log.",
                                                corrected_by_id=nurse_id, corrected_at=stopped + dt.timedelta(minutes=10))
                self.counts.time_corrections += 1
            if i == target:
                self._gap(gap, fields, adm_id, nurse_id, enc_id, start)
            self.tables[Adm].add(**fields)
            adm_ids.append(adm_id)
            self.counts.administrations += 1
            if fields["stopped_at"] is not None:
                t = fields["stopped_at"] + dt.timedelta(minutes=1)
            end_of_visit = max(end_of_visit, fields["stopped_at"] or fields["started_at"] or end_of_visit)
        if gap == "em_not_separate":
            self.tables[OtherService].add(encounter_id=enc_id, kind="em_visit", level="99213", significant_separately_identifiable=False)
            self.counts.other_services += 1
        elif gap != "nothing_charted" and r.random() < 0.05:
            self.tables[OtherService].add(encounter_id=enc_id, kind="em_visit", level="99214", significant_separately_identifiable=True,
                                          detail="New joint swelling assessed; methotrexate dose changed.")
            self.counts.other_services += 1
        self.tables[Encounter].add(
            id=enc_id, patient_id=patient_id, clinic_id=clinic.pk, setting="office", payer=r.choice(("medicare", "medicare", "independence_blue_cross")),
            date_of_service=day, status="signed" if signed else "draft", signed_by_id=nurse_id if signed else None,
            signed_at=end_of_visit + dt.timedelta(minutes=15) if signed else None, created_at=start,
        )
        if signed:
            self.audit.append((end_of_visit + dt.timedelta(minutes=15), nurse_id, "charting.encounter.sign", enc_id, patient_id))
        else:
            self.audit.append((end_of_visit, nurse_id, "charting.encounter.viewed", enc_id, patient_id))
        self.counts.encounters += 1

    def _site(self, enc_id: uuid.UUID, label: str, at: dt.datetime, nurse_id: int, **extra) -> int:
        site_id = self.tables[AccessSite].new_id()
        self.tables[AccessSite].add(id=site_id, encounter_id=enc_id, label=label, kind="peripheral_iv", location="left forearm",
                                    gauge=22, placed_at=at, recorded_by_id=nurse_id, recorded_at=at, **extra)
        return site_id

    def _gap_fits(self, gap: str | None, key: str, route: str, minutes: int, dose, unit: str, purpose: str) -> bool:
        """Whether the planned administration can carry a gap of kind `gap`."""
        iv = route in ("iv_infusion", "iv_push")
        billable = bool(self.drugs[key].hcpcs) and key != "saline" and purpose == "treatment"
        return {
            None: False,
            "no_access_site": iv,
            "hydration_no_indication": key == "saline" and purpose == "hydration_medically_necessary",
            "dose_missing": purpose == "treatment",
            "waste_unconfirmed": billable and self.drugs[key].single_dose,
            "ndc_lot_missing": billable,
            "overlap_same_site": route == "iv_infusion" and purpose != "drug_vehicle",
            "second_site_no_reason": iv,
            "never_started": key != "rituximab",  # not the one that may have had a pause
        }.get(gap, True)

    def _gap(self, gap: str, fields: dict, adm_id, nurse_id: int, enc_id, start) -> None:
        """Open one documentation gap of kind `gap` on this administration (or its encounter)."""
        r = self.rng
        if gap == "still_running":
            fields["stopped_at"] = None
            fields.update(wasted_value=None, wasted_unit="", waste_confirmed_by_id=None, waste_confirmed_at=None)
        elif gap == "no_access_site":
            fields["access_site_id"] = None
        elif gap == "hydration_no_indication":
            fields["purpose"] = "treatment"
        elif gap == "dose_missing":
            fields["dose_value"] = None
        elif gap == "waste_unconfirmed":
            fields.update(wasted_value=None, wasted_unit="", waste_confirmed_by_id=None, waste_confirmed_at=None)
        elif gap == "ndc_lot_missing" and r.random() < 0.5:  # no vials charted at all
            self.tables[VialUse].rows.pop()
            self.counts.vial_uses -= 1
        elif gap == "ndc_lot_missing":  # vials charted without their lot
            row = list(self.tables[VialUse].rows[-1])
            row[[f.attname for f in self.tables[VialUse].fields].index("lot")] = ""
            self.tables[VialUse].rows[-1] = tuple(row)
        elif gap == "pause_not_resumed":
            self.tables[Pause].add(administration_id=adm_id, paused_at=fields["stopped_at"] - dt.timedelta(minutes=5), resumed_at=None,
                                   reason="patient to the bathroom", recorded_by_id=nurse_id, recorded_at=fields["stopped_at"])
            self.counts.pauses += 1
        elif gap == "late_entry":
            fields["recorded_at"] = fields["started_at"] + dt.timedelta(minutes=r.randrange(90, 300))
        elif gap == "overlap_same_site":
            # A second infusion on the same site, during this one, not marked concurrent.
            self.tables[Adm].add(
                id=self.uuid(), encounter_id=enc_id, label="x", drug_id=self.drugs["saline"].pk, admin_class=AdminFamily.HYDRATION,
                route="iv_infusion", access_site_id=fields["access_site_id"], dose_value=Decimal(500), dose_unit="mL",
                purpose="hydration_medically_necessary", started_at=fields["started_at"] + dt.timedelta(minutes=10),
                stopped_at=fields["started_at"] + dt.timedelta(minutes=70), recorded_by_id=nurse_id, recorded_at=fields["started_at"],
            )
            self.counts.administrations += 1
        elif gap == "second_site_no_reason":
            fields["access_site_id"] = self._site(enc_id, "B", start, nurse_id, separate_site_medically_required=True, reason="")
            self.counts.access_sites += 1
        elif gap in ("never_started", "nothing_charted"):
            # Added, never started: no times, no vials opened, no waste.
            fields.update(started_at=None, stopped_at=None, container_type="", wasted_value=None, wasted_unit="", waste_confirmed_by_id=None, waste_confirmed_at=None)
            for model, counter in ((VialUse, "vial_uses"), (Pause, "pauses"), (TimeCorrection, "time_corrections")):
                rows = self.tables[model].rows
                if rows and rows[-1][[f.attname for f in self.tables[model].fields].index("administration_id")] == adm_id:
                    rows.pop()
                    setattr(self.counts, counter, getattr(self.counts, counter) - 1)
            if gap == "nothing_charted":
                fields.update(entered_in_error_at=start + dt.timedelta(minutes=10), entered_in_error_by_id=nurse_id, entered_in_error_reason="Patient sent home before treatment: fever.")

    def flush(self) -> None:
        # Parents before children (foreign keys are checked at COPY time).
        for model in (Patient, Encounter, AccessSite, Adm, VialUse, Pause, TimeCorrection, OtherService):
            self.tables[model].copy()

    def append_audit(self, usernames: dict[int, str]) -> None:
        """The collected audit rows, oldest first, linked onto the hash chain
        exactly as audit/chain.py's `append_many` does (the head row locked,
        then moved), but written with COPY."""
        self.audit.sort(key=lambda row: row[0])
        table = _Table(AuditEvent, self.now)
        with connection.cursor() as cursor:
            cursor.execute(chain._LOCK_HEAD)
            seq, prev = cursor.fetchone()
        prev = prev or chain.GENESIS
        for at, actor_id, action, enc_id, patient_id in self.audit:
            seq += 1
            event = AuditEvent(seq=seq, at=at, actor_id=actor_id, username=usernames[actor_id], role="nurse", action=action,
                               category=Category.CLINICAL, object_type="charting.encounter", object_id=str(enc_id),
                               patient_id=patient_id, prev_hash=prev, detail={})
            prev = chain.row_hash(event)
            table.add(id=table.new_id(), seq=seq, at=at, actor_id=actor_id, username=event.username, role="nurse", action=action,
                      category=Category.CLINICAL, object_type="charting.encounter", object_id=str(enc_id), patient_id=patient_id,
                      outcome="success", detail={}, prev_hash=event.prev_hash, row_hash=prev)
        self.counts.audit_events += table.copy()
        AuditChainHead.objects.filter(pk=1).update(seq=seq, last_hash=prev)
        self.audit = []


def generate(*, clinics: int, encounters: int, seed: int = 1, days: int = 365, today: dt.date | None = None,
             progress: Callable[[str], None] | None = None) -> Counts:
    """Write `encounters` invented encounters spread over `clinics` new clinics
    and the `days` days up to `today` (default: the current UTC date).

    PostgreSQL only (COPY); raises RuntimeError on another database. Seeds the
    drug catalog when it is empty. Clinics are named "Load clinic <seed>-<n>":
    generating again with the same seed raises RuntimeError rather than
    doubling the data. Returns the row counts written.
    """
    if connection.vendor != "postgresql":
        raise RuntimeError("generate_load_data writes with PostgreSQL's COPY; point DATABASE_URL at PostgreSQL.")
    if clinics < 1 or encounters < 1:
        raise ValueError("clinics and encounters must be at least 1")
    if not Drug.objects.exists():
        call_command("seed_drug_catalog", verbosity=0)
    prefix = f"Load clinic {seed}-"
    if Clinic.objects.filter(name__startswith=prefix).exists():
        raise RuntimeError(f"Load data with seed {seed} is already here (clinics named {prefix!r}).")
    today = today or dt.datetime.now(dt.UTC).date()
    now = dt.datetime.now(dt.UTC)
    gen = _Generator(seed, today, now)
    r = gen.rng
    say = progress or (lambda _text: None)
    User = get_user_model()
    nurse_group, _ = Group.objects.get_or_create(name="nurse")
    password = make_password(None)  # unusable: load users never log in
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")
        sites: list[tuple[Clinic, ZoneInfo, int, list[uuid.UUID]]] = []
        for n in range(clinics):
            clinic = Clinic.objects.create(name=f"{prefix}{n + 1}", time_zone=TIME_ZONES[n % len(TIME_ZONES)])
            nurse = User.objects.create(username=f"load-{seed}-nurse-{n + 1}", password=password, first_name="Load", last_name=f"Nurse {n + 1}")
            nurse.groups.add(nurse_group)
            clinic.staff.add(nurse)
            sites.append((clinic, ZoneInfo(clinic.time_zone), nurse.pk, []))
            gen.counts.clinics += 1
        patients_per_clinic = max(1, encounters // clinics // 12)  # about monthly visits over a year
        for clinic, _tz, _nurse, patients in sites:
            for p in range(patients_per_clinic):
                pid = gen.uuid()
                gen.tables[Patient].add(id=pid, clinic_id=clinic.pk, mrn=f"L{seed}-{clinic.pk}-{p + 1:06d}", given_name="Load",
                                        family_name=f"Patient {p + 1}", birth_date=dt.date(1940 + r.randrange(60), r.randrange(1, 13), r.randrange(1, 29)))
                patients.append(pid)
                gen.counts.patients += 1
        gen.tables[Patient].copy()
        batch = 20_000
        for e in range(encounters):
            clinic, tz, nurse_id, patients = sites[e % clinics]
            day = today - dt.timedelta(days=r.randrange(days))
            gen.encounter(e, clinic, tz, nurse_id, r.choice(patients), day)
            if (e + 1) % batch == 0:
                gen.flush()
                say(f"{e + 1}/{encounters} encounters")
        gen.flush()
        gen.append_audit({user.pk: user.username for user in User.objects.filter(pk__in=[nurse for _c, _tz, nurse, _p in sites])})
        with connection.cursor() as cursor:
            for model in (AccessSite, VialUse, Pause, TimeCorrection, OtherService, AuditEvent):
                table = model._meta.db_table
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest(1, (SELECT coalesce(max(id), 1) FROM {table})))")
    # Statistics for the planner, and (outside a transaction) the visibility
    # map that lets index-only scans skip the heap, as autovacuum would.
    analyze = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cursor:
        for model in (Patient, Encounter, AccessSite, Adm, VialUse, Pause):
            cursor.execute(f"{analyze} {model._meta.db_table}")
    return gen.counts

