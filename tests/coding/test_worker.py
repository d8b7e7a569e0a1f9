"""The wiring, end to end: sign -> after commit -> Redis -> a real worker -> Suggestion.

No eager mode and no mocks: `celery_worker_process` runs
`celery -A infusion_site worker` on the test database and Redis.
"""

import time

import pytest

from charting.models import Encounter
from charting.services import sign_encounter
from coding.models import Suggestion
from coding.tasks import suggest_for_encounter_task

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_for_suggestion(encounter_id, worker, timeout=30.0) -> Suggestion:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        suggestion = Suggestion.objects.current().filter(encounter_id=encounter_id).first()
        if suggestion is not None:
            return suggestion
        if worker.poll() is not None:
            pytest.fail(f"worker died:\n{worker.log_path.read_text()}")
        time.sleep(0.25)
    pytest.fail(f"no suggestion after {timeout} s; worker log:\n{worker.log_path.read_text()}")


def test_signing_an_encounter_codes_it_on_the_worker(celery_worker_process, make_encounter, nurse):
    encounter = make_encounter(2, signed=False)

    # Commits (transactional test), then enqueues suggest_for_encounter_task on Redis.
    sign_encounter(encounter, actor=nurse)

    suggestion = _wait_for_suggestion(encounter.pk, celery_worker_process)
    assert sorted((line.code, line.units) for line in suggestion.lines.all()) == [("96365", 1), ("96367", 1)]
    assert Encounter.objects.get(pk=encounter.pk).is_signed


def test_a_redelivered_task_leaves_one_current_suggestion(celery_worker_process, make_encounter):
    encounter = make_encounter(1)
    suggest_for_encounter_task.delay(str(encounter.pk))
    first = _wait_for_suggestion(encounter.pk, celery_worker_process)

    suggest_for_encounter_task.delay(str(encounter.pk))
    # An unknown encounter is logged and dropped, not retried forever; it also
    # proves the second task above has been consumed once this one is.
    suggest_for_encounter_task.delay("00000000-0000-0000-0000-000000000000")
    deadline = time.monotonic() + 30
    while "00000000-0000-0000-0000-000000000000" not in celery_worker_process.log_path.read_text():
        assert time.monotonic() < deadline, celery_worker_process.log_path.read_text()
        time.sleep(0.25)

    assert list(Suggestion.objects.filter(encounter=encounter)) == [first]
