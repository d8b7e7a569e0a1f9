"""Hypothesis properties of the engine (STYLE: "The coding engine"), under the
Medicare defaults and under any payer policy:

* one initial per encounter, unless a medically required separate site (R4, R10);
* no add-on without an eligible primary (R44);
* units never fall as minutes rise (R19, R20, R21);
* the order of the input does not matter;
* moving every timestamp by the same absolute amount -- across DST changes
  too (R24) -- does not change the lines.  Line dates are local calendar dates
  (R14, D4), so the documents for that property keep their activity inside one
  local day with hours to spare, and their dates must move by exactly the days
  shifted; a document that crosses midnight is shifted by whole days in a zone
  without DST.
"""

from __future__ import annotations

import collections
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from enginekit import adm, doc
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.engine import AccessSite, Administration, EncounterDoc, OtherService, PayerPolicy, evaluate
from coding.engine import policy as P
from coding.engine.codes import ADDON_PRIMARIES

INITIALS = {"96360", "96365", "96374", "96409", "96413"}
CLASSES = st.sampled_from(["chemo_complex", "therapeutic", "hydration"])
ROUTES = st.sampled_from(["iv_infusion", "iv_infusion", "iv_push", "subcutaneous", "intramuscular"])
PURPOSES = st.sampled_from(["treatment", "hydration_medically_necessary", "adverse_reaction_treatment", "kvo"])
DRUGS = st.sampled_from(["a", "b", "c", "d"])
HCPCS = {"a": "J0001", "b": "J0002"}  # c and d are charted without a code

POLICY = st.builds(
    PayerPolicy,
    name=st.just("any"),
    distinct_modifier=st.sampled_from(P.DISTINCT_MODIFIERS),
    separate_encounter_modifier=st.sampled_from(P.DISTINCT_MODIFIERS),
    secondary_hydration_59=st.sampled_from(P.SECONDARY_HYDRATION_59_CHOICES),
    family_overrides=st.sampled_from([(), (("J0001", "therapeutic"),), (("J0001", "chemo_complex"), ("J0002", "therapeutic"))]),
    report_jz=st.booleans(),
    jz_when_discard_below_unit=st.booleans(),
    same_drug_runs=st.sampled_from(P.SAME_DRUG_RUNS_CHOICES),
    combine_hydration_segments=st.booleans(),
    split_dose_injection=st.sampled_from(P.SPLIT_DOSE_CHOICES),
    injection_repeat_modifier=st.sampled_from(P.DISTINCT_MODIFIERS),
    injections_on_one_line=st.booleans(),
    mixed_bag=st.sampled_from(P.MIXED_BAG_CHOICES),
    port_flush_with_em=st.booleans(),
    hydration_volume_floor_ml=st.sampled_from([None, 500]),
    line_dates=st.sampled_from(P.LINE_DATES_CHOICES),
)
ANY_POLICY = st.one_of(st.just(None), POLICY)


@st.composite
def administrations(draw, n: int | None = None, *, latest: int = 600, longest: int = 300):
    """Up to six administrations starting 0..``latest`` min after 09:00, each
    running up to ``longest`` min (or without a stop), some paused or bagged."""
    count = n if n is not None else draw(st.integers(1, 6))
    items = []
    for i in range(count):
        cls = draw(CLASSES)
        route = draw(ROUTES)
        start = draw(st.integers(0, latest))
        length = draw(st.one_of(st.integers(0, longest), st.none()))
        stop = None if length is None else start + length
        purpose = draw(PURPOSES) if cls == "hydration" else "treatment"
        name = draw(DRUGS)
        a = adm(
            str(i + 1),
            cls,
            route,
            start,
            stop,
            drug=f"drug-{name}",
            site=draw(st.sampled_from(["A", "B"])),
            purpose=purpose,
            encounter=draw(st.sampled_from(["1", "1", "1", "2"])),
            concurrent_with=draw(st.sampled_from([None, None, None, "1"])) if i else None,
            bag=draw(st.sampled_from([None, None, None, "bag-1"])),
        )
        if cls != "hydration":
            a = replace(a, hcpcs=HCPCS.get(name))
        if stop is not None and length and length > 20 and draw(st.booleans()):
            p0 = draw(st.integers(start + 1, stop - 1))
            p1 = draw(st.integers(p0, stop))
            a = replace(a, pauses=((a.start + timedelta(minutes=p0 - start), a.start + timedelta(minutes=p1 - start)),))
        items.append(a)
    return tuple(items)


SITES = st.builds(
    lambda b_required: (
        AccessSite("A", "peripheral_iv"),
        AccessSite("B", "peripheral_iv", separate_site_medically_required=b_required),
    ),
    st.booleans(),
)
OTHERS = st.lists(
    st.sampled_from(
        [
            OtherService("nurse_visit_99211"),
            OtherService("em_visit", level="99213", significant_separately_identifiable=True),
            OtherService("em_visit", level="99214"),
            OtherService("supplies", "tubing"),
            OtherService("port_flush_only"),
        ]
    ),
    max_size=3,
).map(tuple)
SETTING = st.sampled_from(["office", "facility"])


