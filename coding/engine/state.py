"""Working state shared by the rules: ``Work`` (one evaluation), ``Run`` and ``Service``.

Vocabulary:

* a *run* is the timing of one administration, computed once per evaluation
  (timestamps, running intervals, minutes);
* a *service* is one codable IV thing: a drug infusion (runs of the same drug
  summed, R17/D2, or one bag of mixed drugs, R26), one push, or the hydration
  of one encounter (segments summed, D5);
* a *site group* is ``"main"`` for every access site that was not medically
  required, or the id of a medically required separate site (R10, R11); each
  group of each encounter gets one initial (R4).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from . import codes as C
from .policy import PayerPolicy
from .timing import Interval, merge, minutes_of, moment_at, run_intervals, ts, zone
from .types import Administration, EncounterDoc, Line, NotBilled, Warning

IV_ROUTES = ("iv_infusion", "iv_push")
INJECTION_ROUTES = ("subcutaneous", "intramuscular", "intra_arterial")
NOT_THERAPY_PURPOSES = ("kvo", "flush", "drug_vehicle")
BILLABLE_HYDRATION_PURPOSES = ("hydration_medically_necessary", "adverse_reaction_treatment")
NEVER = math.inf  # sort key of an untimed item: after every timed one


class Run:
    """Timing of one administration, on absolute time (R15, R17, R24)."""

    __slots__ = ("start", "stop", "intervals", "minutes", "span")

    def __init__(self, start: float | None, stop: float | None, intervals: tuple[Interval, ...], minutes: int | None, span: int | None) -> None:
        self.start = start
        self.stop = stop
        self.intervals = intervals  # running time: [start, stop] minus pauses
        self.minutes = minutes  # running minutes; None without start or stop (R16)
        self.span = span  # stop - start in whole minutes, pauses included


class Service:
    """One codable IV service (internal to the engine; a plain slotted class
    because thousands are built per second and only the engine sees them)."""

    __slots__ = ("key", "label", "family", "kind", "encounter", "group", "admin_ids", "start", "minutes", "intervals", "rules", "arith", "concurrent", "bag", "repeat", "rank", "_who")

    def __init__(
        self,
        key: str,  # same-drug identity (HCPCS, else normalised name; "bag:..." for a mix)
        label: str,  # drug name(s) for explanations
        family: str,  # chemo_complex | therapeutic | hydration
        kind: str,  # infusion | push
        encounter: str,
        group: str,  # site group, see module docstring
        admin_ids: tuple[str, ...],
        start: float | None,
        minutes: int | None,
        intervals: tuple[Interval, ...],
        rules: tuple[str, ...] = (),
        arith: str = "",  # the minute arithmetic, e.g. "125 min = 130 running − 5 paused"
        concurrent: bool = False,
        bag: str | None = None,  # a mixed bag split by policy (R26): never inferred concurrent
        repeat: bool = False,  # a later run of a drug already infused (D2 alternatives)
    ) -> None:
        self.key, self.label, self.family, self.kind = key, label, family, kind
        self.encounter, self.group, self.admin_ids = encounter, group, admin_ids
        self.start, self.minutes, self.intervals = start, minutes, intervals
        self.rules, self.arith, self.concurrent, self.bag, self.repeat = rules, arith, concurrent, bag, repeat
        self.rank = C.RANK[(family, kind)]  # hierarchy rank (R6), lower is higher
        self._who = ""

    def order(self) -> tuple[int, float, str]:
        """Hierarchy order (R6); ties by start time then administration id."""
        return (self.rank, NEVER if self.start is None else self.start, self.admin_ids[0])

    def who(self) -> str:
        """The label with its administration ids, for explanations."""
        if not self._who:
            self._who = f"{self.label} (adm {', '.join(self.admin_ids)})"
        return self._who


class Work:
    """Mutable working state of one evaluation (never leaves the engine)."""

    __slots__ = (
        "doc",
        "policy",
        "administrations",
        "overridden",
        "runs",
        "handled",
        "services",
        "lines",
        "not_billed",
        "warnings",
        "billed_hydration",
        "bag_fluids",
        "drug_keys",
        "locals",
        "clocks",
        "tz",
        "required_sites",
    )

    def __init__(
        self, doc: EncounterDoc, policy: PayerPolicy, administrations: tuple[Administration, ...], overridden: dict[str, str] | None = None
    ) -> None:
        self.doc = doc
        self.policy = policy
        self.administrations = administrations
        self.overridden: dict[str, str] = overridden or {}  # admin id -> charted family (D9)
        self.runs: dict[str, Run] = {}
        self.handled: set[str] = set()
        self.services: list[Service] = []
        self.lines: list[Line] = []
        self.not_billed: list[NotBilled] = []
        self.warnings: list[Warning] = []
        self.billed_hydration: set[str] = set()
        self.bag_fluids: set[str] = set()
        self.drug_keys: dict[str, str] = {}
        self.locals: dict[float, datetime] = {}  # timestamp -> clinic wall clock
        self.clocks: dict[float, str] = {}  # timestamp -> "14:05"
        self.tz = zone(doc.timezone) or UTC
        self.required_sites = {site.id for site in doc.access_sites if site.separate_site_medically_required}
        self._timing()

    def _timing(self) -> None:
        # Timestamps once per administration: every later comparison, sort and
        # subtraction works on these floats (R24), not on datetimes.
        runs = self.runs
        for a in self.administrations:
            start = a.start.timestamp() if a.start is not None else None
            stop = a.stop.timestamp() if a.stop is not None else None
            if start is None or stop is None:
                runs[a.id] = Run(start, stop, (), None, None)
                continue
            if a.pauses:
                intervals = run_intervals(start, stop, tuple((ts(p), ts(q) if q is not None else None) for p, q in a.pauses))
            else:
                intervals = ((start, stop),) if stop > start else ()
            runs[a.id] = Run(start, stop, intervals, minutes_of(intervals), int((stop - start) // 60) if stop >= start else 0)
        # Input order never matters: administrations in time order, ties by id.
        self.administrations = tuple(sorted(self.administrations, key=lambda a: (NEVER if runs[a.id].start is None else runs[a.id].start, a.id)))
        self.drug_keys = same_drug_keys(self.administrations)

    def drug_key(self, adm: Administration) -> str:
        """Identity of "the same drug" in this document (R17, R28); see
        ``same_drug_keys``."""
        return self.drug_keys.get(adm.id) or drug_key(adm)

    def pending(self, *routes: str) -> list[Administration]:
        handled = self.handled
        return [a for a in self.administrations if a.id not in handled and (not routes or a.route in routes)]

    def line(
        self,
        code: str,
        units: int,
        *,
        admins: tuple[str, ...],
        rules: tuple[str, ...],
        explanation: str,
        minutes: int | None = None,
        modifiers: tuple[str, ...] = (),
        when: date | None = None,
        ndc: str | None = None,
        ndc_qualifier: str | None = None,
        ndc_quantity: Decimal | None = None,
        ndc_unit: str | None = None,
    ) -> None:
        if units < 1:
            return
        if len(modifiers) > 1:
            modifiers = tuple(sorted(set(modifiers)))
        self.lines.append(
            Line(
                code,
                units,
                modifiers,
                admins,
                minutes,
                tuple(dict.fromkeys(rules)),
                explanation,
                when or self.doc.date_of_service,
                ndc,
                ndc_qualifier,
                ndc_quantity,
                ndc_unit,
            )
        )

    def hour_lines(
        self,
        code: str,
        first: int,
        units: int,
        s: Service,
        *,
        rules: tuple[str, ...],
        explanation: str,
        modifiers: tuple[str, ...] = (),
    ) -> None:
        """``units`` units of a timed code for service ``s``; unit i covers the
        hour of running time starting at minute 60 * (first + i).  Dated per
        the policy (D4): all on the service's start date, or each unit on the
        local day its hour began (``line_dates == "service_day"``, R14)."""
        if units < 1:
            return
        if self.policy.line_dates == "start_date" or not s.intervals:
            self.line(code, units, admins=s.admin_ids, rules=rules, minutes=s.minutes, modifiers=modifiers, when=self.date_of(s.start), explanation=explanation)
            return
        per_day: dict[date, int] = {}
        for i in range(first, first + units):
            moment = moment_at(s.intervals, 60 * i)
            day = self.date_of(moment if moment is not None else s.intervals[-1][1])
            per_day[day] = per_day.get(day, 0) + 1
        for day, n in per_day.items():
            note = f" [{n} of {units} unit(s) on {day.isoformat()}, D4 service day]" if len(per_day) > 1 else ""
            self.line(code, n, admins=s.admin_ids, rules=rules + ("D4", "R14"), minutes=s.minutes, modifiers=modifiers, when=day, explanation=explanation + note)

    def skip(self, description: str, admins: tuple[str, ...], rules: tuple[str, ...], reason: str) -> None:
        self.not_billed.append(NotBilled(description, admins, dedupe(rules), reason))

    def warn(self, kind: str, message: str, admins: tuple[str, ...], rules: tuple[str, ...], *, blocking: bool = False) -> None:
        self.warnings.append(Warning(kind, message, admins, dedupe(rules), blocking))

    def local(self, moment: float) -> datetime:
        """``moment`` on the clinic's wall clock (cached: lines and explanations
        ask for the same few instants many times)."""
        local = self.locals.get(moment)
        if local is None:
            local = self.locals[moment] = datetime.fromtimestamp(moment, self.tz)
        return local

    def date_of(self, moment: float | None) -> date:
        """Local date of a service (R14, D4); the document's date when untimed."""
        if moment is None:
            return self.doc.date_of_service
        return self.local(moment).date()

    def clock(self, moment: float | None) -> str:
        """Local wall-clock time ("14:05") for explanations; "?" when untimed."""
        if moment is None:
            return "?"
        text = self.clocks.get(moment)
        if text is None:
            local = self.local(moment)
            text = self.clocks[moment] = f"{_TWO_DIGITS[local.hour]}:{_TWO_DIGITS[local.minute]}"
        return text


