"""Issue #8's end-to-end visit: a nurse charts a whole rituximab visit on a
tablet (landscape and portrait) through the real pages only, signs it, the
Celery worker codes it and the coder sees the suggested lines.

Arranged before the browser opens (and nothing charted by a service call after
that): the shared drug catalog (`seed_drug_catalog`), a patient and her draft
encounter. The encounter is dated the day before today in the clinic's zone:
the Start/Stop/Pause taps stamp the server's clock seconds apart, a test cannot
wait four hours, and the nurse moves each time to when it happened with the
page's "Correct a time" (with a reason). A date of service of yesterday keeps
every corrected time in the past (TIM-2) whatever hour the suite runs at; the
taps of today stay within "the night after" the date of service.

A screenshot of each step is saved to docs/screenshots/visit-<viewport>-NN-<step>.png
(always, as tests/browser/test_reports_screenshots.py does); the README links
them. Any Content-Security-Policy violation fails the test (page_factory).
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from charting.barcodes import gtin_for_ndc
from charting.models import Administration, Encounter, PatientScan, Pause, Reaction, TimeCorrection, VialUse, VitalSigns
from coding.models import Suggestion
from tests.browser.flows import log_in, sign
from tests.factories import EncounterFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MRN = "RTX-VISIT-1"


class Steps:
    """Numbered screenshots of one viewport's visit."""

    def __init__(self, page, viewport: str):
        self.page, self.viewport, self.n = page, viewport, 0

    def shot(self, step: str, page=None) -> None:
        self.n += 1
        (page or self.page).screenshot(path=str(SCREENSHOTS / f"visit-{self.viewport}-{self.n:02d}-{step}.png"), full_page=True)


def _correct(page, label: str, target: str, when: dt.datetime, reason: str) -> None:
    """'Correct a time' on `label`'s card: `target` is the option's text
    ("Start", "Stop", "Pause 1: paused", ...), `when` a local wall-clock time."""
    card = page.locator(f'[data-testid="administration-{label}"]')
    card.locator(f'[data-testid="correct-{label}"]').click()
    card.locator(f'[data-testid="fix-{label}-target"]').select_option(label=target)
    card.locator(f'[data-testid="fix-{label}-new-value"]').fill(when.strftime("%Y-%m-%dT%H:%M"))
    card.locator(f'[data-testid="fix-{label}-reason"]').fill(reason)
    card.locator(f'[data-testid="correct-submit-{label}"]').click()
    page.wait_for_selector(f'[data-testid="corrections-{label}"] li:nth-child({TimeCorrection.objects.filter(administration__label=label).count() + 1})')


def _add_drug(page, *, drug: str, route: str, dose: str) -> None:
    from charting.models import Drug

    page.click('[data-testid="add-administration-toggle"]')
    page.select_option('[data-testid="adm-drug"]', str(Drug.objects.get(name=drug).pk))  # the option reads "name (brand) — unverified"
    page.select_option('[data-testid="adm-route"]', route)
    page.select_option('[data-testid="adm-access-site"]', index=1)
    page.fill('[data-testid="adm-dose-value"]', dose)
    page.select_option('[data-testid="adm-dose-unit"]', "mg")
    page.click('[data-testid="add-administration-submit"]')


