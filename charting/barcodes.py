"""What a handheld scanner types, read into what the chart needs (issue #8, BCMA).

Pure functions: no Django, no database, no clock. The GS1 syntax (application
identifiers, FNC1/GS separators, check digits, YYMMDD dates with day 00) is
parsed by `biip`; this module only decides what a drug vial's or a patient
wristband's barcode means for Chairside.

A scanner in keyboard mode "types" the barcode's data, then Enter. What arrives:

- a GS1 DataMatrix / GS1-128 element string, e.g.
  ``01003578940300101727123110AB1234``, with the FNC1 separator sent as the
  ASCII group separator ``\\x1d`` after a variable-length field (lot, serial);
  scanners set up to send an AIM symbology identifier prefix it with ``]d2``
  (DataMatrix) or ``]C1`` (GS1-128);
- the same typed by a person from the human-readable text under the symbol,
  with the AIs in parentheses: ``(01)00357894030010(17)271231(10)AB1234``;
- the 12 digits of a linear UPC-A (US vials carry the NDC in a UPC-A or a
  GTIN-14), or a bare GTIN-14.

AIs used: 01 GTIN, 10 lot, 17 expiry (YYMMDD; day 00 = last day of the
month, GS1 General Specifications §7.12), 21 serial. Anything else in the
message is ignored (shown in `ProductScan.read`).

Sources: GS1 General Specifications (AIs 01/10/17/21, §7.8.6 separators,
§7.12 dates); GS1 US, "Applying GS1 Standards to U.S. Pharmaceutical
Supply Chain Business Processes" (the NDC inside a GTIN); FDA, 21 CFR
201.25 (the linear barcode of a drug label carries the NDC) and the FDA
guidance on product identifiers under the DSCSA (NDC-based GTIN,
serial, lot, expiry).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import biip
from biip import ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_messages import GS1Message

from coding.engine.drugs import ndc_11

# Scanners are often set to send a visible character for FNC1 because a
# keyboard cannot type ASCII 29; "|" and "^" are outside GS1's character set
# 82 (what a lot or serial may contain), so they can only be separators.
SEPARATORS = ("\x1d", "|", "^")
CONFIG = biip.ParseConfig(separator_chars=SEPARATORS)
# A GS1 DataMatrix on a vial carries well under this; longer is not a scan.
MAX_SCAN_LENGTH = 200
# biip raises ParseError for what it refuses, but not always: "]" alone (a
# cut-off symbology identifier) raises IndexError in biip 5.2.0 (found by
# the hypothesis test). Any of these is "could not read this scan".
BIIP_ERRORS = (ParseError, ValueError, IndexError, KeyError)
_SYMBOLOGY_ID = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_PRINTABLE = re.compile(r"^[\x1d\x20-\x7e]*$")


class BarcodeError(ValueError):
    """The scan could not be used; `message` says what was read and why (for the nurse)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ProductScan:
    """A drug package's barcode, read.

    `gtin`: the GTIN-14 (14 digits, check digit verified); `ndc10`: the 10 NDC
    digits inside it, no hyphens (the layout is not in the barcode: see
    `resolve_ndc`); `lot`, `serial`: "" when the barcode has none (a linear
    UPC-A has neither); `expiry`: the date of AI 17 (day 00 = last day of its
    month), or None; `read`: what was read, as the human-readable text
    (``(01)…(17)…(10)…``), for messages."""

    gtin: str
    ndc10: str
    lot: str
    expiry: dt.date | None
    serial: str
    read: str


def shown(text: str) -> str:
    """`text` as it can be shown in a message: the group separator as <GS>, cut at 80 characters."""
    visible = text.replace("\x1d", "<GS>")
    return visible if len(visible) <= 80 else visible[:77] + "..."


def _clean(text: str) -> str:
    value = (text or "").strip()
    if not value:
        raise BarcodeError("Nothing was scanned: scan the barcode on the vial (or type the text under it).")
    if len(value) > MAX_SCAN_LENGTH:
        raise BarcodeError(f"This is too long for a barcode ({len(value)} characters): scan the vial's barcode only.")
    if not _PRINTABLE.match(value):
        raise BarcodeError("The scan has characters no drug barcode carries: scan again (is the scanner set to a US keyboard?).")
    return value


