"""The next billing threshold shown on the nurse's live timer (R18-R22), at the boundaries."""

import pytest

from coding.engine.thresholds import Threshold, next_threshold, upcoming_thresholds
from coding.engine.timing import addon_hours, secondary_hydration_units


@pytest.mark.parametrize(
    ("family", "minutes", "expected"),
    [
        # R18: 15 minutes or less is a push; the infusion code from 16.
        ("chemo_complex", 0, ("96413", 16)),
        ("chemo_complex", 15, ("96413", 16)),
        ("chemo_complex", 16, ("96415", 91)),
        # R20: add-on hours at 91, 151, 211.
        ("chemo_complex", 90, ("96415", 91)),
        ("chemo_complex", 91, ("96415", 151)),
        ("chemo_complex", 150, ("96415", 151)),
        ("chemo_complex", 151, ("96415", 211)),
        ("therapeutic", 15, ("96365", 16)),
        ("therapeutic", 16, ("96366", 91)),
        ("therapeutic", 90, ("96366", 91)),
        ("therapeutic", 91, ("96366", 151)),
        # R19: hydration needs 31 minutes; then 96361 per R20.
        ("hydration", 30, ("96360", 31)),
        ("hydration", 31, ("96361", 91)),
        ("hydration", 90, ("96361", 91)),
        ("hydration", 91, ("96361", 151)),
        ("hydration", 150, ("96361", 151)),
        ("hydration", 151, ("96361", 211)),
    ],
)
def test_next_threshold_as_the_initial_service(family, minutes, expected):
    assert next_threshold(family, "iv_infusion", minutes) == Threshold(*expected)


@pytest.mark.parametrize(
    ("family", "minutes", "expected"),
    [
        ("chemo_complex", 15, ("96417", 16)),  # R22
        ("chemo_complex", 16, ("96415", 91)),
        ("therapeutic", 15, ("96367", 16)),
        ("therapeutic", 16, ("96366", 91)),
        ("hydration", 30, ("96361", 31)),  # R21: secondary hydration starts at 96361
        ("hydration", 31, ("96361", 91)),
    ],
)
def test_next_threshold_as_a_sequential_service(family, minutes, expected):
    assert next_threshold(family, "iv_infusion", minutes, position="sequential") == Threshold(*expected)


@pytest.mark.parametrize("route", ["subcutaneous", "intramuscular", "intra_arterial"])
def test_untimed_routes_have_no_threshold(route):
    assert next_threshold("therapeutic", route, 5) is None


def test_an_iv_push_that_runs_on_becomes_an_infusion_at_16_minutes():
    assert next_threshold("therapeutic", "iv_push", 3) == Threshold("96365", 16)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        next_threshold("therapeutic", "iv_infusion", -1)
    with pytest.raises(ValueError):
        next_threshold("therapeutic", "iv_infusion", 1, position="concurrent")


@pytest.mark.parametrize("family", ["chemo_complex", "therapeutic", "hydration"])
def test_the_thresholds_agree_with_the_engines_unit_counts(family):
    """Each add-on threshold is exactly where the engine's unit count goes up (R20, R21)."""
    for threshold in upcoming_thresholds(family, "iv_infusion", 0, count=6)[1:]:
        assert addon_hours(threshold.minute) == addon_hours(threshold.minute - 1) + 1
        assert secondary_hydration_units(threshold.minute) == secondary_hydration_units(threshold.minute - 1) + 1


def test_upcoming_thresholds_list_the_next_ones():
    assert upcoming_thresholds("chemo_complex", "iv_infusion", 20, count=3) == [("96415", 91), ("96415", 151), ("96415", 211)]
    assert upcoming_thresholds("therapeutic", "subcutaneous", 20) == []
