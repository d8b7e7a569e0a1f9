"""Hypothesis properties of the engine (STYLE: "The coding engine").

* one initial per encounter, unless a medically required separate site (R4, R10);
* no add-on without an eligible primary (R44);
* units never fall as minutes rise (R19, R20, R21);
* the order of the input does not matter.
"""

from __future__ import annotations

import collections

from enginekit import adm, doc
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.engine import AccessSite, OtherService, evaluate
from coding.engine.codes import ADDON_PRIMARIES

INITIALS = {"96360", "96365", "96374", "96409", "96413"}
CLASSES = st.sampled_from(["chemo_complex", "therapeutic", "hydration"])
ROUTES = st.sampled_from(["iv_infusion", "iv_infusion", "iv_push", "subcutaneous", "intramuscular"])
PURPOSES = st.sampled_from(["treatment", "hydration_medically_necessary", "adverse_reaction_treatment", "kvo"])
DRUGS = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def administrations(draw, n: int | None = None):
    count = n if n is not None else draw(st.integers(1, 6))
    items = []
    for i in range(count):
        cls = draw(CLASSES)
        route = draw(ROUTES)
        start = draw(st.integers(0, 600))
        length = draw(st.one_of(st.integers(0, 300), st.none()))
        stop = None if length is None else start + length
        purpose = draw(PURPOSES) if cls == "hydration" else "treatment"
        items.append(
            adm(
                str(i + 1),
                cls,
                route,
                start,
                stop,
                drug=f"drug-{draw(DRUGS)}",
                site=draw(st.sampled_from(["A", "B"])),
                purpose=purpose,
                encounter=draw(st.sampled_from(["1", "1", "1", "2"])),
                concurrent_with=draw(st.sampled_from([None, None, None, "1"])) if i else None,
            )
        )
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
@given(administrations(), SITES, SETTING)
def test_one_initial_per_encounter_unless_required_site(admins, sites, setting):
    result = evaluate(doc(*admins, sites=sites, setting=setting))
    by_admin = {a.id: a for a in admins}
    initials = collections.Counter()
    for line in result.lines:
        if line.code in INITIALS:
            encounter = by_admin[line.administrations[0]].encounter
            initials[encounter] += line.units
    required = any(s.separate_site_medically_required for s in sites)
    for count in initials.values():
        assert count <= (2 if required else 1), result.lines


@settings(max_examples=300, deadline=None)
@given(administrations(), SITES, SETTING, OTHERS)
def test_no_addon_without_primary(admins, sites, setting, others):
    result = evaluate(doc(*admins, sites=sites, setting=setting, other=others))
    codes = {l.code for l in result.lines}
    for line in result.lines:
        primaries = ADDON_PRIMARIES.get(line.code)
        if primaries is not None:
            assert primaries & codes, (line.code, codes)
        assert line.units >= 1


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


@settings(max_examples=300, deadline=None)
@given(st.data(), administrations(), SITES, SETTING, OTHERS)
def test_input_order_does_not_matter(data, admins, sites, setting, others):
    first = evaluate(doc(*admins, sites=sites, setting=setting, other=others))
    shuffled_admins = data.draw(st.permutations(admins))
    shuffled_others = data.draw(st.permutations(others))
    shuffled_sites = data.draw(st.permutations(sites))
    second = evaluate(doc(*shuffled_admins, sites=tuple(shuffled_sites), setting=setting, other=tuple(shuffled_others)))
    assert first == second