@settings(max_examples=300, deadline=None)
@given(administrations(), SITES, SETTING, ANY_POLICY)
def test_one_initial_per_encounter_unless_required_site(admins, sites, setting, policy):
    result = evaluate(doc(*admins, sites=sites, setting=setting), policy=policy)
    by_admin = {a.id: a for a in admins}
    initials: collections.Counter[str] = collections.Counter()
    for line in result.lines:
        if line.code in INITIALS:
            encounter = by_admin[line.administrations[0]].encounter
            initials[encounter] += line.units
    required = any(s.separate_site_medically_required for s in sites)
    for count in initials.values():
        assert count <= (2 if required else 1), result.lines
    if not required:
        # Without a required second site, a modifier on an initial can only
        # mark a second encounter (R13).
        for line in result.lines:
            if line.code in INITIALS and line.modifiers:
                assert "R13" in line.rules, line


@settings(max_examples=300, deadline=None)
@given(administrations(), SITES, SETTING, OTHERS, ANY_POLICY)
def test_no_addon_without_primary(admins, sites, setting, others, policy):
    result = evaluate(doc(*admins, sites=sites, setting=setting, other=others), policy=policy)
    codes = {l.code for l in result.lines}
    for line in result.lines:
        primaries = ADDON_PRIMARIES.get(line.code)
        if primaries is not None:
            assert primaries & codes, (line.code, codes)
        assert line.units >= 1
        assert line.rules and line.explanation


@settings(max_examples=300, deadline=None)
@given(CLASSES, st.integers(0, 400), st.integers(1, 120), SETTING)
def test_units_never_fall_as_minutes_rise(cls, minutes, more, setting):
    def units(m: int) -> int:
        result = evaluate(doc(adm("1", cls, "iv_infusion", 0, m), setting=setting))
        return sum(l.units for l in result.lines)

    assert units(minutes + more) >= units(minutes)


@settings(max_examples=200, deadline=None)
@given(st.integers(16, 300), st.integers(0, 300), st.integers(1, 120), CLASSES.filter(lambda c: c != "hydration"))
def test_secondary_hydration_units_never_fall(first, hydration, more, cls):
    def units(m: int) -> int:
        d = doc(adm("1", cls, "iv_infusion", 0, first), adm("2", "hydration", "iv_infusion", first + 5, first + 5 + m))
        return sum(l.units for l in evaluate(d).lines if l.code in ("96360", "96361"))

    assert units(hydration + more) >= units(hydration)


@settings(max_examples=200, deadline=None)
@given(
    CLASSES,
    CLASSES.filter(lambda c: c != "hydration"),
    st.integers(0, 300),
    st.integers(1, 120),
    st.integers(0, 60),
    SETTING,
    st.sampled_from(P.SAME_DRUG_RUNS_CHOICES),
)
def test_units_of_a_later_service_never_fall_as_its_minutes_rise(first_cls, cls, minutes, more, paused, setting, runs):
    """A service after the initial (sequential, secondary hydration, a later run
    of the same drug) never loses units when it runs longer, paused or not."""
    policy = PayerPolicy(same_drug_runs=runs)
    same = first_cls == cls

    def units(m: int) -> int:
        first = adm("1", first_cls, "iv_infusion", 0, 100, drug="x" if same else "y")
        later = adm("2", cls, "iv_infusion", 110, 110 + paused + m, drug="x")
        if paused:
            later = replace(later, pauses=((later.start + timedelta(minutes=1), later.start + timedelta(minutes=1 + paused)),))
        result = evaluate(doc(first, later, setting=setting), policy=policy)
        return sum(l.units for l in result.lines if "2" in l.administrations)

    assert units(minutes + more) >= units(minutes)


@settings(max_examples=300, deadline=None)
@given(st.data(), administrations(), SITES, SETTING, OTHERS, ANY_POLICY)
def test_input_order_does_not_matter(data, admins, sites, setting, others, policy):
    first = evaluate(doc(*admins, sites=sites, setting=setting, other=others), policy=policy)
    shuffled_admins = data.draw(st.permutations(admins))
    shuffled_others = data.draw(st.permutations(others))
    shuffled_sites = data.draw(st.permutations(sites))
    second = evaluate(doc(*shuffled_admins, sites=tuple(shuffled_sites), setting=setting, other=tuple(shuffled_others)), policy=policy)
    assert first == second


# --- moving every timestamp -----------------------------------------------------


