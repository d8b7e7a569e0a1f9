"""State changes of clinical documentation: one function per change.

Every function runs in one transaction, locks what it changes
(`select_for_update`, always the encounter row first, then the
administration, so two taps on the same chair serialise instead of
deadlocking; FOR NO KEY UPDATE, which still excludes the other writers but
not the foreign-key checks of rows pointing at them: the flag sweep inserting
a flag for this encounter must not wait on a tap that itself waits on a flag
the sweep has locked, which deadlocked), checks the state, writes with `update_fields` and appends an
audit row in the same transaction. Clinical times are the SERVER's clock
(`timezone.now()`); a nurse changes a time only through `correct_time`,
which keeps the original with a reason.

Errors a nurse can fix raise `ChartingError(message, field=...)`; the message
is shown as it is, next to the form field it names.

Decisions:
- Stop while paused = resume-and-stop: the open pause is closed at the stop
  time, so the paused minutes are not counted (R17) and the record is complete.
- A second tap on Start or Stop (double tap, retry after a lost response) is a
  no-op, not an error: the function returns the administration unchanged with
  `adm.notice` saying when it was already started/stopped.
- Signing twice is a no-op too (no second coding task).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import string
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.text import slugify

from audit.services import record

from . import checks
from .clock import wall_clock_problem
from .models import (
    NDC_PATTERN,
    ROUTES_NEEDING_SITE,
    AccessSite,
    AccessSiteCheck,
    Administration,
    AmendableField,
    Amendment,
    AmendmentReason,
    Clinic,
    ContainerType,
    DocumentationFlag,
    DoseUnit,
    Drug,
    Encounter,
    OtherService,
    Patient,
    Pause,
    Purpose,
    ReactionAdministration,
    Route,
    SweepRun,
    TimeCorrection,
    VialUse,
    amendment_in_progress,
    convert,
    dose_tiers,
    opened_amount,
)


class ChartingError(Exception):
    """A documentation change that was refused; `message` is for the nurse."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# --- helpers ----------------------------------------------------------------


def local_hhmm(value: dt.datetime, clinic: Clinic) -> str:
    """HH:MM in the clinic's zone (what the nurse sees on the wall clock)."""
    return timezone.localtime(value, clinic.tz).strftime("%H:%M")


def _day(value: dt.date) -> str:
    """Tue 10 Mar 2026 (a date of service as the messages name it)."""
    return f"{value:%a} {value.day} {value:%b %Y}"


def in_the_future(value: dt.datetime, clinic: Clinic, now: dt.datetime) -> str:
    """The refusal of a time after `now`: "11:45 is in the future." on the
    clinic's today; with the day when it is another one ("09:00 on Fri 1 Jan
    2027 is in the future.": 09:00 alone reads as a past time of today)."""
    local = timezone.localtime(value, clinic.tz)
    if local.date() == timezone.localtime(now, clinic.tz).date():
        return f"{local:%H:%M} is in the future."
    return f"{local:%H:%M} on {_day(local.date())} is in the future."


def check_charted_time(value: dt.datetime, encounter: Encounter, *, field: str, now: dt.datetime | None = None) -> None:
    """Refuse (ChartingError on `field`) a clinical time typed by a nurse that
    cannot belong to `encounter` (its clinic loaded): in the future (after
    `now`, default the server's clock), before its date of service (local
    midnight in the clinic's zone), or after the END OF THE NEXT DAY: a drug
    may run past midnight (the date of service is the day the visit began),
    but a time two days on is a typo or another visit. For corrected
    start/stop/pause/resume times and amended start/stop times (VAL-2,
    TIM-2). Not for an access site's placement: a PICC or port may have been
    placed days before the visit."""
    clinic = encounter.clinic
    now = now or timezone.now()
    day = encounter.date_of_service
    local = timezone.localtime(value, clinic.tz)
    typed = f"{local:%H:%M} on {_day(local.date())}"
    if value > now:
        raise ChartingError(in_the_future(value, clinic, now), field=field)
    if local.date() < day:
        raise ChartingError(f"{typed} is before this encounter's date of service, {_day(day)}: give a time on that day.", field=field)
    if local.date() > day + dt.timedelta(days=1):
        raise ChartingError(f"{typed} is after this encounter's date of service, {_day(day)}, and the night after it: give a time on that day.", field=field)


class SignedEncounterError(ChartingError):
    """A change to a signed encounter's documentation (REC-1): the views answer
    409 Conflict with this message, which says to amend instead."""


def signed_encounter_error(encounter: Encounter) -> SignedEncounterError:
    """The refusal of a change to the signed `encounter` (its clinic loaded)."""
    return SignedEncounterError(f"This encounter was signed at {local_hhmm(encounter.signed_at, encounter.clinic)}; signed documentation can only be changed by an amendment.")


def _locked_encounter(encounter_id) -> Encounter:
    encounter = Encounter.objects.select_for_update(of=("self",), no_key=True).select_related("clinic").get(pk=encounter_id)
    if encounter.is_signed:
        raise signed_encounter_error(encounter)
    return encounter


def _locked_administration(adm: Administration) -> Administration:
    """Lock the encounter (refusing signed ones), then the administration row."""
    encounter = _locked_encounter(adm.encounter_id)
    locked = Administration.objects.select_for_update(of=("self",), no_key=True).select_related("drug").get(pk=adm.pk)
    locked.encounter = encounter
    locked.notice = ""
    return locked


def _open_pause(adm: Administration) -> Pause | None:
    return Pause.objects.select_for_update().filter(administration=adm, resumed_at__isnull=True).first()


def _audit(action: str, obj: Any, encounter: Encounter, actor: Any, **detail: Any) -> None:
    record(action, actor=actor, obj=obj, patient_id=encounter.patient_id, detail={k: (v.isoformat() if isinstance(v, dt.datetime) else str(v) if isinstance(v, Decimal) else v) for k, v in detail.items()})


def _resolve_still_running(adm: Administration, now: dt.datetime) -> None:
    DocumentationFlag.objects.filter(administration=adm, kind=DocumentationFlag.Kind.STILL_RUNNING, resolved_at__isnull=True).update(resolved_at=now)


def _resolve_never_started(adm: Administration, now: dt.datetime) -> None:
    """The drug has a start now: its "never started" flag is resolved at once,
    not at the next sweep (one UPDATE, as for a stop)."""
    DocumentationFlag.objects.filter(administration=adm, kind=DocumentationFlag.Kind.NEVER_STARTED, resolved_at__isnull=True).update(resolved_at=_not_before_created(now))


def _not_before_created(now: dt.datetime) -> Greatest:
    # A flag a sweep opened with a later `now` (a clock a little ahead) is
    # resolved when it was opened, never before (flag_resolved_after_created).
    return Greatest(F("created_at"), Value(now, output_field=DateTimeField()))


# --- encounters and sites -----------------------------------------------------


@transaction.atomic
def open_encounter(patient: Patient, *, clinic: Clinic, setting: str, actor: Any) -> Encounter:
    """Open today's encounter (date of service = today in the clinic's zone).

    A draft encounter already open today for this patient is returned as it is
    (a double tap on "Open" must not make two charts for one visit).
    """
    if patient.clinic_id != clinic.pk:
        raise ChartingError("This patient belongs to another clinic.", field="patient")
    # Lock the patient row so two simultaneous opens see each other.
    Patient.objects.select_for_update().get(pk=patient.pk)
    today = timezone.localdate(timezone.now(), clinic.tz)
    existing = Encounter.objects.filter(patient=patient, clinic=clinic, date_of_service=today, status=Encounter.Status.DRAFT, external_id__isnull=True).first()
    if existing is not None:
        return existing
    encounter = Encounter.objects.create(patient=patient, clinic=clinic, setting=setting, date_of_service=today)
    _audit("charting.encounter.opened", encounter, encounter, actor, setting=setting, date_of_service=today.isoformat())
    return encounter


@transaction.atomic
def add_access_site(
    encounter: Encounter,
    *,
    kind: str,
    location: str = "",
    gauge: int | None = None,
    placed_at: dt.datetime | None = None,
    separate_site_medically_required: bool = False,
    reason: str = "",
    actor: Any,
) -> AccessSite:
    """Record an access site; it gets the next free letter (A, B, ...) as its label."""
    encounter = _locked_encounter(encounter.pk)
    reason = (reason or "").strip()
    if separate_site_medically_required and not reason:
        raise ChartingError("Say why a separate site was medically required.", field="reason")
    if placed_at is not None and placed_at > timezone.now():
        raise ChartingError("The placement time is in the future.", field="placed_at")
    used = set(AccessSite.objects.filter(encounter=encounter).values_list("label", flat=True))
    label = next((c for c in string.ascii_uppercase if c not in used), None) or f"S{len(used) + 1}"
    site = AccessSite.objects.create(
        encounter=encounter,
        label=label,
        kind=kind,
        location=location,
        gauge=gauge,
        placed_at=placed_at,
        separate_site_medically_required=separate_site_medically_required,
        reason=reason,
        recorded_by=actor,
    )
    _audit("charting.access_site.added", site, encounter, actor, label=label, kind=kind, separate_site_medically_required=separate_site_medically_required)
    return site


