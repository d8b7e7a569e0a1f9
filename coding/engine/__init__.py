"""Chairside coding engine: documented encounter in, suggested lines out.

Pure Python (standard library only, no Django, no I/O, deterministic).  See
DESIGN.md §4 and coding-rules.md; every line cites the rule ids that decided it.

    result = evaluate(doc, policy=PayerPolicy.from_dict(stored))  # policy optional
    explain(result)        # multi-line text: lines, minute arithmetic, rules, not billed, warnings
    RULE_TITLES["R20"]     # short title of a cited rule, for the coder screen

``evaluate`` never raises for documentation gaps or unusable input (no stop
time, malformed NDC, a dose unit the billing unit cannot convert from): those
come back as ``Warning(blocking=True)`` without a guessed line.  A stored
policy that is not valid raises ``PolicyError`` in ``PayerPolicy.from_dict``.
Store ``result.ruleset_version`` and ``result.policy.to_dict()`` with a
suggestion to replay it.
"""

from .engine import RULESET_VERSION, evaluate
from .explain import RULE_TITLES, explain
from .policy import INDEPENDENCE_BLUE_CROSS, MEDICARE, PayerPolicy, PolicyError, policy_for
from .scenario import ScenarioError, load_scenario_file, parse_scenario, result_to_json
from .types import (
    AccessSite,
    Administration,
    CodingResult,
    Container,
    EncounterDoc,
    Line,
    NotBilled,
    OtherService,
    Quantity,
    Warning,
)

__all__ = [
    "RULESET_VERSION",
    "evaluate",
    "explain",
    "RULE_TITLES",
    "MEDICARE",
    "INDEPENDENCE_BLUE_CROSS",
    "PayerPolicy",
    "PolicyError",
    "policy_for",
    "ScenarioError",
    "load_scenario_file",
    "parse_scenario",
    "result_to_json",
    "AccessSite",
    "Administration",
    "CodingResult",
    "Container",
    "EncounterDoc",
    "Line",
    "NotBilled",
    "OtherService",
    "Quantity",
    "Warning",
]
