"""charting/barcodes.py: what a scanner types, read (issue #8). Pure: no database.

Every barcode here is invented: GTINs built from the catalog's example NDCs
(`gtin_for_ndc`) with made-up lots and serials."""

import datetime as dt
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charting.barcodes import (
    BarcodeError,
    gtin_for_ndc,
    ndc10_from_gtin,
    ndc_layouts,
    printed_forms,
    read_product_barcode,
    read_wristband,
    resolve_ndc,
    same_mrn,
    shown,
)

GS = "\x1d"
# Infliximab (catalog: 57894-030-01, stored 57894-0030-01): GTIN-14 00357894030010.
INFLIXIMAB = gtin_for_ndc("5789403001")


def test_gtin_for_ndc_is_003_the_ndc_and_the_gs1_check_digit():
    assert INFLIXIMAB == "00357894030010"
    # UPC-A of the same product: the GTIN-14 without its two leading zeros.
    assert gtin_for_ndc("0069080901") == "00300690809014"


READS = [
    # (case, as typed, gtin, lot, expiry, serial, read)
    ("GS after a variable-length lot", f"01{INFLIXIMAB}10AB1234{GS}17271231", INFLIXIMAB, "AB1234", dt.date(2027, 12, 31), "", f"(01){INFLIXIMAB}(10)AB1234(17)271231"),
    ("lot last: no separator needed", f"01{INFLIXIMAB}1727123110AB1234", INFLIXIMAB, "AB1234", dt.date(2027, 12, 31), "", f"(01){INFLIXIMAB}(17)271231(10)AB1234"),
    ("serial after the lot", f"01{INFLIXIMAB}1727123110LOT7{GS}21SN0001", INFLIXIMAB, "LOT7", dt.date(2027, 12, 31), "SN0001", f"(01){INFLIXIMAB}(17)271231(10)LOT7(21)SN0001"),
    ("parenthesised, as a person types it", f"(01){INFLIXIMAB}(17)271231(10)AB1234", INFLIXIMAB, "AB1234", dt.date(2027, 12, 31), "", f"(01){INFLIXIMAB}(17)271231(10)AB1234"),
    ("parenthesised with spaces", f"(01) {INFLIXIMAB} (10) AB1234 (17) 271231", INFLIXIMAB, "AB1234", dt.date(2027, 12, 31), "", f"(01){INFLIXIMAB}(10)AB1234(17)271231"),
    ("day 00 = last day of the month", f"01{INFLIXIMAB}1728020010L1", INFLIXIMAB, "L1", dt.date(2028, 2, 29), "", f"(01){INFLIXIMAB}(17)280200(10)L1"),
    ("day 00 in a 30-day month", f"(01){INFLIXIMAB}(17)270600(10)L1", INFLIXIMAB, "L1", dt.date(2027, 6, 30), "", f"(01){INFLIXIMAB}(17)270600(10)L1"),
    ("AIM symbology identifier of a DataMatrix", f"]d201{INFLIXIMAB}1727123110AB1234", INFLIXIMAB, "AB1234", dt.date(2027, 12, 31), "", f"(01){INFLIXIMAB}(17)271231(10)AB1234"),
    ("'|' sent for FNC1", f"01{INFLIXIMAB}10AB1234|17271231", INFLIXIMAB, "AB1234", dt.date(2027, 12, 31), "", f"(01){INFLIXIMAB}(10)AB1234(17)271231"),
    ("bare GTIN-14", INFLIXIMAB, INFLIXIMAB, "", None, "", INFLIXIMAB),
    ("bare UPC-A (linear NDC barcode)", INFLIXIMAB[2:], INFLIXIMAB, "", None, "", INFLIXIMAB[2:]),
    ("UPC-A with surrounding spaces", f"  {INFLIXIMAB[2:]}\n", INFLIXIMAB, "", None, "", INFLIXIMAB[2:]),
]


@pytest.mark.parametrize(("case", "typed", "gtin", "lot", "expiry", "serial", "read"), READS, ids=[r[0] for r in READS])
def test_read_product_barcode(case, typed, gtin, lot, expiry, serial, read):
    scan = read_product_barcode(typed)
    assert (scan.gtin, scan.ndc10, scan.lot, scan.expiry, scan.serial, scan.read) == (gtin, "5789403001", lot, expiry, serial, read)


BAD = [
    # (case, as typed, words the message must contain)
    ("nothing", "   ", "Nothing was scanned"),
    ("bad check digit, GS1", f"01{INFLIXIMAB[:-1]}91727123110L1", "check digit"),
    ("bad check digit, bare UPC-A", INFLIXIMAB[2:-1] + "9", "check digit"),
    ("not a drug: a GTIN-13 of a grocery item", "7032069804988", "not a US drug code"),
    ("not a drug inside a GS1 string", "0107032069804988101", "not a US drug code"),
    ("no GTIN in the message", "(10)AB1234(17)271231", "no product code"),
    ("no GTIN, raw", "10AB1234", "no product code"),
    ("not a barcode", "hello world", "Could not read 'hello world'"),
    ("impossible month", f"01{INFLIXIMAB}17271331", "Could not read"),
    ("impossible day", f"(01){INFLIXIMAB}(17)270230", "Could not read"),
    ("unknown AI in parentheses", f"(01){INFLIXIMAB}(999)X", "Could not read"),
    ("too long", "0" * 500, "too long"),
    ("control characters", "01\x00\x07", "characters no drug barcode carries"),
    ("non-ASCII digits", "٠١٢٣٤٥٦٧٨٩٠١٢", "characters no drug barcode carries"),
]