# --- administrations ------------------------------------------------------------


MIN_DOSE = Decimal("0.001")
MAX_DOSE = Decimal("999999999.999")


def _next_label(encounter: Encounter, drug: Drug) -> str:
    base = slugify(drug.name)[:16].strip("-") or "drug"
    used = set(Administration.objects.filter(encounter=encounter).values_list("label", flat=True))
    label, n = base, 1
    while label in used:
        n += 1
        label = f"{base}-{n}"
    return label


def _dose_code(adm: Administration) -> list[str]:
    """Bill a drug with "up to" codes by dose (`Drug.dose_tiers`, R46) under
    the code its dose needs: sets `hcpcs_override` and the billing unit
    (`hcpcs_unit_value` / `hcpcs_unit_unit`, which the coding input and the
    reports read first) and returns the fields it changed. A code someone
    typed that is not one of the drug's tiers is left alone, as is a drug
    without tiers."""
    try:
        tiers = {hcpcs for _, _, hcpcs in dose_tiers(adm.drug.dose_tiers)}
    except ValueError:
        return []  # tiers the admin form would refuse (written another way): the catalog code stands
    if not tiers or (adm.hcpcs_override and adm.hcpcs_override not in tiers):
        return []
    code = adm.drug.code_for_dose(adm.dose_value, adm.dose_unit)
    hcpcs, unit_value, unit = code if code is not None else ("", None, "")
    new = {"hcpcs_override": hcpcs, "hcpcs_unit_value": unit_value, "hcpcs_unit_unit": unit}
    changed = [name for name, value in new.items() if getattr(adm, name) != value]
    for name in changed:
        setattr(adm, name, new[name])
    return changed


@transaction.atomic
def add_administration(
    encounter: Encounter,
    *,
    drug: Drug,
    route: str,
    access_site: AccessSite | None,
    dose_value: Decimal | None,
    dose_unit: str,
    purpose: str,
    actor: Any,
    admin_class: str | None = None,
    label: str = "",
    concurrent_with: Administration | None = None,
    bag: str = "",
    continuously_present: bool = False,
    visit: str = "1",
) -> Administration:
    """Chart a drug to be given (not started yet).

    `admin_class` defaults to the catalog family of the drug (D9). IV infusion,
    IV push and intra-arterial routes need an access site of this encounter;
    SC/IM injections don't. Without `label` the drug's name is used
    (slugified, made unique in the encounter).
    """
    encounter = _locked_encounter(encounter.pk)
    if route in ROUTES_NEEDING_SITE:
        if access_site is None:
            raise ChartingError("This route needs an access site: add one first, then pick it.", field="access_site")
    if access_site is not None and access_site.encounter_id != encounter.pk:
        raise ChartingError("That access site belongs to another encounter.", field="access_site")
    if dose_value is not None and not dose_unit:
        raise ChartingError("Give the unit of the dose.", field="dose_unit")
    if dose_value is not None and not (MIN_DOSE <= dose_value <= MAX_DOSE):
        # The column is numeric(12, 3): a smaller value would round to 0 and break
        # the positive-dose constraint, a larger one overflow it.
        raise ChartingError(f"The dose must be between {MIN_DOSE} and {MAX_DOSE}.", field="dose_value")
    if concurrent_with is not None and concurrent_with.encounter_id != encounter.pk:
        raise ChartingError("The concurrent drug must be part of this encounter.", field="concurrent_with")
    adm = Administration(
        encounter=encounter,
        label=label or _next_label(encounter, drug),
        drug=drug,
        admin_class=admin_class or drug.admin_family,
        route=route,
        access_site=access_site,
        dose_value=dose_value,
        dose_unit=dose_unit or "",
        purpose=purpose,
        concurrent_with=concurrent_with,
        bag=bag,
        continuously_present=continuously_present,
        visit=visit,
        recorded_by=actor,
    )
    _dose_code(adm)  # methylprednisolone 100 mg: J2930 x1, not the catalog's first code
    adm.save(force_insert=True)
    # The encounter is not empty any more: its "nothing charted" flag, if
    # any, is resolved at once (a "never started" one waits for its time).
    DocumentationFlag.objects.filter(encounter=encounter, kind=DocumentationFlag.Kind.NOTHING_CHARTED, resolved_at__isnull=True).update(resolved_at=_not_before_created(adm.recorded_at))
    _audit("charting.administration.added", adm, encounter, actor, drug=drug.name, route=route, label=adm.label, dose_value=dose_value, dose_unit=dose_unit, **({"hcpcs": adm.hcpcs_override, "hcpcs_unit": f"{adm.hcpcs_unit_value} {adm.hcpcs_unit_unit}"} if adm.hcpcs_override else {}))
    return adm


@transaction.atomic
def start_administration(adm: Administration, *, actor: Any) -> Administration:
    """Stamp the start (server time). A second tap reports the first start and changes nothing."""
    adm = _locked_administration(adm)
    clinic = adm.encounter.clinic
    if adm.started_at is not None:
        adm.notice = f"{adm.drug} was already started at {local_hhmm(adm.started_at, clinic)}."
        return adm
    adm.started_at = timezone.now()
    adm.save(update_fields=["started_at"])
    _resolve_never_started(adm, adm.started_at)
    _audit("charting.administration.started", adm, adm.encounter, actor, started_at=adm.started_at)
    return adm


@transaction.atomic
def pause_administration(adm: Administration, *, reason: str, actor: Any) -> Administration:
    """Open a pause (server time) on a running drug; `reason` is required."""
    adm = _locked_administration(adm)
    reason = (reason or "").strip()
    if not reason:
        raise ChartingError("Say why the drug is paused.", field="reason")
    if adm.started_at is None or adm.stopped_at is not None:
        raise ChartingError(f"{adm.drug} is not running, so it cannot be paused.")
    current = _open_pause(adm)
    if current is not None:
        raise ChartingError(f"{adm.drug} is already paused since {local_hhmm(current.paused_at, adm.encounter.clinic)}.")
    pause = Pause.objects.create(administration=adm, paused_at=timezone.now(), reason=reason[:200], recorded_by=actor)
    _audit("charting.administration.paused", adm, adm.encounter, actor, paused_at=pause.paused_at, reason=pause.reason)
    return adm


@transaction.atomic
def resume_administration(adm: Administration, *, actor: Any) -> Administration:
    """Close the open pause (server time)."""
    adm = _locked_administration(adm)
    pause = _open_pause(adm)
    if pause is None or adm.stopped_at is not None:
        raise ChartingError(f"{adm.drug} is not paused, so it cannot be resumed.")
    pause.resumed_at = timezone.now()
    pause.save(update_fields=["resumed_at"])
    _audit("charting.administration.resumed", adm, adm.encounter, actor, resumed_at=pause.resumed_at)
    return adm


@transaction.atomic
def stop_administration(adm: Administration, *, actor: Any) -> Administration:
    """Stamp the stop (server time).

    Stopping a paused drug closes the pause at the stop time (resume-and-stop).
    A second Stop is a no-op whose `adm.notice` says when it was stopped.
    """
    adm = _locked_administration(adm)
    clinic = adm.encounter.clinic
    if adm.started_at is None:
        raise ChartingError(f"{adm.drug} has not started yet: tap Start first.")
    if adm.stopped_at is not None:
        adm.notice = f"{adm.drug} was already stopped at {local_hhmm(adm.stopped_at, clinic)}."
        return adm
    now = timezone.now()
    pause = _open_pause(adm)
    if pause is not None:
        pause.resumed_at = now
        pause.save(update_fields=["resumed_at"])
    adm.stopped_at = now
    adm.save(update_fields=["stopped_at"])
    _resolve_still_running(adm, now)
    _audit("charting.administration.stopped", adm, adm.encounter, actor, stopped_at=now, closed_pause=pause is not None)
    return adm


# --- undo -------------------------------------------------------------------------

UNDO_EVENTS = ("start", "pause", "resume", "stop")