def _shift_admin(a: Administration, delta: timedelta, zone: ZoneInfo) -> Administration:
    """``a`` moved by ``delta`` of absolute time, re-expressed in the clinic's
    zone (so the wall clock and the UTC offset change across DST)."""

    def move(m: datetime | None) -> datetime | None:
        # Through UTC: Python adds a timedelta to a zoned datetime on its wall clock.
        return None if m is None else (m.astimezone(UTC) + delta).astimezone(zone)

    return replace(
        a,
        start=move(a.start),
        stop=move(a.stop),
        pauses=tuple((move(p), move(q)) for p, q in a.pauses),  # type: ignore[misc]
    )


def _shift(d: EncounterDoc, delta: timedelta, days: int) -> EncounterDoc:
    zone = ZoneInfo(d.timezone)
    return replace(
        d,
        date_of_service=d.date_of_service + timedelta(days=days),
        administrations=tuple(_shift_admin(a, delta, zone) for a in d.administrations),
    )


def _undated(result) -> collections.Counter:
    """Lines without their dates and wall-clock explanations."""
    return collections.Counter((l.code, l.units, l.modifiers, l.administrations, l.minutes, l.rules) for l in result.lines)


def _notes(result) -> collections.Counter:
    return collections.Counter(
        [("nb", n.administrations, n.rules) for n in result.not_billed] + [("w", w.kind, w.administrations, w.rules, w.blocking) for w in result.warnings]
    )


# Activity between 09:00 and 20:00 local; a shift of whole days plus up to two
# hours either way (plus the DST hour) never carries it over midnight.
IN_DAY = administrations(latest=480, longest=180)
NEAR_DST = st.sampled_from([date(2025, 3, 2), date(2025, 3, 9), date(2025, 10, 26), date(2025, 11, 2), date(2025, 6, 10)])


@settings(max_examples=300, deadline=None)
@given(IN_DAY, SITES, SETTING, OTHERS, ANY_POLICY, st.integers(-400, 400), st.integers(-120, 120), NEAR_DST)
def test_moving_every_timestamp_keeps_the_lines(admins, sites, setting, others, policy, days, minutes, day):
    base = doc(*admins, sites=sites, setting=setting, other=others)
    ny = ZoneInfo("America/New_York")
    anchor = datetime(day.year, day.month, day.day, 9, 0, tzinfo=ny).astimezone(UTC) - datetime(2025, 6, 10, 9, 0, tzinfo=ny).astimezone(UTC)
    base = replace(_shift(base, anchor, 0), date_of_service=day)  # the same day's activity on a date near a DST change
    moved = _shift(base, timedelta(days=days, minutes=minutes), days)
    before, after = evaluate(base, policy=policy), evaluate(moved, policy=policy)
    assert _undated(before) == _undated(after)
    assert _notes(before) == _notes(after)
    assert sorted((l.code, l.date_of_service + timedelta(days=days)) for l in before.lines) == sorted((l.code, l.date_of_service) for l in after.lines)


@settings(max_examples=200, deadline=None)
@given(administrations(), SITES, SETTING, ANY_POLICY, st.integers(-400, 400))
def test_whole_days_across_midnight_move_every_date_by_those_days(admins, sites, setting, policy, days):
    """Activity that crosses midnight, in a zone without DST: whole-day shifts
    keep every line and move its date by exactly the days shifted (R14, D4)."""
    utc_admins = tuple(_shift_admin(a, timedelta(0), ZoneInfo("UTC")) for a in admins)
    base = doc(*utc_admins, sites=sites, setting=setting, tz="UTC")
    moved = _shift(base, timedelta(days=days), days)
    before, after = evaluate(base, policy=policy), evaluate(moved, policy=policy)
    assert _undated(before) == _undated(after)
    assert sorted((l.code, l.units, l.date_of_service + timedelta(days=days)) for l in before.lines) == sorted(
        (l.code, l.units, l.date_of_service) for l in after.lines
    )


def test_an_infusion_across_fall_back_keeps_its_minutes_when_moved():
    """R24: 01:10 EDT -> 01:50 EST is 100 min; moved 24 hours later (00:10-01:50
    EST, no DST change inside) it is still 100 min and the same lines."""
    ny = ZoneInfo("America/New_York")
    night = doc(
        adm("1", start=datetime(2025, 11, 2, 1, 10, tzinfo=ny), stop=datetime(2025, 11, 2, 1, 50, fold=1, tzinfo=ny)),
        setting="facility",
        day=date(2025, 11, 2),
    )
    moved = _shift(night, timedelta(days=1), 1)
    assert moved.administrations[0].start.hour == 0 and moved.administrations[0].stop.hour == 1  # wall clock moved by the DST hour
    a, b = evaluate(night), evaluate(moved)
    assert [l.minutes for l in a.lines] == [l.minutes for l in b.lines] == [100, 100]
    assert _undated(a) == _undated(b)
