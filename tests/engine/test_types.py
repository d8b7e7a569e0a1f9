"""The engine's value types: frozen, slotted, and the hand-written fast
``__init__`` of ``Line`` and ``Warning`` agrees with their fields."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import date
from decimal import Decimal

import pytest

from coding.engine import Line, Warning


@pytest.mark.parametrize("cls", [Line, Warning])
def test_init_signature_is_the_fields(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields] == list(cls.__slots__)
    for p, f in zip(params, fields, strict=True):
        default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == default, p.name


def test_line_is_a_frozen_value():
    a = Line("J1745", 19, (), ("1",), None, ("R46",), "x", date(2025, 6, 10), "57894003001", "N4", Decimal("1.84"), "UN")
    b = Line(
        code="J1745",
        units=19,
        modifiers=(),
        administrations=("1",),
        minutes=None,
        rules=("R46",),
        explanation="x",
        date_of_service=date(2025, 6, 10),
        ndc="57894003001",
        ndc_qualifier="N4",
        ndc_quantity=Decimal("1.84"),
        ndc_unit="UN",
    )
    assert a == b and hash(a) == hash(b) and "ndc_unit='UN'" in repr(a)
    assert dataclasses.replace(a, units=20).units == 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.units = 20  # type: ignore[misc]
    assert Line("96413", 1, (), ("1",), 120, ("R20",), "y").ndc is None


def test_warning_is_a_frozen_value():
    w = Warning("no_stop_time", "m", ("1",), ("R16",))
    assert w == Warning(kind="no_stop_time", message="m", administrations=("1",), rules=("R16",), blocking=False)
    assert not w.blocking
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.kind = "x"  # type: ignore[misc]