class UndoWindowPassed(ChartingError):
    """The undo came after the window: the nurse corrects the time instead."""


@transaction.atomic
def undo_event(adm: Administration, *, event: str, actor: Any) -> Administration:
    """Revert the card's last tap (`event`: start / pause / resume / stop)
    when it was made at most CHAIRSIDE_UNDO_SECONDS ago, by the SERVER's clock
    (the client's clock is never asked).

    start: the start is cleared; pause: the pause just opened is removed (its
    insert stays in the pghistory event table and the audit row keeps its time
    and reason); resume: the pause is open again; stop: the stop is cleared
    and a pause the stop closed is open again. One audit row
    "charting.administration.undone" with the event and its time.

    Raises UndoWindowPassed after the window ("use Correct a time", which
    keeps the original), ChartingError when `event` is not the card's last
    tap (e.g. undo "start" of a drug paused since), SignedEncounterError on
    a signed encounter.
    """
    adm = _locked_administration(adm)
    if event not in UNDO_EVENTS:
        raise ChartingError("Nothing to undo.")
    if adm.entered_in_error_at is not None:
        raise ChartingError(f"{adm.drug} was struck as entered in error: its times are kept as they were.")
    last = adm.last_event()
    if last is None or last[0] != event:
        raise ChartingError(f"The last change of {adm.drug} is not a {event}: nothing to undo. Use “Correct a time” instead.")
    at = last[1]
    window = settings.CHAIRSIDE_UNDO_SECONDS
    now = timezone.now()
    if (now - at).total_seconds() > window:
        raise UndoWindowPassed(
            f"Too late to undo the {event} of {adm.drug} at {local_hhmm(at, adm.encounter.clinic)} (undo is offered for {window} s). Use “Correct a time”: it keeps the original."
        )
    detail: dict[str, Any] = {"event": event, "at": at}
    if event == "start":
        adm.started_at = None
        adm.save(update_fields=["started_at"])
    elif event == "pause":
        pause = _open_pause(adm)
        if pause.time_corrections.exists():
            raise ChartingError("This pause has a corrected time: use “Correct a time” instead.")
        if ReactionAdministration.objects.filter(pause=pause).exists():
            raise ChartingError(
                f"This pause of {adm.drug} was opened by a recorded reaction: it stays with the reaction. Resume the drug when it is safe, or strike the reaction as entered in error."
            )
        detail |= {"reason": pause.reason}
        pause.delete()
    elif event == "resume":
        pause = Pause.objects.select_for_update().filter(administration=adm, resumed_at=at).first()
        pause.resumed_at = None
        pause.save(update_fields=["resumed_at"])
    else:
        pause = Pause.objects.select_for_update().filter(administration=adm, resumed_at=at).first()
        if pause is not None:  # the stop had closed this pause (resume-and-stop): paused again
            pause.resumed_at = None
            pause.save(update_fields=["resumed_at"])
        adm.stopped_at = None
        adm.save(update_fields=["stopped_at"])
        detail |= {"reopened_pause": pause is not None}
    _audit("charting.administration.undone", adm, adm.encounter, actor, **detail)
    adm.notice = f"{event.capitalize()} of {adm.drug} undone."
    return adm


# --- access site checks -------------------------------------------------------------


@transaction.atomic
def record_site_check(site: AccessSite, *, finding: str, note: str = "", actor: Any) -> AccessSiteCheck:
    """A nurse checked access site `site` now (server time): `finding` from
    SiteFinding, `note` free text (required for "other"). Refused on a signed
    encounter (SignedEncounterError)."""
    encounter = _locked_encounter(site.encounter_id)
    note = (note or "").strip()
    if finding == "other" and not note:
        raise ChartingError("Say what was found in the note.", field="note")
    check = AccessSiteCheck.objects.create(site=site, checked_at=timezone.now(), checked_by=actor, finding=finding, note=note[:300])
    _audit("charting.access_site.checked", site, encounter, actor, label=site.label, finding=finding, checked_at=check.checked_at)
    return check


# --- corrections ----------------------------------------------------------------


def _check_times(adm: Administration, started: dt.datetime | None, stopped: dt.datetime | None, pauses: list[tuple[dt.datetime, dt.datetime | None]], field: str) -> None:
    clinic = adm.encounter.clinic
    hhmm = lambda value: local_hhmm(value, clinic)  # noqa: E731
    if stopped is not None and started is None:
        raise ChartingError("A stop time needs a start time.", field=field)
    if stopped is not None and stopped < started:
        raise ChartingError(f"Stop time {hhmm(stopped)} is before start time {hhmm(started)}.", field=field)
    previous_end = None
    for paused_at, resumed_at in sorted(pauses):
        if started is None or paused_at < started:
            raise ChartingError(f"The pause at {hhmm(paused_at)} is before the start{f' ({hhmm(started)})' if started else ''}.", field=field)
        if resumed_at is not None and resumed_at < paused_at:
            raise ChartingError(f"Resume time {hhmm(resumed_at)} is before the pause at {hhmm(paused_at)}.", field=field)
        if stopped is not None and (resumed_at or stopped) > stopped:
            raise ChartingError(f"The pause at {hhmm(paused_at)} runs past the stop time {hhmm(stopped)}.", field=field)
        if previous_end is not None and paused_at < previous_end:
            raise ChartingError(f"The pause at {hhmm(paused_at)} overlaps the pause before it.", field=field)
        previous_end = resumed_at or stopped or paused_at


@transaction.atomic
def correct_time(adm: Administration, *, field: str, new_value: dt.datetime, reason: str, actor: Any, pause: Pause | None = None) -> Administration:
    """Correct a charted time, keeping the original in a TimeCorrection row.

    `field` is started_at / stopped_at (of `adm`) or paused_at / resumed_at
    (of `pause`, which must belong to `adm`). `new_value` is aware; it may not
    be in the future nor before the date of service (`check_charted_time`)
    and must keep start <= pauses <= stop. Charting a stop
    this way on a paused drug closes the open pause at that time, as Stop does.
    Signed encounters are corrected by amendments (a later issue), not here.
    """
    adm = _locked_administration(adm)
    now = timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ChartingError("A reason is required.", field="reason")
    if timezone.is_naive(new_value):
        raise ChartingError("The time needs a time zone.", field="new_value")
    check_charted_time(new_value, adm.encounter, field="new_value", now=now)
    valid = {c.value for c in TimeCorrection.Field}
    if field not in valid:
        raise ChartingError("Unknown time to correct.", field="target")
    pauses = {p.pk: p for p in Pause.objects.select_for_update().filter(administration=adm)}
    if field in ("paused_at", "resumed_at"):
        if pause is None or pause.pk not in pauses:
            raise ChartingError("Pick a pause of this drug.", field="target")
        pause = pauses[pause.pk]
    elif pause is not None:
        raise ChartingError("A start or stop correction does not take a pause.", field="target")

    started, stopped = adm.started_at, adm.stopped_at
    spans = {pk: [p.paused_at, p.resumed_at] for pk, p in pauses.items()}
    closed_pause = None
    if field == "started_at":
        original, started = started, new_value
    elif field == "stopped_at":
        if started is None:
            raise ChartingError(f"{adm.drug} has not started: correct the start first.", field="new_value")
        original, stopped = stopped, new_value
        closed_pause = next((p for p in pauses.values() if p.resumed_at is None), None)
        if closed_pause is not None:
            spans[closed_pause.pk][1] = new_value
    else:
        original = getattr(pause, field)
        spans[pause.pk][0 if field == "paused_at" else 1] = new_value
    _check_times(adm, started, stopped, [tuple(s) for s in spans.values()], "new_value")

    TimeCorrection.objects.create(administration=adm, pause=pause, field=field, original_value=original, new_value=new_value, reason=reason, corrected_by=actor)
    if field in ("started_at", "stopped_at"):
        setattr(adm, field, new_value)
        adm.save(update_fields=[field])
    else:
        setattr(pause, field, new_value)
        pause.save(update_fields=[field])
    if closed_pause is not None:
        closed_pause.resumed_at = new_value
        closed_pause.save(update_fields=["resumed_at"])
    if adm.stopped_at is not None:
        _resolve_still_running(adm, now)
    if field == "started_at":
        _resolve_never_started(adm, now)
    _refresh(adm.encounter)  # before the audit row: flags, then the chain head, as the sweep locks them
    _audit("charting.administration.time_corrected", adm, adm.encounter, actor, field=field, original_value=original, new_value=new_value, reason=reason, pause_id=pause.pk if pause else None)
    return adm


# --- vials and waste (R47-R49) ------------------------------------------------------


MAX_VIALS = 999