@pytest.mark.parametrize(("case", "typed", "words"), BAD, ids=[b[0] for b in BAD])
def test_malformed_scans_say_what_was_read(case, typed, words):
    with pytest.raises(BarcodeError) as exc:
        read_product_barcode(typed)
    assert words in exc.value.message


def test_the_message_shows_the_gs_separator_visibly():
    with pytest.raises(BarcodeError) as exc:
        read_product_barcode(f"(10)AB{GS}X")
    assert "\x1d" not in exc.value.message
    assert shown(f"a{GS}b") == "a<GS>b" and len(shown("x" * 200)) == 80


@pytest.mark.parametrize(
    ("gtin", "ndc10"),
    [("00357894030010", "5789403001"), ("357894030010", "5789403001"), ("00300690809014", "0069080901")],
)
def test_ndc10_from_gtin(gtin, ndc10):
    assert ndc10_from_gtin(gtin) == ndc10


@pytest.mark.parametrize("gtin", ["07032069804988", "10357894030017", "04012345678901", "012345678905", "123", "0035789403001x"])
def test_ndc10_from_gtin_refuses_what_is_not_a_us_drug_gtin(gtin):
    with pytest.raises(BarcodeError):
        ndc10_from_gtin(gtin)


def test_a_case_gtin_is_not_a_vial():
    with pytest.raises(BarcodeError) as exc:
        ndc10_from_gtin("10357894030017")
    assert "case or carton" in exc.value.message


def test_the_three_layouts_of_ten_digits():
    assert ndc_layouts("5789403001") == ("5789-4030-01", "57894-030-01", "57894-0300-1")


RESOLVE = [
    # (case, ndc10, known, expected)
    ("catalog's 11-digit form picks 5-3-2", "5789403001", ["57894-0030-01"], "57894-030-01"),
    ("catalog's 11-digit form picks 4-4-2", "0069080901", ["00069-0809-01"], "0069-0809-01"),
    ("11 digits without hyphens", "0069080901", ["00069080901"], "0069-0809-01"),
    ("charted as printed, 5-4-1", "6057541121", ["60575-4112-1"], "60575-4112-1"),
    ("nothing known: not guessed", "5789403001", [], None),
    ("only other products known", "5789403001", ["57894-0160-01", ""], None),
    ("two layouts known: not guessed", "5789403001", ["57894-030-01", "57894-0300-1"], None),
]


@pytest.mark.parametrize(("case", "ndc10", "known", "expected"), RESOLVE, ids=[r[0] for r in RESOLVE])
def test_resolve_ndc(case, ndc10, known, expected):
    assert resolve_ndc(ndc10, known) == expected


def test_printed_forms_cover_every_stored_form():
    forms = printed_forms("5789403001")
    assert {"57894-030-01", "57894-0030-01", "57894003001", "5789-4030-01", "57894-0300-1"} <= forms


WRISTBANDS = [
    ("plain MRN", "MRN-004711", "MRN-004711"),
    ("spaces and Enter", "  MRN-004711\n", "MRN-004711"),
    ("AIM identifier of a Code 128", "]C0MRN-004711", "MRN-004711"),
    ("GS1 GSRN, AI 8018", "8018123456789012345675", "123456789012345675"),
    ("GS1 GSRN in parentheses", "(8018)123456789012345675", "123456789012345675"),
]


@pytest.mark.parametrize(("case", "typed", "mrn"), WRISTBANDS, ids=[w[0] for w in WRISTBANDS])
def test_read_wristband(case, typed, mrn):
    assert read_wristband(typed) == mrn


@pytest.mark.parametrize("typed", ["", "   ", "x" * 300, "MRN\x00"])
def test_read_wristband_refuses_nothing_or_garbage(typed):
    with pytest.raises(BarcodeError):
        read_wristband(typed)


def test_same_mrn_ignores_case_and_spaces_only():
    assert same_mrn("mrn-004711", "MRN-004711 ")
    assert not same_mrn("MRN-00471", "MRN-004711")


def test_the_module_is_pure():
    """No Django imported by reading barcodes (like the coding engine)."""
    code = "import sys, charting.barcodes; assert not [m for m in sys.modules if m.startswith('django')], 'django imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))


GS1_ALPHABET = "0123456789()ABCDEFGHIJKLMNOPQRSTUVWXYZabcz-./ |^]\x1d"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=GS1_ALPHABET, max_size=60), st.from_regex(r"\A(01|17|10|21|8018|\(01\)|\(17\)|\(10\))[0-9A-Z\x1d()]{0,40}\Z")))
def test_any_text_reads_or_is_refused_with_a_message(text):
    """Whatever a scanner or a person types: a ProductScan, or BarcodeError
    with a message; never another exception (VAL-1)."""
    try:
        scan = read_product_barcode(text)
    except BarcodeError as exc:
        assert exc.message
    else:
        assert len(scan.gtin) == 14 and scan.gtin.startswith("003") and len(scan.ndc10) == 10
    try:
        assert read_wristband(text)
    except BarcodeError as exc:
        assert exc.message


@pytest.mark.parametrize("text", ["]A0", "]C1", " ]d1 "])
def test_a_symbology_prefix_alone_is_refused_with_a_message(text):
    """Found by the fuzz test on a fresh clone: read_wristband("]A0") returned ''."""
    with pytest.raises(BarcodeError, match="Nothing was scanned"):
        read_wristband(text)