def _wait_for_suggestion(encounter, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        suggestion = Suggestion.objects.current().filter(encounter=encounter).first()
        if suggestion is not None:
            return suggestion
        time.sleep(0.3)
    pytest.fail(f"no suggestion for the signed encounter after {seconds} s")


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)], ids=["landscape", "portrait"])
def test_nurse_charts_a_rituximab_visit_and_the_coder_sees_the_lines(live_server, page_factory, celery_worker_process, nurse, coder, clinic, viewport):
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    from charting.models import Drug

    rituximab = Drug.objects.get(name="rituximab")
    assert (rituximab.hcpcs, rituximab.example_ndc) == ("J9312", "50242-0051-21")  # the 11-digit 5-4-2 form of 50242-051-21
    patient = PatientFactory(clinic=clinic, family_name="Quill", given_name="Rosa", mrn=MRN)
    today = timezone.localdate(timezone.now(), clinic.tz)
    day = today - dt.timedelta(days=1)
    encounter = EncounterFactory(patient=patient, date_of_service=day)
    at = lambda hh, mm: dt.datetime.combine(day, dt.time(hh, mm))  # noqa: E731  (local wall clock)
    expiry = dt.date(today.year + 2, 6, 30)
    # The catalog's rituximab example NDC 50242-051-21 (5-3-2) inside its GTIN;
    # an invented lot, a future expiry (day 00 = the month's last day).
    vial_barcode = f"01{gtin_for_ndc('5024205121')}17{expiry:%y%m}00" + "10RTXLOT42"

    name = "landscape" if viewport[0] > viewport[1] else "portrait"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = page_factory(viewport=viewport)
    steps = Steps(page, name)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")

    # 1. Open the encounter.
    page.goto(f"{live_server.url}/nurse/encounters/{encounter.pk}/")
    page.wait_for_selector('[data-testid="patient-header"]:has-text("MRN RTX-VISIT-1")')
    steps.shot("open")

    # 2. A peripheral IV, then its first check.
    page.click('[data-testid="add-site-toggle"]')
    page.select_option('[data-testid="site-kind"]', "peripheral_iv")
    page.fill('[data-testid="site-location"]', "left forearm")
    page.click('[data-testid="add-site-submit"]')
    page.wait_for_selector('[data-testid="site-A"]')
    steps.shot("access-site")
    page.select_option('[data-testid="site-check-finding-A"]', "patent")
    page.click('[data-testid="site-check-submit-A"]')
    page.wait_for_selector('[data-testid="site-checked-A"]:has-text("checked 0 min ago")')
    steps.shot("site-check")

    # 3. The wristband: the right MRN.
    page.locator('[data-testid="wristband-scan"]').click()
    page.keyboard.type(MRN)
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="patient-confirmed"]')
    steps.shot("wristband")

    # 4. Premedications as IV pushes, each started and stopped.
    premeds = (("diphenhydramine HCl", "diphenhydramine", "50"), ("methylprednisolone sodium succinate", "methylprednisolo", "100"))
    for drug, label, dose in premeds:
        _add_drug(page, drug=drug, route="iv_push", dose=dose)
        page.click(f'[data-testid="start-{label}"]')
        page.wait_for_selector(f'[data-testid="stop-{label}"]')
        page.click(f'[data-testid="stop-{label}"]')
        page.wait_for_selector(f'[data-testid="administration-{label}"][data-state="stopped"]')
    steps.shot("premedications")

    # 5. Rituximab 1000 mg as an IV infusion; vitals before it starts.
    _add_drug(page, drug="rituximab", route="iv_infusion", dose="1000")
    page.wait_for_selector('[data-testid="administration-rituximab"][data-state="not_started"]')
    steps.shot("rituximab-added")
    page.fill('[data-testid="vitals-systolic-mmhg"]', "124")
    page.fill('[data-testid="vitals-diastolic-mmhg"]', "78")
    page.fill('[data-testid="vitals-weight-kg"]', "68")
    page.click('[data-testid="vitals-submit"]')
    page.wait_for_selector('[data-testid="vitals-bp-1"]:has-text("124/78")')
    steps.shot("vitals-before")

    # 6. Scan a vial: NDC (the catalog's 5-3-2 layout), lot and expiry filled; save 10 x 100 mg.
    adm = Administration.objects.get(encounter=encounter, label="rituximab")
    page.locator('[data-testid="vial-scan-rituximab"]').click()
    page.keyboard.type(vial_barcode)
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="vial-scan-result-rituximab"]')
    assert page.locator(f"#id_vial_{adm.pk}_ndc").input_value() == "50242-051-21"
    assert page.locator(f"#id_vial_{adm.pk}_lot").input_value() == "RTXLOT42"
    assert page.locator(f"#id_vial_{adm.pk}_expiry").input_value() == expiry.isoformat()
    page.fill(f"#id_vial_{adm.pk}_size_value", "100")
    page.fill(f"#id_vial_{adm.pk}_count", "10")
    steps.shot("vial-scanned")
    # The save's own answer first (its status in the failure if refused; CI's
    # loaded machine once took the list past 15 s), then the list it shows.
    with page.expect_response(lambda r: r.url.endswith(f"/administrations/{adm.pk}/vials/") and r.request.method == "POST", timeout=45_000) as saved:
        page.click('[data-testid="vial-save-rituximab"]')
    assert saved.value.status == 200, (saved.value.status, saved.value.text()[:500])
    page.wait_for_selector('[data-testid="vial-list-rituximab"]:has-text("RTXLOT42")')
    steps.shot("vials-saved")

    # 7. Start; a grade 2 reaction (flushing) pauses it; Resume.
    page.click('[data-testid="start-rituximab"]')
    page.wait_for_selector('[data-testid="administration-rituximab"][data-state="running"]')
    assert page.locator('[data-testid="next-threshold-rituximab"]').inner_text().startswith("96413 at 16 min")
    steps.shot("rituximab-running")
    page.click('[data-testid="reaction-toggle"]')
    assert page.is_checked(f'input[name="reaction-administrations"][value="{adm.pk}"]')
    page.select_option('[data-testid="reaction-grade"]', "2")
    page.check('input[name="reaction-symptoms"][value="flushing"]')
    with page.expect_navigation():
        page.click('[data-testid="reaction-submit"]')
    page.wait_for_selector('[data-testid="administration-rituximab"][data-state="paused"]')
    page.wait_for_selector('[data-testid="reaction-grade-1"]:has-text("Grade 2")')
    steps.shot("reaction-paused")
    page.click('[data-testid="resume-rituximab"]')
    page.wait_for_selector('[data-testid="administration-rituximab"][data-state="running"]')
    steps.shot("resumed")

    # 8. Vitals again, then Stop.
    page.click('[data-testid="vitals-toggle"]')
    page.fill('[data-testid="vitals-systolic-mmhg"]', "118")
    page.fill('[data-testid="vitals-diastolic-mmhg"]', "74")
    page.click('[data-testid="vitals-submit"]')
    page.wait_for_selector('[data-testid="vitals-bp-1"]:has-text("118/74")')
    steps.shot("vitals-again")
    page.click('[data-testid="stop-rituximab"]')
    page.wait_for_selector('[data-testid="administration-rituximab"][data-state="stopped"]')
    steps.shot("stopped")

    # 9. The times as they happened, each corrected with a reason (originals kept):
    # pushes 09:00-09:02 and 09:05-09:07; rituximab 09:15-13:45 with the
    # reaction's pause 10:30-10:50 = 250 running minutes (4 h 10 min).
    reason = "charted after the visit from the infusion record"
    page.reload()  # the reaction re-rendered the page; start from a fresh one
    _correct(page, "diphenhydramine", "Start", at(9, 0), reason)
    _correct(page, "diphenhydramine", "Stop", at(9, 2), reason)
    _correct(page, "methylprednisolo", "Start", at(9, 5), reason)
    _correct(page, "methylprednisolo", "Stop", at(9, 7), reason)
    _correct(page, "rituximab", "Start", at(9, 15), reason)
    _correct(page, "rituximab", "Pause 1: paused", at(10, 30), reason)
    _correct(page, "rituximab", "Pause 1: resumed", at(10, 50), reason)
    _correct(page, "rituximab", "Stop", at(13, 45), reason)
    assert page.inner_text('[data-testid="minutes-rituximab"]') == "250"
    steps.shot("times-corrected")

    # 10. Waste: none (10 x 100 mg opened for 1000 mg).
    page.check('[data-testid="waste-none-rituximab"]')
    page.click('[data-testid="waste-save-rituximab"]')
    page.wait_for_selector('[data-testid="waste-rituximab"]:has-text("Waste: none")')
    steps.shot("waste-confirmed")

    # 11. Sign.
    sign(page)
    steps.shot("signed")
    encounter = Encounter.objects.get(pk=encounter.pk)
    assert encounter.status == "signed" and encounter.signed_by == nurse

    # What the pages charted.
    adm.refresh_from_db()
    tz = clinic.tz
    assert (timezone.localtime(adm.started_at, tz).time(), timezone.localtime(adm.stopped_at, tz).time()) == (dt.time(9, 15), dt.time(13, 45))
    pause = Pause.objects.get(administration=adm)
    assert (timezone.localtime(pause.paused_at, tz).time(), timezone.localtime(pause.resumed_at, tz).time()) == (dt.time(10, 30), dt.time(10, 50))
    assert pause.reason.startswith("Reaction grade 2: flushing")
    assert Reaction.objects.get(encounter=encounter).grade == 2
    assert VitalSigns.objects.filter(encounter=encounter).count() == 2
    assert list(PatientScan.objects.values_list("result", flat=True)) == ["confirmed"]
    vial = VialUse.objects.get(administration=adm)
    assert (vial.ndc, vial.lot, vial.expiry, vial.count, vial.size_value) == ("50242-051-21", "RTXLOT42", expiry, 10, Decimal("100"))
    assert adm.dose_value == Decimal("1000") and adm.waste_confirmed

    # 12. The worker codes the signed encounter; the coder reads the lines.
    suggestion = _wait_for_suggestion(encounter)
    desk = page_factory((1280, 900))
    desk.on("pageerror", lambda e: errors.append(str(e)))
    log_in(desk, live_server.url, "coder")
    desk.goto(f"{live_server.url}/coder/")
    with desk.expect_navigation():
        desk.click('[data-testid="queue-row"] a')
    shown = {}
    for line in desk.locator('[data-testid="suggested-line"]').all():
        modifiers = "".join(m.inner_text() for m in line.locator('[data-testid="line-modifier"]').all())
        shown[line.get_attribute("data-code")] = (int(line.locator('[data-testid="line-units"]').inner_text()), modifiers)
    steps.shot("coder-review", page=desk)
    # By the rules (coding-rules.md), as the engine codes them:
    #  96413 x1   rituximab, chemo/complex (R35), the reason for the visit: the one initial (R4, R5),
    #             its first hour; the pushes given before it are not initial for that (R7);
    #  96415 x3   add-on hours of 250 running minutes, the 20-minute pause excluded (R15, R17):
    #             211-270 min = 3 (R20: > 30 min beyond the last full hour);
    #  96375 x2   one push per new non-chemo drug besides the initial (R27, R8);
    #  J9312 x100 rituximab 1000 mg / 10 mg (R46), JZ: none wasted from single-dose vials (R48),
    #             NDC 50242-051-21 as 11 digits 50242005121 (R49);
    #  J1200 x1   diphenhydramine 50 mg ("up to 50 mg"); J2930 x1 methylprednisolone 100 mg: the
    #             smallest of its "up to" codes that covers the dose (J2930 up to 125 mg, not
    #             J2920 up to 40 mg x3; R46, the catalog's note, shared scenario pc-28).
    expected = {"96413": (1, ""), "96415": (3, ""), "96375": (2, ""), "J9312": (100, "-JZ"), "J1200": (1, ""), "J2930": (1, "")}
    assert shown == expected
    lines = {line.code: line for line in suggestion.lines.all()}
    assert {code: (line.units, "".join(f"-{m}" for m in line.modifiers)) for code, line in lines.items()} == expected
    assert lines["96415"].minutes == 250
    assert (lines["J9312"].ndc, lines["J9312"].ndc_qualifier) == ("50242005121", "N4")
    ndc = desk.locator('[data-testid="suggested-line"][data-code="J9312"] [data-testid="line-ndc"]').inner_text()
    assert "N4 50242005121" in ndc
    assert errors == []