def _fmt(value: Decimal) -> str:
    """12.500 -> 12.5, 100.000 -> 100 (as a nurse writes amounts)."""
    return f"{value.normalize():f}"


def _check_amount(value: Decimal | None, unit: str, *, what: str, field: str, unit_field: str, minimum: Decimal) -> None:
    if value is None:
        raise ChartingError(f"Give the {what}.", field=field)
    if unit not in DoseUnit.values:
        raise ChartingError(f"Give the unit of the {what}.", field=unit_field)
    # numeric(12, 3) columns, as for the dose.
    if not (minimum <= value <= MAX_DOSE) or value != value.quantize(MIN_DOSE):
        raise ChartingError(f"The {what} must be between {_fmt(minimum)} and {MAX_DOSE}, with at most 3 decimals.", field=field)


def _clear_waste(adm: Administration) -> bool:
    """Forget a confirmed waste (the vials it was confirmed for changed)."""
    if adm.waste_confirmed_at is None:
        return False
    adm.wasted_value, adm.wasted_unit, adm.waste_confirmed_by, adm.waste_confirmed_at = None, "", None, None
    return True


def refuse_expired_lot(expiry: dt.date | None, *, date_of_service: dt.date) -> None:
    """Refuse a lot whose expiry date is before the date of service (the
    clinic's local date, `Encounter.date_of_service`): ChartingError on
    field "expiry". A lot expiring ON the date of service may still be used
    (it expires at the end of that day); no expiry given, nothing to check.
    Typed (record_vials) and scanned (charting.scanning) expiries both go
    through here."""
    if expiry is not None and expiry < date_of_service:
        raise ChartingError(f"This lot expired on {expiry.isoformat()}, before the date of service ({date_of_service.isoformat()}): do not use it.", field="expiry")


@transaction.atomic
def record_vials(
    adm: Administration,
    *,
    ndc: str,
    lot: str,
    expiry: dt.date | None,
    container_type: str,
    size_value: Decimal | None,
    size_unit: str,
    count: int | None,
    actor: Any,
) -> Administration:
    """Chart `count` containers of `size_value size_unit` (NDC and lot as
    printed on the package) opened for `adm`; `container_type` is single_dose
    or multi_dose and applies to all the drug's containers.

    One row per NDC + lot: charting the same NDC and lot again updates that row
    (a double tap with the same values changes nothing; `adm.notice` says so).
    Changing the vials forgets a confirmed waste, which then has to be
    confirmed again (`adm.notice` says so). Refused on a signed encounter, for
    an expired vial, a malformed NDC, or a size that does not convert to the
    dose's unit (waste = opened - dose needs one scale).
    """
    adm = _locked_administration(adm)
    ndc, lot = (ndc or "").strip(), (lot or "").strip()
    if not re.fullmatch(NDC_PATTERN, ndc):
        raise ChartingError(
            f"NDC {ndc!r} is not as printed on the package: 10 digits with hyphens as 4-4-2, 5-3-2 or 5-4-1, or 11 digits." if ndc else "Give the NDC printed on the package.",
            field="ndc",
        )
    if not lot:
        raise ChartingError("Give the lot number printed on the vial.", field="lot")
    if len(lot) > VialUse._meta.get_field("lot").max_length:
        raise ChartingError("The lot number is too long.", field="lot")
    if container_type not in ContainerType.values:
        raise ChartingError("Say whether the containers are single-dose or multi-dose.", field="container_type")
    _check_amount(size_value, size_unit, what="container size", field="size_value", unit_field="size_unit", minimum=MIN_DOSE)
    if count is None or not (1 <= count <= MAX_VIALS):
        raise ChartingError(f"Give how many containers were opened (1 to {MAX_VIALS}).", field="count")
    refuse_expired_lot(expiry, date_of_service=adm.encounter.date_of_service)
    if adm.dose_value is not None and adm.dose_unit and convert(size_value, size_unit, adm.dose_unit) is None:
        raise ChartingError(f"Give the size in a unit the dose ({adm.dose_unit}) converts from, so the waste can be worked out.", field="size_unit")

    vials = list(VialUse.objects.select_for_update().filter(administration=adm))
    same = next((v for v in vials if v.ndc == ndc and v.lot == lot), None)
    if adm.container_type and adm.container_type != container_type and any(v is not same for v in vials):
        raise ChartingError(
            f"The other vials of {adm.drug} are charted as {ContainerType(adm.container_type).label.lower()}: one drug is given from one kind of container.",
            field="container_type",
        )
    values = {"expiry": expiry, "size_value": size_value, "size_unit": size_unit, "count": count}
    if same is not None and adm.container_type == container_type and all(getattr(same, k) == v for k, v in values.items()):
        adm.notice = f"These vials (NDC {ndc}, lot {lot}) are already charted."
        return adm
    if same is None:
        same = VialUse.objects.create(administration=adm, ndc=ndc, lot=lot, recorded_by=actor, **values)
        action = "charting.administration.vials_recorded"
    else:
        for k, v in values.items():
            setattr(same, k, v)
        same.save(update_fields=list(values))
        action = "charting.administration.vials_changed"
    cleared = _clear_waste(adm)
    adm.container_type = container_type
    adm.save(update_fields=["container_type", "wasted_value", "wasted_unit", "waste_confirmed_by", "waste_confirmed_at"])
    if cleared:
        adm.notice = "The vials changed: confirm the waste again."
    _refresh(adm.encounter)
    _audit(action, adm, adm.encounter, actor, vial_use_id=same.pk, ndc=ndc, lot=lot, container_type=container_type, size_value=size_value, size_unit=size_unit, count=count, expiry=expiry.isoformat() if expiry else None, waste_cleared=cleared)
    return adm


@transaction.atomic
def confirm_waste(adm: Administration, *, wasted_value: Decimal | None, wasted_unit: str, actor: Any) -> Administration:
    """The nurse confirms what was discarded from the single-dose containers
    of `adm` (`wasted_value` 0 = "none", R48 JZ; more = the JW amount, R47).

    The waste can be at most what the vials held minus the dose (mg, g and mcg
    convert). Refused without charted vials or dose, for multi-dose
    containers (never JW/JZ), and on a signed encounter. Confirming the same
    amount again changes nothing (`adm.notice`).
    """
    adm = _locked_administration(adm)
    _check_amount(wasted_value, wasted_unit, what="amount wasted", field="wasted_value", unit_field="wasted_unit", minimum=Decimal(0))
    if not adm.container_type:
        raise ChartingError(f"Chart the vials of {adm.drug} first: the waste is what is left of them.")
    if adm.container_type == ContainerType.MULTI_DOSE:
        raise ChartingError(f"{adm.drug} comes from multi-dose containers: what is left is kept, not wasted (no JW/JZ).")
    if adm.dose_value is None or not adm.dose_unit:
        raise ChartingError(f"Chart the dose of {adm.drug} first: the waste is what is left of the vials after the dose.")
    dose = convert(adm.dose_value, adm.dose_unit, wasted_unit)
    if dose is None:
        raise ChartingError(f"Give the waste in a unit the dose ({adm.dose_unit}) converts to.", field="wasted_unit")
    vials = list(VialUse.objects.select_for_update().filter(administration=adm))
    opened = opened_amount(vials, wasted_unit)
    if opened is None:
        raise ChartingError("The sizes of the vials are not all charted, so the waste cannot be checked: chart each vial's size.")
    held = " + ".join(f"{v.count} × {_fmt(v.size_value)} {v.size_unit}" for v in vials)
    if opened < dose:
        raise ChartingError(f"The vials charted ({held}) hold less than the dose of {_fmt(adm.dose_value)} {adm.dose_unit}: chart every vial opened.")
    if wasted_value > opened - dose:
        raise ChartingError(
            f"{_fmt(wasted_value)} {wasted_unit} wasted is more than was left: {held} opened − {_fmt(adm.dose_value)} {adm.dose_unit} given = {_fmt(opened - dose)} {wasted_unit}.",
            field="wasted_value",
        )
    if adm.waste_confirmed_at is not None and adm.wasted_value == wasted_value and adm.wasted_unit == wasted_unit:
        adm.notice = f"The waste of {adm.drug} was already confirmed."
        return adm
    previous = {"previous_value": adm.wasted_value, "previous_unit": adm.wasted_unit or None}
    adm.wasted_value, adm.wasted_unit = wasted_value, wasted_unit
    adm.waste_confirmed_by, adm.waste_confirmed_at = actor, timezone.now()
    adm.save(update_fields=["wasted_value", "wasted_unit", "waste_confirmed_by", "waste_confirmed_at"])
    _refresh(adm.encounter)
    _audit("charting.administration.waste_confirmed", adm, adm.encounter, actor, wasted_value=wasted_value, wasted_unit=wasted_unit, **previous)
    return adm