_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))


def dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def when_key(moment: float | None) -> float:
    """Sort key for a moment; untimed items sort last."""
    return NEVER if moment is None else moment


def drug_key(adm: Administration) -> str:
    """Identity of "the same drug" (R17, R28) for one administration alone: the
    HCPCS code when known, else its name key (``name_key``)."""
    if adm.hcpcs:
        return adm.hcpcs.strip().upper()
    return name_key(adm)


_PARENS = re.compile(r"\(.*?\)")
_QUALIFIER = re.compile(r",| - ")


def name_key(adm: Administration) -> str:
    """The drug name without parenthetical remarks or trailing qualifiers."""
    name = _PARENS.sub(" ", adm.drug.lower())
    name = _QUALIFIER.split(name, 1)[0]
    return "name:" + " ".join(name.split())


def same_drug_keys(admins: tuple[Administration, ...]) -> dict[str, str]:
    """Drug identity of every administration of one document (R17, R28): the
    HCPCS code when charted.  A run charted without an HCPCS code (a resumed
    bag, a repeat push) is the same drug as the runs of the same name that carry
    one, when exactly one code is charted for that name; otherwise its name key."""
    out = {a.id: a.hcpcs.strip().upper() for a in admins if a.hcpcs}
    uncoded = [a for a in admins if not a.hcpcs]
    if not uncoded:
        return out  # every run carries its code: no names to compare
    codes: dict[str, set[str]] = {}
    for a in admins:
        if a.hcpcs and a.admin_class != "hydration":
            codes.setdefault(name_key(a), set()).add(out[a.id])
    for a in uncoded:
        name = name_key(a)
        known = codes.get(name, ())
        out[a.id] = next(iter(known)) if len(known) == 1 else name
    return out


