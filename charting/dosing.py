"""Dosing help for weight-based drugs: pure functions, standard library only.

Two questions a nurse asks at the chair for an mg/kg order, answered here
without the database (table-driven tests: tests/charting/test_dosing.py):

- `weight_based_dose(weight_kg, mg_per_kg)`: the dose in mg, rounded by
  `round_dose`;
- `choose_containers(dose_mg, sizes_mg)`: which single-dose containers to
  open, and the waste left in them (R47: what is left of single-dose
  containers after the dose is the JW amount).

The nurse still confirms: nothing here is charted by itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# Largest number of states the container search walks (amounts in steps of
# the sizes' greatest common divisor). 200 g of immune globulin from 5 g
# bottles is 40 steps; 1 g from 0.5 mg and 1000 mg vials is 2,000.
MAX_STEPS = 400_000


class DosingError(ValueError):
    """Input the dosing help cannot answer; `message` is for the nurse."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def round_dose(dose_mg: Decimal) -> Decimal:
    """The rounding rule of the dosing help: half up to a whole mg for doses
    of 10 mg or more, to 0.1 mg below 10 mg (a whole mg would be a 5-10 %
    change of a small dose). 364.5 -> 365; 249.49 -> 249; 7.25 -> 7.3.

    It is the arithmetic's rounding only: the order (and any rounding to
    whole vials) is the prescriber's, and the nurse confirms the dose."""
    step = Decimal("1") if dose_mg >= 10 else Decimal("0.1")
    return dose_mg.quantize(step, rounding=ROUND_HALF_UP)


def weight_based_dose(weight_kg: Decimal, mg_per_kg: Decimal) -> Decimal:
    """`weight_kg` (kg, > 0) x `mg_per_kg` (mg/kg, > 0), rounded by
    `round_dose`, in mg. Raises DosingError for a weight or an order that is
    not positive. Example: 73 kg x 5 mg/kg = 365 mg."""
    if weight_kg is None or weight_kg <= 0:
        raise DosingError("Give the weight in kg.")
    if mg_per_kg is None or mg_per_kg <= 0:
        raise DosingError("Give the ordered dose in mg/kg.")
    return round_dose(weight_kg * mg_per_kg)


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """Containers to open for `dose_mg`: `containers` is ((size_mg, count), ...)
    largest size first; `opened_mg` what they hold; `waste_mg` = opened - dose."""

    dose_mg: Decimal
    containers: tuple[tuple[Decimal, int], ...]
    opened_mg: Decimal
    waste_mg: Decimal

    @property
    def count(self) -> int:
        return sum(n for _, n in self.containers)

    def explain(self) -> str:
        """'1 x 500 mg + 3 x 100 mg = 800 mg for 712.5 mg: 87.5 mg left over (waste).'"""
        opened = " + ".join(f"{n} x {_fmt(size)} mg" for size, n in self.containers)
        return f"{opened} = {_fmt(self.opened_mg)} mg for {_fmt(self.dose_mg)} mg: {_fmt(self.waste_mg)} mg left over (waste)."


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def choose_containers(dose_mg: Decimal, sizes_mg: tuple[Decimal, ...] | list[Decimal]) -> ContainerPlan:
    """The single-dose containers to open for `dose_mg` (mg, > 0) from the
    container sizes `sizes_mg` (mg each, > 0; any number of each size).

    Choice: the LEAST WASTE first (the smallest total at or above the dose:
    the JW amount, R47, and the drug's cost), then the FEWEST containers
    among those (less handling, fewer lots to chart), then the larger sizes.
    Rituximab 712.5 mg from 500 mg and 100 mg vials: 1 x 500 + 3 x 100 =
    800 mg, waste 87.5 mg (2 x 500 would waste 287.5 mg; 8 x 100 also
    wastes 87.5 mg with more vials). Infliximab 365 mg from 100 mg vials:
    4 x 100, waste 35 mg.

    Exact: amounts are counted in steps of the sizes' greatest common divisor
    (an unbounded knapsack over at most MAX_STEPS steps). Raises DosingError
    without sizes, for a size or dose that is not positive, or when the
    search would be too large.
    """
    sizes = sorted({Decimal(s) for s in sizes_mg}, reverse=True)
    if not sizes:
        raise DosingError("The catalog has no container sizes for this drug: count the vials yourself.")
    if any(s <= 0 for s in sizes):
        raise DosingError("A container size must be positive.")
    if dose_mg is None or dose_mg <= 0:
        raise DosingError("The dose must be more than 0 mg.")
    # Integers in thousandths of a mg (the charting columns keep 3 decimals).
    milli = [int((s * 1000).to_integral_value()) for s in sizes]
    step = math.gcd(*milli)
    units = [m // step for m in milli]
    target = math.ceil(Decimal(dose_mg) * 1000 / step)
    limit = target + max(units)
    if limit > MAX_STEPS:
        raise DosingError("Too many containers to work out here: check the dose and the sizes.")
    # fewest[a]: fewest containers holding exactly a steps; used[a]: the size
    # index of the last one, for the way back.
    infinity = limit + 1
    fewest = [0] + [infinity] * limit
    used = [-1] * (limit + 1)
    for amount in range(1, limit + 1):
        for i, u in enumerate(units):  # largest first: ties keep the larger size
            if u <= amount and fewest[amount - u] + 1 < fewest[amount]:
                fewest[amount] = fewest[amount - u] + 1
                used[amount] = i
    best = next(a for a in range(target, limit + 1) if fewest[a] < infinity)
    counts = [0] * len(sizes)
    amount = best
    while amount:
        counts[used[amount]] += 1
        amount -= units[used[amount]]
    containers = tuple((sizes[i], n) for i, n in enumerate(counts) if n)
    opened = sum((size * n for size, n in containers), start=Decimal(0))
    return ContainerPlan(dose_mg=Decimal(dose_mg), containers=containers, opened_mg=opened, waste_mg=opened - Decimal(dose_mg))