ENTERED_IN_ERROR_DEFAULT_REASON = "Charted by mistake"


@transaction.atomic
def remove_vials(adm: Administration, *, vial_id: int | None, actor: Any, reason: str = ENTERED_IN_ERROR_DEFAULT_REASON) -> Administration:
    """Strike the VialUse row `vial_id` of `adm` as entered in error (wrong NDC,
    lot or size), on a draft, with `reason` (REC-4: clinical rows are never
    deleted). The struck row stays in the table, out of `VialUse.objects`
    (so out of the chart, the checks and the coding) and in its history; the
    audit row repeats what it said. A confirmed waste is forgotten (it was
    confirmed for other vials); without rows left the drug has no container
    kind. A row not charted any more (second tap) is a no-op. Returns the
    administration, `adm.notice` saying what changed.
    """
    adm = _locked_administration(adm)
    reason = (reason or "").strip()[:200] or ENTERED_IN_ERROR_DEFAULT_REASON
    row = VialUse.objects.select_for_update().filter(pk=vial_id, administration=adm).first() if vial_id is not None else None
    if row is None:
        adm.notice = "These vials were already struck as entered in error."
        return adm
    row.entered_in_error_at, row.entered_in_error_by, row.entered_in_error_reason = timezone.now(), actor, reason
    row.save(update_fields=["entered_in_error_at", "entered_in_error_by", "entered_in_error_reason"])
    cleared = _clear_waste(adm)
    if not VialUse.objects.filter(administration=adm).exists():
        adm.container_type = ""
    adm.save(update_fields=["container_type", "wasted_value", "wasted_unit", "waste_confirmed_by", "waste_confirmed_at"])
    adm.notice = "Vials struck as entered in error (kept in the record)." + (" Confirm the waste again." if cleared and adm.container_type else "")
    _refresh(adm.encounter)
    _audit(
        "charting.administration.vials_entered_in_error",
        adm,
        adm.encounter,
        actor,
        vial_use_id=vial_id,
        reason=reason,
        ndc=row.ndc,
        lot=row.lot,
        size_value=row.size_value,
        size_unit=row.size_unit,
        count=row.count,
        waste_cleared=cleared,
    )
    return adm


# --- fixing a draft: what the flags point at (issue #5) ---------------------------
#
# On a DRAFT encounter the nurse changes what was charted directly, through
# these functions; on a signed one `amend_administration` is the only path
# (they raise SignedEncounterError, which the views answer with 409 "amend
# instead"). Each one refreshes the encounter's flags in the same transaction
# (`refresh_flags`), so a fixed gap's flag resolves at once, not at the next
# sweep. So do the other writes that can close a gap: correct_time,
# record_vials, remove_vials, confirm_waste, sign_encounter and
# amend_administration (start/stop/pause resolve their own kinds directly:
# they are the taps the bench times). Replays ("already charted") do not.
# The refresh comes BEFORE the audit row: the flag rows, then the audit
# chain's head, the order the sweep takes them in (a service called outside
# a request writes its audit row at once; the other order deadlocked).


def _refresh(encounter: Encounter) -> None:
    refresh_flags(encounter.pk, now=timezone.now())


def _check_dose(dose_value: Decimal | None, dose_unit: str) -> None:
    if dose_unit and dose_unit not in DoseUnit.values:
        raise ChartingError("Pick the unit of the dose from the list.", field="dose_unit")
    if dose_value is None:
        return
    if not dose_value.is_finite() or not (MIN_DOSE <= dose_value <= MAX_DOSE) or dose_value != dose_value.quantize(MIN_DOSE):
        # numeric(12, 3): a smaller value would round to 0 (the positive-dose
        # constraint), a larger one overflow it.
        raise ChartingError(f"The dose must be more than 0: between {MIN_DOSE} and {MAX_DOSE}, with at most 3 decimals.", field="dose_value")
    if not dose_unit:
        raise ChartingError("Give the unit of the dose.", field="dose_unit")


@transaction.atomic
def edit_administration(
    adm: Administration,
    *,
    dose_value: Decimal | None,
    dose_unit: str,
    purpose: str,
    route: str,
    access_site: AccessSite | None,
    concurrent_with: Administration | None,
    bag: str,
    actor: Any,
) -> Administration:
    """Change what was charted about a drug on a DRAFT encounter: dose and
    unit, purpose (the indication of a hydration), route, access site, the
    drug it runs concurrently with (own bag, same site) or the bag it shares.

    Validation (ChartingError on the field): dose > 0 with a unit, a route
    that needs a site has one of this encounter, `concurrent_with` another
    charted administration of this encounter on the same site. A changed
    dose or unit forgets a confirmed waste (it was worked out from the old
    dose). No change is a no-op (`adm.notice`). Refused on a signed encounter
    (SignedEncounterError) and for a drug struck as entered in error. Writes
    one audit row with the old and new values; refreshes the flags.
    """
    adm = _locked_administration(adm)
    encounter = adm.encounter
    if adm.entered_in_error_at is not None:
        raise ChartingError(f"{adm.drug} was struck as entered in error: chart it again instead.")
    bag = (bag or "").strip()
    if route not in Route.values:
        raise ChartingError("Pick a route from the list.", field="route")
    if purpose not in Purpose.values:
        raise ChartingError("Pick a purpose from the list.", field="purpose")
    _check_dose(dose_value, dose_unit or "")
    if access_site is not None and access_site.encounter_id != encounter.pk:
        raise ChartingError("That access site belongs to another encounter.", field="access_site")
    if route in ROUTES_NEEDING_SITE and access_site is None:
        raise ChartingError(f"{Route(route).label} needs an access site: pick the site it ran through.", field="access_site")
    if concurrent_with is not None:
        other = Administration.objects.charted().filter(pk=concurrent_with.pk, encounter=encounter).first()
        if other is None or other.pk == adm.pk:
            raise ChartingError("Pick another drug of this encounter.", field="concurrent_with")
        if access_site is None or other.access_site_id != access_site.pk:
            raise ChartingError("The concurrent drug must run through the same access site.", field="concurrent_with")
    if len(bag) > Administration._meta.get_field("bag").max_length:
        raise ChartingError("The bag id is too long (20 characters at most).", field="bag")
    if dose_value is not None and dose_unit and adm.container_type:
        vials = list(VialUse.objects.filter(administration=adm))
        if any(v.size_value is not None and convert(v.size_value, v.size_unit, dose_unit) is None for v in vials):
            raise ChartingError("The vials charted are in a unit this dose unit does not convert to: strike them first, or keep the unit.", field="dose_unit")

    new = {
        "dose_value": dose_value,
        "dose_unit": dose_unit or "",
        "purpose": purpose,
        "route": route,
        "access_site_id": access_site.pk if access_site is not None else None,
        "concurrent_with_id": concurrent_with.pk if concurrent_with is not None else None,
        "bag": bag,
    }
    changed = {name: (getattr(adm, name), value) for name, value in new.items() if getattr(adm, name) != value}
    if not changed:
        adm.notice = "Nothing changed."
        return adm
    for name, (_, value) in changed.items():
        setattr(adm, name, value)
    fields = [name.removesuffix("_id") for name in changed]
    if "dose_value" in changed or "dose_unit" in changed:
        code_before = (adm.hcpcs_override, adm.hcpcs_unit_value)
        recoded = _dose_code(adm)
        fields += recoded
        if recoded:  # the dose moved to another "up to" code: audited with the rest (R46)
            changed["hcpcs_override"] = (code_before[0], adm.hcpcs_override)
            changed["hcpcs_unit_value"] = (code_before[1], adm.hcpcs_unit_value)
    cleared = ("dose_value" in changed or "dose_unit" in changed) and _clear_waste(adm)
    if cleared:
        fields += ["wasted_value", "wasted_unit", "waste_confirmed_by", "waste_confirmed_at"]
    adm.save(update_fields=fields)
    _refresh(encounter)
    _audit(
        "charting.administration.edited",
        adm,
        encounter,
        actor,
        changed={name.removesuffix("_id"): {"old": _detail_value(old), "new": _detail_value(value)} for name, (old, value) in changed.items()},
        waste_cleared=cleared,
    )
    adm.notice = "Saved." + (" The dose changed: confirm the waste again." if cleared else "")
    return adm


def _detail_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return str(value)


