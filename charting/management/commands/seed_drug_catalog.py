"""Load the drug catalog from charting/data/drug-catalog.csv (a copy of shared/drug-catalog.csv).

Idempotent: one Drug per generic name, created, updated only when a catalog
value changed, else left alone (the summary line counts each). The container
sizes are read from typical_single_dose_vial_sizes (`parse_vial_sizes`);
`dosing_basis` is the admins' and is never set here. Whatever the
catalog marks "unverified" stays visible in `verification_status`, and such a
drug starts with `is_verified=False`. An admin's later confirmation
(`is_verified=True`) is not undone by re-seeding.
"""

import csv
import re
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction

from charting.models import AdminFamily, Drug, dose_tiers

CATALOG = Path(__file__).resolve().parents[2] / "data" / "drug-catalog.csv"

HCPCS_RE = re.compile(r"\b([A-Z]\d{4})\b")
UNIT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|mcg|g|mL|ml|cc|units?)\b")
NDC11_RE = re.compile(r"^\d{5}-\d{4}-\d{2}$")
UNVERIFIED = "unverified"

# Hydration fluid the nurse charts as such; not a row of the shared catalog.
SALINE = {
    "name": "sodium chloride 0.9%",
    "brand": "Normal saline",
    "admin_family": AdminFamily.HYDRATION,
    "usual_routes": "IV infusion",
    "single_dose": True,
    "verification_status": "Added by Chairside (not in the shared catalog): unverified. HCPCS depends on the bag (J7030 1000 cc, J7040 500 mL, J7050 250 cc).",
    "notes": "Plain hydration fluid. As a drug vehicle or KVO it gets no hydration administration code.",
}


def parse_hcpcs(text: str) -> str:
    """The first HCPCS code in the cell ('' when there is none)."""
    match = HCPCS_RE.search(text)
    return match.group(1) if match else ""


UP_TO_RE = re.compile(r"\b([A-Z]\d{4})\s*\(up to (\d+(?:\.\d+)?)\s*(mg|mcg|g)\)", re.IGNORECASE)


def parse_dose_tiers(text: str) -> list[dict]:
    """'J2920 (up to 40 mg); J2930 (up to 125 mg)' -> the "up to" codes by
    dose, ascending ([] unless the cell names two or more): the drug is
    billed under the smallest that covers the dose (Drug.code_for_dose)."""
    found = [{"hcpcs": m.group(1).upper(), "up_to": m.group(2), "unit": m.group(3).lower()} for m in UP_TO_RE.finditer(text)]
    if len(found) < 2:
        return []
    try:
        tiers = dose_tiers(found)  # checked and ascending, as Drug.clean reads them
    except ValueError:
        return []  # a cell the rules refuse (a code twice, two equal amounts): the first code stands
    return [{"hcpcs": hcpcs, "up_to": f"{amount}", "unit": unit} for amount, unit, hcpcs in tiers]


def parse_unit(text: str) -> tuple[Decimal | None, str]:
    """'10 mg' -> (10, 'mg'); 'up to 50 mg' -> (50, 'mg'); 'n/a' -> (None, '')."""
    match = UNIT_RE.search(text)
    if not match:
        return None, ""
    unit = {"ml": "mL", "unit": "units"}.get(match.group(2), match.group(2))
    return Decimal(match.group(1)), unit


def parse_family(text: str, by_brand: dict[str, str]) -> str:
    """Catalog family text -> AdminFamily.

    'payer-dependent' and 'contested' biologics take chemo/complex: the
    Medicare default of coding-rules R36/R38 (D9); 'as Actemra' copies that row.
    """
    lowered = text.lower().strip()
    for family in (AdminFamily.CHEMO_COMPLEX, AdminFamily.THERAPEUTIC, AdminFamily.HYDRATION):
        if lowered.startswith(family.value):
            return family.value
    if lowered.startswith("as "):
        brand = lowered[3:].strip()
        if brand in by_brand:
            return by_brand[brand]
    if "payer-dependent" in lowered or "96401" in lowered or "96413" in lowered:
        return AdminFamily.CHEMO_COMPLEX.value
    return AdminFamily.THERAPEUTIC.value


# A mass per container: "100 mg", "1 g", "100 mg/10 mL" (the mass is the
# container's); not "8 mg/mL" (a concentration: the container's volume is not
# given, so its mass is not known) and not the "30" of "1-30 g" (a range).
SIZE_RE = re.compile(r"(?<![\d./-])(\d+(?:\.\d+)?)\s*(mcg|mg|g)\b(?!\s*/\s*m[lL]\b)")
MASS_IN_MG = {"mcg": Decimal("0.001"), "mg": Decimal(1), "g": Decimal(1000)}