def ndc10_from_gtin(gtin: str) -> str:
    """The 10 NDC digits inside a US drug GTIN, no hyphens.

    `gtin`: 12 digits (UPC-A) or 14 digits (GTIN-14), check digit NOT
    verified here (biip does it when reading). A US drug's GTIN-14 is "003"
    + the 10-digit NDC + a check digit; its UPC-A is "3" + the NDC + a check
    digit, the same number without the two leading zeros.

    Raises BarcodeError for any other GTIN (not a drug with an NDC: a
    supply, a device, a foreign product).

    Source: GS1 US, "Applying GS1 Standards to U.S. Pharmaceutical Supply
    Chain Business Processes" (NDC-based GTIN: indicator digit 0, GS1
    prefix 03); FDA DSCSA guidance on product identifiers (the NDC is
    embedded in the GTIN); 21 CFR 201.25 (linear barcode carrying the NDC).
    """
    digits = gtin.strip()
    if len(digits) == 12 and digits.isdigit():
        digits = "00" + digits
    if len(digits) != 14 or not digits.isdigit():
        raise BarcodeError(f"{shown(gtin)!r} is not a GTIN (12 or 14 digits).")
    if digits[1:3] == "03" and digits[0] != "0":
        raise BarcodeError(f"GTIN {digits} is a case or carton of a drug (packaging indicator {digits[0]}), not one vial: scan the vial's own barcode.")
    if not digits.startswith("003"):
        raise BarcodeError(f"GTIN {digits} is not a US drug code: a drug's GTIN starts with 003 and carries its NDC. Is this the vial's barcode?")
    return digits[3:13]


def read_product_barcode(text: str) -> ProductScan:
    """Read a drug package's barcode as typed by a scanner (or a person).

    Accepts a GS1 element string (GS or "|" / "^" separators, an AIM
    symbology identifier such as ]d2 or ]C1 is skipped), the same with
    parenthesised AIs, or a bare UPC-A / GTIN-14. Raises BarcodeError (the
    message says what was read) for: nothing scanned, not a GS1 message or
    GTIN, a wrong check digit, no GTIN (AI 01) in the message, a GTIN that
    is not a US drug's, an impossible date.
    """
    value = _clean(text)
    try:
        if value.startswith("("):
            message = GS1Message.parse_hri(value, config=CONFIG)
            result = None
        else:
            result = biip.parse(value, config=CONFIG)
            message = result.gs1_message
    except BIIP_ERRORS as exc:
        raise BarcodeError(f"Could not read {shown(value)!r} as a GS1 barcode: {exc or 'incomplete'}") from exc

    digits_only = _SYMBOLOGY_ID.sub("", value)
    if result is not None and digits_only.isdigit() and len(digits_only) in (12, 13, 14):
        # A bare GTIN / UPC-A. (biip also tries such digits as a GS1 message.)
        if result.gtin is None:
            raise BarcodeError(f"Could not read {shown(value)!r}: {result.gtin_error or 'not a GTIN'} Scan again: a wrong check digit is a misread.")
        gtin = result.gtin.as_gtin_14()
        return ProductScan(gtin=gtin, ndc10=ndc10_from_gtin(gtin), lot="", expiry=None, serial="", read=digits_only)

    if message is None:
        reason = result.gs1_message_error if result is not None else ""
        raise BarcodeError(f"Could not read {shown(value)!r}: it is not a GS1 drug barcode or a UPC/GTIN ({reason}).")
    read = message.as_hri()
    strings = message.element_strings
    gtin_string = strings.get(ai="01")
    if gtin_string is None:
        raise BarcodeError(f"Read {shown(read)!r}: it has no product code (GTIN, AI 01). Scan the barcode with the product code, usually the 2D one.")
    if gtin_string.gtin is None:
        raise BarcodeError(f"Read {shown(read)!r}: {gtin_string.gtin_error} Scan again: a wrong check digit is a misread.")
    gtin = gtin_string.gtin.as_gtin_14()
    expiry_string, lot_string, serial_string = strings.get(ai="17"), strings.get(ai="10"), strings.get(ai="21")
    return ProductScan(
        gtin=gtin,
        ndc10=ndc10_from_gtin(gtin),
        lot=lot_string.value if lot_string else "",
        expiry=expiry_string.date if expiry_string else None,
        serial=serial_string.value if serial_string else "",
        read=read,
    )