def _apply_edit(record, encounter: Encounter, new: dict[str, Any], action: str, actor: Any, **detail: Any):
    """Set `new` (field -> value) on the locked `record` of a draft encounter:
    nothing when nothing changes ("Nothing changed."), else save those fields,
    audit old and new, refresh the encounter's flags ("Saved.")."""
    old = {name: getattr(record, name) for name in new}
    if old == new:
        record.notice = "Nothing changed."
        return record
    for name, value in new.items():
        setattr(record, name, value)
    record.save(update_fields=list(new))
    _refresh(encounter)
    _audit(action, record, encounter, actor, **detail, old=old, new=new)
    record.notice = "Saved."
    return record


@transaction.atomic
def edit_access_site(site: AccessSite, *, separate_site_medically_required: bool, reason: str, actor: Any) -> AccessSite:
    """Say whether a site was a medically required separate site and why
    (R10), on a DRAFT encounter. Ticking it needs a reason. No change is a
    no-op (`site.notice`). Refused on a signed encounter
    (SignedEncounterError). Audited; refreshes the flags."""
    encounter = _locked_encounter(site.encounter_id)
    site = AccessSite.objects.select_for_update(no_key=True).get(pk=site.pk)
    site.notice = ""
    reason = (reason or "").strip()
    if separate_site_medically_required and not reason:
        raise ChartingError("Say why a separate site was medically required.", field="reason")
    new = {"separate_site_medically_required": separate_site_medically_required, "reason": reason}
    return _apply_edit(site, encounter, new, "charting.access_site.edited", actor, label=site.label)


@transaction.atomic
def document_em_service(service: OtherService, *, significant_separately_identifiable: bool, note: str, actor: Any) -> OtherService:
    """Document the E/M visit's significant, separately identifiable work
    (R40: beyond the routine pre-administration assessment), on a DRAFT
    encounter: the tick and the note (kept in `detail`). The tick needs a
    note. Refused for another kind of service and on a signed encounter
    (SignedEncounterError). Audited; refreshes the flags."""
    encounter = _locked_encounter(service.encounter_id)
    service = OtherService.objects.select_for_update().get(pk=service.pk)
    service.notice = ""
    if service.kind != OtherService.Kind.EM_VISIT:
        raise ChartingError("Only an E/M visit takes this note.")
    note = (note or "").strip()
    if significant_separately_identifiable and not note:
        raise ChartingError("Describe the significant, separately identifiable work.", field="note")
    new = {"significant_separately_identifiable": significant_separately_identifiable, "detail": note}
    return _apply_edit(service, encounter, new, "charting.other_service.em_documented", actor, level=service.level)


@transaction.atomic
def enter_administration_in_error(
    adm: Administration, *, reason: str, actor: Any, amendment_reason: AmendmentReason | str | None = None
) -> Administration:
    """Strike a drug charted by mistake as entered in error (REC-4): never
    deleted; it keeps every value, gets the reason, the author and the server
    time, stays on the chart crossed out, and leaves the checks (its flags
    resolve) and the coding (`coding.documentation.encounter_doc`).

    On a draft the reason is enough. On a SIGNED encounter it is an
    amendment: `amendment_reason` from the maintained list is required, an
    Amendment row (field "entered_in_error") keeps it, the frozen-row trigger
    lets exactly this transaction through, a final coder review goes back to
    the queue and the encounter is re-coded after commit. A second strike is
    a no-op (`adm.notice`). Raises ChartingError(field="reason" /
    "amendment_reason").
    """
    encounter = Encounter.objects.select_for_update(of=("self",), no_key=True).select_related("clinic").get(pk=adm.encounter_id)
    adm = Administration.objects.select_for_update(of=("self",), no_key=True).select_related("drug").get(pk=adm.pk)
    adm.encounter = encounter
    adm.notice = ""
    if adm.entered_in_error_at is not None:
        adm.notice = f"{adm.drug} was already struck as entered in error at {local_hhmm(adm.entered_in_error_at, encounter.clinic)}."
        return adm
    reason = (reason or "").strip()
    if not reason:
        raise ChartingError("Say why this drug was entered in error.", field="reason")
    if len(reason) > Administration._meta.get_field("entered_in_error_reason").max_length:
        raise ChartingError("Keep the reason under 200 characters.", field="reason")
    amendment = None
    if encounter.is_signed:
        if isinstance(amendment_reason, str):
            amendment_reason = AmendmentReason.objects.filter(code=amendment_reason, is_active=True).first() if amendment_reason else None
        if amendment_reason is None:
            raise ChartingError("The encounter is signed: pick the amendment's reason.", field="amendment_reason")
        amendment = Amendment.objects.create(
            encounter=encounter,
            administration=adm,
            field=AmendableField.ENTERED_IN_ERROR,
            old_value=None,
            new_value={"entered_in_error": True, "reason": reason},
            reason=amendment_reason,
            reason_text=reason,
            author=actor,
        )
    adm.entered_in_error_at, adm.entered_in_error_by, adm.entered_in_error_reason = timezone.now(), actor, reason
    with amendment_in_progress(amendment.pk) if amendment is not None else contextlib.nullcontext():
        adm.save(update_fields=["entered_in_error_at", "entered_in_error_by", "entered_in_error_reason"])
    _refresh(encounter)
    _audit(
        "charting.administration.entered_in_error",
        adm,
        encounter,
        actor,
        reason=reason,
        drug=adm.drug.name,
        label=adm.label,
        state=adm.state,
        amendment_id=amendment.pk if amendment is not None else None,
    )
    if amendment is not None:
        from coding.services import documentation_amended  # coding imports charting, not the reverse at load time

        documentation_amended(encounter, amendment=amendment)
        encounter_id = str(encounter.pk)
        transaction.on_commit(lambda: _enqueue_suggestion(encounter_id))
    adm.notice = f"{adm.drug} struck as entered in error (kept in the record)."
    return adm


# --- signing ----------------------------------------------------------------------


def _enqueue_suggestion(encounter_id: str) -> None:
    # Imported here: coding.tasks belongs to the coding app and imports charting.
    from coding.tasks import suggest_for_encounter_task

    suggest_for_encounter_task.delay(encounter_id)


class NeedsConfirmation(ChartingError):
    """Signing with open blocking items: the nurse is asked once more.

    `issues` are the blocking items found under the lock; `digest` is what the
    confirming form posts back (`checks.digest`), so a confirmation covers
    exactly the items the nurse saw and a new gap asks again."""

    def __init__(self, issues: list[checks.Issue]):
        n = len(issues)
        items = f"{n} open item{'s' if n != 1 else ''}"
        super().__init__(f"{items} would stop or change a billed line (see Ready to bill): fix them, or confirm to sign anyway.", field="confirmed")
        self.issues = issues
        self.digest = checks.digest(issues)


@transaction.atomic
def sign_encounter(encounter: Encounter, *, actor: Any, confirmed: str = "") -> Encounter:
    """Sign the encounter and, after commit, ask the coding engine for suggestions.

    Refused while any drug is running or paused (the message names them).
    With open blocking items (charting/checks.py) it raises NeedsConfirmation
    unless `confirmed` is the digest of exactly those items; the audit row
    lists the items signed over. The checks run as at signing
    (`signing=True`): a drug added but never started, or nothing charted at
    all, is asked about however fresh. Signing resolves the "not signed" flag.
    Signing a signed encounter again is a no-op with `encounter.notice`.
    """
    locked = Encounter.objects.select_for_update(of=("self",), no_key=True).select_related("clinic").get(pk=encounter.pk)
    locked.notice = ""
    if locked.is_signed:
        locked.notice = f"This encounter was already signed at {local_hhmm(locked.signed_at, locked.clinic)}."
        return locked
    running = list(Administration.objects.running().filter(encounter=locked).select_related("drug").order_by("started_at"))
    if running:
        names = ", ".join(adm.drug.name for adm in running)
        raise ChartingError(f"Stop every drug before signing: still running or paused: {names}.")
    now = timezone.now()
    # Read under the encounter lock: every charting write takes it first, so
    # these are the items the signature covers.
    blocking = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=locked.pk), now=now, signing=True) if i.blocking]
    if blocking and confirmed != checks.digest(blocking):
        raise NeedsConfirmation(blocking)
    locked.status = Encounter.Status.SIGNED
    locked.signed_by = actor
    locked.signed_at = now
    locked.save(update_fields=["status", "signed_by", "signed_at"])
    detail = {"signed_at": locked.signed_at}
    if blocking:
        detail |= {"confirmed_open_items": [{"kind": i.kind, "message": i.message} for i in blocking]}
    refresh_flags(locked.pk, now=now)  # "not signed" resolves; so does whatever was fixed since the last sweep
    _audit("charting.encounter.signed", locked, locked, actor, **detail)
    encounter_id = str(locked.pk)
    transaction.on_commit(lambda: _enqueue_suggestion(encounter_id))
    return locked


