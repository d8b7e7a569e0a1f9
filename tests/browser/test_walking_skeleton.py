"""The whole path of one encounter in a real browser, with a real Celery worker.

Nurse (tablet viewport): log in, open today's encounter, add an access site, add
a drug, tap Start and Stop, sign. Signing enqueues the coding task after commit;
the worker (Redis broker, test database) runs the engine. Coder: log in, open
the queue, see the suggested line with its rule ids, accept it.
"""

import datetime as dt
import time

import pytest
from django.utils import timezone

from charting.models import Administration, Encounter
from coding.models import Suggestion
from tests.browser.flows import chart_infusion, log_in, sign
from tests.factories import DrugFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_for_suggestion(encounter, seconds=45):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        suggestion = Suggestion.objects.current().filter(encounter=encounter).first()
        if suggestion is not None:
            return suggestion
        time.sleep(0.3)
    pytest.fail(f"no suggestion for the signed encounter after {seconds} s")


def test_nurse_charts_worker_codes_coder_accepts(live_server, page_factory, celery_worker_process, nurse, coder, clinic):
    DrugFactory(name="infliximab", hcpcs="J1745", admin_family="chemo_complex")
    PatientFactory(clinic=clinic, family_name="Quill", given_name="Hester", mrn="E2E-1")

    # --- nurse at the chair -------------------------------------------------
    page = page_factory((1024, 768))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")
    chart_infusion(page, patient="Quill, Hester — MRN E2E-1", drug="infliximab", dose="500")

    # The taps stamped server time a moment apart; a test cannot wait two hours,
    # so the clinical start is moved back the way a nurse would correct it.
    adm = Administration.objects.get(drug__name="infliximab")
    assert adm.started_at is not None and adm.stopped_at is not None
    assert timezone.now() - adm.stopped_at < dt.timedelta(minutes=5)
    from charting.services import correct_time

    correct_time(adm, field="started_at", new_value=adm.stopped_at - dt.timedelta(minutes=125), reason="started before the tablet was at the chair", actor=nurse)

    page.reload()
    sign(page)
    encounter = Encounter.objects.get(patient__mrn="E2E-1")
    assert encounter.status == "signed"

    # --- the worker codes it ------------------------------------------------
    suggestion = _wait_for_suggestion(encounter)
    codes = sorted((line.code, line.units) for line in suggestion.lines.all() if not line.code.startswith(("J", "Q")))
    # 125 drip-to-drip minutes of a chemo/complex drug: 96413 + one add-on hour (R20: 91-150 min).
    assert codes == [("96413", 1), ("96415", 1)]

    # --- coder at the desk --------------------------------------------------
    desk = page_factory((1280, 900))
    desk.on("pageerror", lambda e: errors.append(str(e)))
    log_in(desk, live_server.url, "coder")
    desk.click('[data-testid="queue-row"] a')
    line = desk.locator('[data-testid="suggested-line"][data-code="96413"]')
    assert "R" in line.inner_text()  # rule ids are shown with the line
    line.locator('[data-testid="accept-line"]').click()
    desk.wait_for_selector('[data-testid="suggested-line"][data-code="96413"] [data-testid="line-accepted"]')
    assert suggestion.lines.get(code="96413").accepted_by == coder
    assert errors == []