def ndc_layouts(ndc10: str) -> tuple[str, str, str]:
    """The three ways 10 NDC digits can be printed: 4-4-2, 5-3-2, 5-4-1 (FDA
    NDC format, 21 CFR 207.33). The barcode does not say which one is the
    product's."""
    d = ndc10
    return (f"{d[:4]}-{d[4:8]}-{d[8:]}", f"{d[:5]}-{d[5:8]}-{d[8:]}", f"{d[:5]}-{d[5:9]}-{d[9:]}")


def resolve_ndc(ndc10: str, known: Iterable[str]) -> str | None:
    """The NDC as printed (hyphenated) for the 10 digits of a barcode, decided
    by the NDCs already `known` (as printed or 11-digit, any form the chart
    stores): the one layout whose 11-digit 5-4-2 form (R49) is among them.

    Returns None when no layout matches, or more than one does (then the
    nurse reads the hyphens off the package: never guessed).
    """
    known_11 = {n for n in (ndc_11(k) for k in known if k) if n}
    matches = [layout for layout in ndc_layouts(ndc10) if ndc_11(layout) in known_11]
    return matches[0] if len(matches) == 1 else None


def printed_forms(ndc10: str) -> set[str]:
    """Every string an NDC with these 10 digits can be stored as (the three
    layouts, their 11-digit forms with and without hyphens): what to look up."""
    forms: set[str] = set()
    for layout in ndc_layouts(ndc10):
        eleven = ndc_11(layout)
        forms.add(layout)
        if eleven:
            forms.update({eleven, f"{eleven[:5]}-{eleven[5:9]}-{eleven[9:]}"})
    return forms


# --- the patient's wristband ----------------------------------------------------------

# GS1 Global Service Relation Number of a recipient (patient), AI 8018: 18 digits.
_GSRN = re.compile(r"^(?:\(8018\)|8018)(\d{18})$")


def read_wristband(text: str) -> str:
    """The patient identifier a wristband barcode carries.

    Format (decided for Chairside): the MRN as plain text (Code 128 or a 2D
    code), surrounding spaces dropped, an AIM symbology identifier prefix
    (]C0, ]d1, ]Q1 ...) skipped. A GS1 wristband with a GSRN (AI 8018, 18
    digits; ``8018…`` or ``(8018)…``) gives the 18 digits: a clinic using
    GSRNs stores the GSRN as the patient's MRN. Raises BarcodeError when
    nothing or no usable text was scanned.
    """
    value = (text or "").strip()
    if not value:
        raise BarcodeError("Nothing was scanned: scan the patient's wristband.")
    if len(value) > MAX_SCAN_LENGTH or not _PRINTABLE.match(value):
        raise BarcodeError("This is not a wristband barcode: scan the patient's wristband again.")
    value = _SYMBOLOGY_ID.sub("", value).strip()
    gsrn = _GSRN.match(value)
    value = gsrn.group(1) if gsrn else value.replace("\x1d", "")
    if not value:  # a symbology prefix alone (]A0): nothing to compare
        raise BarcodeError("Nothing was scanned: scan the patient's wristband.")
    return value


def same_mrn(scanned: str, mrn: str) -> bool:
    """Whether a wristband's identifier is this MRN. Letters compare without
    case: a keyboard-mode scanner types capitals as lower case (and back)
    when Caps Lock is on."""
    return scanned.strip().casefold() == mrn.strip().casefold()


def gtin_for_ndc(ndc10: str) -> str:
    """The GTIN-14 of a US drug with these 10 NDC digits: "003" + NDC + the
    GS1 mod-10 check digit (see `ndc10_from_gtin`). Demo data and tests
    build their (invented) barcodes with it."""
    body = "003" + ndc10
    return body + str(gs1_standard_check_digit(body))