# --- amendments of signed documentation (REC-2) ------------------------------------


def _parse_amended_value(adm: Administration, field: str, raw: Any) -> Any:
    """The new value of `field` from what the nurse typed (or a Python value):
    dose a positive decimal, units/purpose/route one of their choices, access
    site a label of this encounter's sites ("" for none), times local to the
    clinic ("YYYY-MM-DDTHH:MM") or aware datetimes."""
    clinic = adm.encounter.clinic
    text = raw.strip() if isinstance(raw, str) else raw
    if field == AmendableField.DOSE_VALUE:
        try:
            value = Decimal(str(text))
        except (ArithmeticError, ValueError):
            raise ChartingError("The dose is a number, e.g. 500 or 0.5.", field="new_value") from None
        if not value.is_finite() or not (MIN_DOSE <= value <= MAX_DOSE):
            raise ChartingError(f"The dose must be between {MIN_DOSE} and {MAX_DOSE}.", field="new_value")
        return value.quantize(Decimal("0.001"))
    choices = {AmendableField.DOSE_UNIT: DoseUnit, AmendableField.PURPOSE: Purpose, AmendableField.ROUTE: Route}
    if field in choices:
        if text not in choices[field].values:
            names = ", ".join(choices[field].values)
            raise ChartingError(f"Pick one of: {names}.", field="new_value")
        return text
    if field == AmendableField.ACCESS_SITE:
        if not text:
            return None
        site = AccessSite.objects.filter(encounter=adm.encounter, label__iexact=str(text)).first()
        if site is None:
            raise ChartingError(f"This encounter has no access site {text!r}: give the site's label (A, B, ...).", field="new_value")
        return site
    if field in (AmendableField.STARTED_AT, AmendableField.STOPPED_AT):
        if isinstance(text, str):
            try:
                value = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ChartingError("Give the time as YYYY-MM-DD HH:MM (the clinic's time).", field="new_value") from None
        else:
            value = text
        if not isinstance(value, dt.datetime):
            raise ChartingError("Give the time as YYYY-MM-DD HH:MM (the clinic's time).", field="new_value")
        if timezone.is_naive(value):
            problem = wall_clock_problem(value, clinic.tz)
            if problem:
                raise ChartingError(problem, field="new_value")
            value = timezone.make_aware(value, clinic.tz)
        check_charted_time(value, adm.encounter, field="new_value")
        return value
    raise ChartingError("This field cannot be amended.", field="field")


def _amendment_json(value: Any, clinic: Clinic) -> Any:
    if isinstance(value, AccessSite):
        return {"id": value.pk, "label": value.label}
    if isinstance(value, dt.datetime):
        # With the clinic's offset: the instant, and the wall clock the nurse saw.
        return value.astimezone(clinic.tz).isoformat()
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"  # 100.000 -> "100", 0.500 -> "0.5"
    return value


@transaction.atomic
def amend_administration(
    adm: Administration, *, field: str, new_value: Any, reason: AmendmentReason | str | None, reason_text: str = "", actor: Any, query: Any = None
) -> Amendment:
    """Amend one clinical field of an administration on a SIGNED encounter
    (dose, dose unit, purpose, route, access site, start or stop time): the
    only code path that changes them once signed (REC-1, REC-2).

    The original value stays in the Amendment row (with the new one, the
    author, the server time, the reason from the maintained list and the
    optional free text, and the coder's DocumentationQuery it answers, if
    any). Inside the transaction, before the UPDATE, the amendment's id is set
    as the transaction-local `chairside.amendment` setting, which the database
    trigger on signed administrations requires. A final coder review goes back
    to the queue ("returned after amendment"), and after commit the encounter
    is re-coded (suggest_for_encounter_task).

    Raises ChartingError(field=...) for a draft encounter, a missing reason
    ("A reason is required."), a value that does not parse or breaks the
    timeline, or no change.
    """
    encounter = Encounter.objects.select_for_update(of=("self",), no_key=True).select_related("clinic").get(pk=adm.encounter_id)
    if not encounter.is_signed:
        raise ChartingError("This encounter is not signed yet: change the chart directly, no amendment needed.")
    locked = Administration.objects.select_for_update(of=("self",), no_key=True).select_related("drug", "access_site").get(pk=adm.pk)
    locked.encounter = encounter
    if field not in AmendableField.values or field == AmendableField.ENTERED_IN_ERROR:
        # A drug is struck whole by enter_administration_in_error, not here.
        raise ChartingError("This field cannot be amended.", field="field")
    reason_text = (reason_text or "").strip()
    if isinstance(reason, str):
        reason = AmendmentReason.objects.filter(code=reason, is_active=True).first() if reason else None
    if reason is None:
        raise ChartingError("A reason is required.", field="reason")
    if reason.code == "other" and not reason_text:
        raise ChartingError("Say why in the note: the reason is “Other”.", field="reason_text")
    value = _parse_amended_value(locked, field, new_value)
    old = getattr(locked, field)
    if value == old:
        raise ChartingError(f"The {AmendableField(field).label} is already {Amendment._display(_amendment_json(old, encounter.clinic))}: nothing to amend.", field="new_value")
    if field == AmendableField.ROUTE and value in ROUTES_NEEDING_SITE and locked.access_site_id is None:
        raise ChartingError("This route needs an access site: amend the access site first.", field="new_value")
    if field == AmendableField.ACCESS_SITE and value is None and locked.route in ROUTES_NEEDING_SITE:
        raise ChartingError(f"{locked.get_route_display()} needs an access site.", field="new_value")
    if field in (AmendableField.STARTED_AT, AmendableField.STOPPED_AT):
        started = value if field == AmendableField.STARTED_AT else locked.started_at
        stopped = value if field == AmendableField.STOPPED_AT else locked.stopped_at
        pauses = [(p.paused_at, p.resumed_at) for p in Pause.objects.filter(administration=locked)]
        _check_times(locked, started, stopped, pauses, "new_value")

    amendment = Amendment.objects.create(
        encounter=encounter,
        administration=locked,
        field=field,
        old_value=_amendment_json(old, encounter.clinic),
        new_value=_amendment_json(value, encounter.clinic),
        reason=reason,
        reason_text=reason_text,
        author=actor,
        query=query,
    )
    setattr(locked, field, value)
    # Transaction-local on PostgreSQL: the trigger on signed administrations
    # lets exactly this transaction's UPDATE through.
    fields = ["access_site" if field == AmendableField.ACCESS_SITE else field]
    recoded = {}
    if field in (AmendableField.DOSE_VALUE, AmendableField.DOSE_UNIT):
        before = {"hcpcs": locked.hcpcs_override, "hcpcs_unit_value": locked.hcpcs_unit_value}
        if code_fields := _dose_code(locked):  # an amended dose may need the other "up to" code (R46)
            fields += code_fields
            recoded = {"recoded": {"old": before, "new": {"hcpcs": locked.hcpcs_override, "hcpcs_unit_value": locked.hcpcs_unit_value}}}
    with amendment_in_progress(amendment.pk):
        locked.save(update_fields=fields)
    _refresh(encounter)  # an amended stop time or site closes its flag now, not at the next sweep
    _audit(
        "charting.administration.amended",
        locked,
        encounter,
        actor,
        amendment_id=amendment.pk,
        field=field,
        old_value=amendment.old_value,
        new_value=amendment.new_value,
        reason=reason.code,
        reason_text=reason_text,
        query_id=query.pk if query is not None else None,
        **recoded,
    )
    from coding.services import documentation_amended  # coding imports charting, not the reverse at load time

    documentation_amended(encounter, amendment=amendment)
    encounter_id = str(encounter.pk)
    transaction.on_commit(lambda: _enqueue_suggestion(encounter_id))
    return amendment


# --- the flag sweep --------------------------------------------------------------


# Key of the PostgreSQL advisory lock every sweep holds for its transaction
# ("CHFS"): two sweeps never interleave, the second one sees the first's flags.
SWEEP_LOCK_KEY = 0x43484653

def sweep_period(now: dt.datetime) -> dt.datetime:
    """The start of the CHAIRSIDE_SWEEP_SECONDS period `now` falls in (UTC, from the epoch)."""
    seconds = settings.CHAIRSIDE_SWEEP_SECONDS
    return dt.datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=dt.UTC)