def _segments(text: str) -> list[str]:
    """The cell split at ';' and at ',' outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" or (char == "," and depth == 0):
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def parse_vial_sizes(text: str) -> tuple[tuple[Decimal, ...], tuple[str, ...]]:
    """The catalog's typical_single_dose_vial_sizes cell -> (container sizes
    in mg, ascending and distinct; the parts of the cell with a number but no
    size read from them).

    Only a mass per container is read ("100 mg/10 mL; 500 mg/50 mL" -> 100,
    500; "5 g, 10 g" -> 5000, 10000). Nothing is guessed: a concentration
    without the container's volume ("8 mg/mL"), a range ("1-30 g"), bare
    numbers ("80/4, 200/10 mL") and volumes ("250/500/1000 mL bags") give no
    size and come back as unread, for the admin to see. The cell itself,
    "unverified" marks included, is kept in Drug.vial_sizes_text."""
    sizes: set[Decimal] = set()
    unread = []
    for segment in _segments(text):
        found = [Decimal(n) * MASS_IN_MG[unit] for n, unit in SIZE_RE.findall(segment)]
        if found:
            sizes.update(found)
        elif re.search(r"\d", segment):
            unread.append(segment)
    return tuple(sorted(sizes)), tuple(unread)


def sizes_json(sizes: tuple[Decimal, ...]) -> list:
    """Decimals as JSON numbers: whole mg as integers (100), else floats (0.5)."""
    return [int(s) if s == s.to_integral_value() else float(s) for s in sizes]


def is_single_dose(vials: str, notes: str) -> bool:
    text = vials.lower()
    if "single" in text:
        return True
    return not ("multi-dose" in text or "multi-dose" in notes.lower())


def verification_text(row: dict) -> str:
    """Every cell marked unverified, named by its column, then the catalog's own status."""
    marked = [f"{column}: {value}" for column, value in row.items() if column != "verification_status" and UNVERIFIED in (value or "").lower()]
    return "; ".join([*marked, f"catalog: {row['verification_status']}"])


def drug_fields(row: dict, by_brand: dict[str, str]) -> dict:
    value, unit = parse_unit(row["hcpcs_billing_unit"])
    sizes, _ = parse_vial_sizes(row["typical_single_dose_vial_sizes"])
    ndc = row["example_ndc_11_5-4-2"].strip()
    notes = [row["notes"].strip(), f"HCPCS as catalogued: {row['hcpcs_code']}", f"Billing unit as catalogued: {row['hcpcs_billing_unit']}", f"Admin family as catalogued: {row['usual_admin_code_family']}"]
    return {
        "brand": row["common_brand"].strip()[:200],
        "hcpcs": parse_hcpcs(row["hcpcs_code"]),
        "dose_tiers": parse_dose_tiers(row["hcpcs_code"]),
        "billing_unit_value": value,
        "billing_unit_unit": unit,
        "admin_family": parse_family(row["usual_admin_code_family"], by_brand),
        "single_dose": is_single_dose(row["typical_single_dose_vial_sizes"], row["notes"]),
        "usual_routes": row["usual_routes"].strip()[:200],
        "example_ndc": ndc if NDC11_RE.match(ndc) else "",
        "verification_status": verification_text(row),
        "vial_sizes_mg": sizes_json(sizes),
        "vial_sizes_text": row["typical_single_dose_vial_sizes"].strip()[:300],
        "notes": "\n".join(n for n in notes if n),
    }


class Command(BaseCommand):
    help = "Load or refresh the drug catalog from charting/data/drug-catalog.csv (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--file", default=str(CATALOG), help="CSV in the shared/drug-catalog.csv format")

    @transaction.atomic
    def handle(self, *args, file: str, **options):
        with open(file, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        by_brand: dict[str, str] = {}
        created = updated = unchanged = 0
        for row in rows:
            fields = drug_fields(row, by_brand)
            by_brand[row["common_brand"].strip().lower()] = fields["admin_family"]
            by_brand[re.sub(r"\s*\(.*\)$", "", row["common_brand"]).strip().lower()] = fields["admin_family"]
            verified = not any(UNVERIFIED in (v or "").lower() for v in row.values())
            name = row["generic_name"].strip()
            drug = Drug.objects.filter(name=name).first()
            if drug is None:
                Drug.objects.create(name=name, **fields, is_verified=verified)
                created += 1
            elif any(getattr(drug, k) != v for k, v in fields.items()):
                for k, v in fields.items():
                    setattr(drug, k, v)
                drug.save(update_fields=list(fields))  # an admin's is_verified is kept
                updated += 1
            else:
                unchanged += 1
        _, saline_created = Drug.objects.get_or_create(name=SALINE["name"], defaults=SALINE | {"is_verified": False})
        # Counts of the file's rows, then the one drug that is not in the file.
        saline = "added" if saline_created else "already there"
        self.stdout.write(f"drug catalog: {len(rows)} rows in {file}: {created} created, {updated} updated, {unchanged} unchanged; plain saline (not in the file) {saline}")
