"""Code tables: the administration codes, their families and add-on primaries.

Descriptions are our own words (coding-rules.md §0).  ``ADDON_PRIMARIES`` is the
list each add-on needs on the same claim/encounter (R8, R44); it is reproduced
from CPT parentheticals via the sources cited in R8 and is used only as a final
safety net, since the hierarchy never produces an add-on without its initial.
"""

from __future__ import annotations

# Initial codes by (family, kind) -- R1, R6, R18, R19.
INITIAL_CODE: dict[tuple[str, str], str] = {
    ("chemo_complex", "infusion"): "96413",
    ("chemo_complex", "push"): "96409",
    ("therapeutic", "infusion"): "96365",
    ("therapeutic", "push"): "96374",
    ("hydration", "infusion"): "96360",
}

# "Each additional hour" code following a first-hour code (R20, R22).
ADDITIONAL_HOUR_CODE: dict[str, str] = {
    "chemo_complex": "96415",
    "therapeutic": "96366",
    "hydration": "96361",
}

# A different drug infused after the initial service (R22); hydration after
# another initial is 96361 (R21).
SEQUENTIAL_INFUSION_CODE: dict[str, str] = {
    "chemo_complex": "96417",
    "therapeutic": "96367",
    "hydration": "96361",
}

# Facility hierarchy rank, lower is higher (R6): chemo infusion > chemo push >
# therapeutic infusion > therapeutic push > hydration.
RANK: dict[tuple[str, str], int] = {
    ("chemo_complex", "infusion"): 0,
    ("chemo_complex", "push"): 1,
    ("therapeutic", "infusion"): 2,
    ("therapeutic", "push"): 3,
    ("hydration", "infusion"): 4,
}

CHEMO_INITIALS = frozenset({"96409", "96413"})

ADDON_PRIMARIES: dict[str, frozenset[str]] = {
    "96361": frozenset({"96360", "96365", "96374", "96409", "96413"}),
    "96366": frozenset({"96365", "96367"}),
    "96367": frozenset({"96365", "96374", "96409", "96413"}),
    "96368": frozenset({"96365", "96366", "96413", "96415", "96416"}),
    "96375": frozenset({"96365", "96374", "96409", "96413"}),
    "96376": frozenset({"96365", "96374", "96409", "96413"}),
    "96411": frozenset({"96409", "96413"}),
    "96415": frozenset({"96413", "96417"}),
    "96417": frozenset({"96413"}),
}

# Codes that are drug administration services (R39: 99211 never with them).
ADMINISTRATION_CODES = frozenset(
    {
        "96360",
        "96361",
        "96365",
        "96366",
        "96367",
        "96368",
        "96372",
        "96373",
        "96374",
        "96375",
        "96376",
        "96401",
        "96402",
        "96409",
        "96411",
        "96413",
        "96415",
        "96416",
        "96417",
        "96523",
    }
)

# Per-injection codes: one line per injection, never merged (R9, D11).
INJECTION_CODES = frozenset({"96372", "96373", "96401", "96402"})

# Office E/M levels the engine reports (R39, R40): established 99211-99215 and
# new-patient 99202-99205 (the latter follow the same modifier-25 logic).
EM_CODES = frozenset({"99211", "99212", "99213", "99214", "99215", "99202", "99203", "99204", "99205"})

DECLOT_CODE = "36593"  # R51
PUMP_INITIATION_CODE = "96416"  # R23
PORT_FLUSH_CODE = "96523"  # R42

# Hormonal antineoplastics take 96402 when given SC/IM (D13, R34): the D13
# generic names, their brand names (charts often name only the product) and
# their HCPCS codes.
HORMONAL_ANTINEOPLASTICS = (
    "leuprolide",
    "goserelin",
    "triptorelin",
    "degarelix",
    "fulvestrant",
    "histrelin",
    # brands: leuprolide, goserelin, triptorelin, degarelix, fulvestrant, histrelin
    "lupron",
    "eligard",
    "fensolvi",
    "camcevi",
    "zoladex",
    "trelstar",
    "triptodur",
    "firmagon",
    "faslodex",
    "vantas",
    "supprelin",
)
HORMONAL_ANTINEOPLASTIC_HCPCS = frozenset(
    {
        "J1950",  # leuprolide depot, 3.75 mg
        "J1951",  # leuprolide (Fensolvi), 0.25 mg
        "J1952",  # leuprolide (Camcevi), 1 mg
        "J9217",  # leuprolide depot, 7.5 mg
        "J9218",  # leuprolide, 1 mg
        "J9202",  # goserelin implant, 3.6 mg
        "J3315",  # triptorelin, 3.75 mg
        "J3316",  # triptorelin extended release (Triptodur), 3.75 mg
        "J9155",  # degarelix, 1 mg
        "J9393",  # fulvestrant (Teva), 25 mg
        "J9394",  # fulvestrant (Fresenius), 25 mg
        "J9395",  # fulvestrant, 25 mg
        "J9225",  # histrelin implant (Vantas), 50 mg
        "J9226",  # histrelin implant (Supprelin LA), 50 mg
    }
)

# Thrombolytics used to clear an occluded catheter (R51).
THROMBOLYTIC_NAMES = ("alteplase", "tenecteplase", "reteplase", "urokinase")
THROMBOLYTIC_HCPCS = frozenset({"J2997"})
CENTRAL_ACCESS_KINDS = frozenset({"port", "picc", "central_line"})


def is_drug_code(code: str) -> bool:
    """A drug (HCPCS Level II J/Q) line, as opposed to an administration/E/M line."""
    return code[:1] in ("J", "Q")