def is_push(adm: Administration, minutes: int | None) -> bool:
    """R18: a push is an injection with the nurse present throughout, or an
    infusion of 15 minutes or less."""
    if adm.continuously_present:
        return True
    if minutes is None:
        return adm.route == "iv_push"
    return minutes <= 15


def site_group(w: Work, site_id: str | None) -> str:
    """R10/R11: only a medically required separate site forms its own group."""
    return site_id if site_id is not None and site_id in w.required_sites else "main"


FAMILY_WORDS = {"chemo_complex": "chemo/complex", "therapeutic": "therapeutic", "hydration": "hydration"}


def family_word(family: str) -> str:
    return FAMILY_WORDS[family]


def run_arith(w: Work, ids: tuple[str, ...], total: int) -> str:
    """The minute arithmetic of one or more runs summed to ``total`` running
    minutes (R15, R17): "125 min = 130 running − 5 paused", or
    "95 min = 50 (adm 1) + 45 (adm 2)" with any overlap between runs removed."""
    runs = [(i, w.runs[i]) for i in ids if w.runs[i].minutes is not None]
    if not runs:
        return "no start/stop time"
    if len(runs) == 1:
        i, r = runs[0]
        window = f" ({w.clock(r.start)}–{w.clock(r.stop)})"
        paused = (r.span or 0) - (r.minutes or 0)
        if paused:
            return f"{total} min = {r.span} running − {paused} paused{window}"
        return f"{total} min running{window}"
    terms = []
    for i, r in runs:
        paused = (r.span or 0) - (r.minutes or 0)
        term = f"{r.minutes}" if not paused else f"({r.span} − {paused} paused)"
        terms.append(f"{term} (adm {i}, {w.clock(r.start)}–{w.clock(r.stop)})")
    gross = sum(r.minutes or 0 for _, r in runs)
    text = f"{total} min = " + " + ".join(terms)
    if gross != total:
        text += f" − {gross - total} overlapping"
    return text


def union(w: Work, ids: tuple[str, ...]) -> tuple[Interval, ...]:
    """Running time of several administrations, overlaps counted once."""
    if len(ids) == 1:
        return w.runs[ids[0]].intervals
    return merge(i for a in ids for i in w.runs[a].intervals)


def thresholds(first: int, units: int) -> str:
    """"91 min" / "91 and 151 min" / "91, 151 and 211 min": the running minutes
    at which each of ``units`` units was reached, 60 apart from ``first`` (R20, R21)."""
    if units == 1:
        return f"{first} min"
    marks = [str(first + 60 * k) for k in range(units)]
    return f"{', '.join(marks[:-1])} and {marks[-1]} min"