def _lock_sweeps() -> None:
    """Wait for any other sweep to commit, then hold the lock until ours does
    (with planner settings for reading every row, see below).

    SQLite (the demo) has no advisory locks; it serialises writers itself."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SWEEP_LOCK_KEY])
            # For this transaction only: the correlated subqueries that name a
            # drug in the messages make the queries' estimated cost high enough
            # to be JIT-compiled, about a second each for milliseconds of work.
            cursor.execute("SET LOCAL jit = off")


def _flag(issue: checks.Issue, now: dt.datetime) -> DocumentationFlag:
    return DocumentationFlag(
        encounter_id=issue.encounter_id,
        administration_id=issue.administration_id,
        access_site_id=issue.access_site_id,
        kind=issue.kind,
        message=issue.message,
        field=issue.field,
        created_at=now,
    )


def _open_flags(issues: list[checks.Issue], now: dt.datetime) -> None:
    """INSERT one open flag per issue, ON CONFLICT DO NOTHING (the partial
    unique indexes: one open flag per record and kind whatever races).

    On PostgreSQL one statement over arrays (unnest), which costs a tenth of
    Django's multi-row INSERT for thousands of flags; elsewhere (the SQLite
    demo) bulk_create."""
    if not issues:
        return
    if connection.vendor != "postgresql":
        DocumentationFlag.objects.bulk_create([_flag(i, now) for i in issues], ignore_conflicts=True)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DocumentationFlag._meta.db_table} (encounter_id, administration_id, access_site_id, kind, message, field, created_at)"
            " SELECT e, a, s, k, m, f, %s FROM unnest(%s::uuid[], %s::uuid[], %s::bigint[], %s::text[], %s::text[], %s::text[]) AS i(e, a, s, k, m, f)"
            " ON CONFLICT DO NOTHING",
            [
                now,
                [i.encounter_id for i in issues],
                [i.administration_id for i in issues],
                [i.access_site_id for i in issues],
                [i.kind for i in issues],
                [i.message for i in issues],
                [i.field for i in issues],
            ],
        )


def refresh_flags(encounter_id, *, now: dt.datetime, limits: checks.Limits | None = None) -> dict[str, int]:
    """Bring ONE encounter's DocumentationFlag rows in line with its checks,
    computed in Python (`checks.check_encounter`, the chair-side path; the
    sweep's SQL agrees with it: tests/charting/test_checks.py): open a flag per
    new gap, resolve (resolved_at=`now`) the flags whose gap is gone. For a
    single encounter after a change, between two sweeps (Celery:
    `refresh_flags_task`).

    Raises Encounter.DoesNotExist for an unknown id. Returns {"opened",
    "resolved", "open"} for that encounter.
    """
    with transaction.atomic():
        Encounter.objects.select_for_update(no_key=True).filter(pk=encounter_id).values_list("pk", flat=True).get()
        encounter = Encounter.objects.for_chart().get(pk=encounter_id)
        issues = {i.record_key: i for i in checks.check_encounter(encounter, now=now, limits=limits)}
        open_flags = list(DocumentationFlag.objects.open().filter(encounter_id=encounter_id))
        have = {(f.kind, f.administration_id or f.access_site_id or f.encounter_id) for f in open_flags}
        gone = [f.pk for f in open_flags if (f.kind, f.administration_id or f.access_site_id or f.encounter_id) not in issues]
        resolved = DocumentationFlag.objects.filter(pk__in=gone).update(resolved_at=now) if gone else 0
        new = [i for key, i in issues.items() if key not in have]
        _open_flags(new, now)
    return {"opened": len(new), "resolved": resolved, "open": len(issues)}


def sweep_flags(*, now: dt.datetime, period_start: dt.datetime | None = None, limits: checks.Limits | None = None) -> dict[str, int]:
    """Bring DocumentationFlag in line with every check of charting/checks.py.

    Set-based, in four statements whatever the number of records:

    1. every gap of every check, in ONE statement (`checks.gaps_sql`: the
       UNION ALL of the checks' querysets), into a temporary table;
    2. one UPDATE resolves (resolved_at=`now`) the open flags with no gap left;
    3. one SELECT lists the gaps with no open flag yet;
    4. their records are read back by primary key (in chunks, with what the
       nurse's-words messages name) and one INSERT ... ON CONFLICT DO NOTHING
       per chunk opens their flags (the partial unique indexes keep one open
       flag per record and kind whatever races). Resolved flags stay as history.

    All in ONE transaction under an advisory lock, with its SweepRun row: a
    worker killed halfway leaves nothing behind, a second sweep waits for the
    first. With `period_start` (the periodic task) the sweep is skipped when
    that period was swept already, so two beat processes or a redelivered
    task sweep once per period. Running it again with the same data and
    `now` changes nothing. Measured against step 1 alone: `make bench`
    (benchmarks/sweep_bench.py).

    Returns {"opened", "resolved", "open", "skipped"} (counts; skipped 0/1).
    """
    limits = limits or checks.Limits.from_settings()
    sweep = checks.Sweep(now=now, limits=limits)
    flags = DocumentationFlag._meta.db_table
    with transaction.atomic():
        _lock_sweeps()
        if period_start is not None and SweepRun.objects.filter(period_start=period_start).exists():
            return {"opened": 0, "resolved": 0, "open": DocumentationFlag.objects.open().count(), "skipped": 1}
        open_before = DocumentationFlag.objects.open().count()
        gaps_select, params = checks.gaps_sql(sweep)
        # A flag and a gap are the same item when kind and encounter agree and,
        # for a check on an administration or an access site, that record too
        # (the gap's other id is NULL).
        same = (
            "g.kind = f.kind AND g.encounter_id = f.encounter_id"
            " AND (g.administration_id IS NULL OR g.administration_id = f.administration_id)"
            " AND (g.access_site_id IS NULL OR g.access_site_id = f.access_site_id)"
        )
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS sweep_gaps")
            columns = ", ".join(f"{f.column} {f.db_type(connection)}" for f in map(DocumentationFlag._meta.get_field, ("kind", "encounter", "administration", "access_site")))
            cursor.execute(f"CREATE TEMPORARY TABLE sweep_gaps ({columns})")
            if connection.vendor == "sqlite":
                # The demo's SQLite overflows its parser stack on the whole
                # UNION ALL: the same SELECTs, one statement each.
                for part in checks.gap_querysets(sweep):
                    part_sql, part_params = part.query.sql_with_params()
                    cursor.execute(f"INSERT INTO sweep_gaps {part_sql}", part_params)
            else:
                cursor.execute(f"INSERT INTO sweep_gaps {gaps_select}", params)
            stale = f"resolved_at IS NULL AND NOT EXISTS (SELECT 1 FROM sweep_gaps g WHERE {same.replace('f.', f'{flags}.')})"
            if connection.vendor == "postgresql":
                # A flag a chair-side write is resolving right now (its
                # refresh_flags holds the row) is that write's to resolve:
                # skipped, not waited for.
                stale = f"id IN (SELECT id FROM {flags} WHERE {stale} FOR UPDATE SKIP LOCKED)"
            cursor.execute(f"UPDATE {flags} SET resolved_at = %s WHERE {stale}", [now])
            resolved = cursor.rowcount
            cursor.execute(
                "SELECT g.kind, g.encounter_id, g.administration_id, g.access_site_id FROM sweep_gaps g"
                f" WHERE NOT EXISTS (SELECT 1 FROM {flags} f WHERE f.resolved_at IS NULL AND {same})"
            )
            fresh: dict[str, list] = {}
            for kind, encounter_id, administration_id, access_site_id in cursor.fetchall():
                record_id = {"administration": administration_id, "access_site": access_site_id, "encounter": encounter_id}[checks.CHECKS_BY_KIND[kind].on]
                fresh.setdefault(kind, []).append(record_id)
            cursor.execute("DROP TABLE sweep_gaps")
        for kind, record_ids in fresh.items():
            check = checks.CHECKS_BY_KIND[kind]
            for start in range(0, len(record_ids), 2000):
                records = check.records_for_messages(sweep, record_ids[start : start + 2000])
                _open_flags([check.issue(row) for row in records], now)
        still_open = DocumentationFlag.objects.open().count()
        opened = still_open - open_before + resolved
        SweepRun.objects.create(period_start=period_start, started_at=now, finished_at=max(now, timezone.now()), opened=opened, resolved=resolved, still_open=still_open)
        if opened or resolved:
            record("charting.flags.swept", actor=None, detail={"opened": opened, "resolved": resolved, "open": still_open})
    return {"opened": opened, "resolved": resolved, "open": still_open, "skipped": 0}
