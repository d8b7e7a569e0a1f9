"""CON-1 with real concurrency: two coders' saves of the same encounter reach
PostgreSQL at the same moment on two connections, both posting the version
they loaded. Exactly one is applied; the other is refused with what changed."""

from __future__ import annotations

import pytest

from coding import services
from coding.models import EncounterReview, FinalLine
from tests.factories import UserFactory
from tests.security.test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_coders_save_at_once_one_wins_the_other_gets_a_conflict(review_reasons, make_encounter, coder, clinic):
    second = UserFactory(username="coder2", roles=["coder"], clinics=[clinic])
    encounter = make_encounter(2)
    lines = {line.code: line for line in services.suggest_for_encounter(encounter.pk).lines.all()}

    results = run_together(
        lambda: services.change_line(lines["96365"], code="96365", units=2, modifiers="", reason="units_miscounted", actor=coder, version=0),
        lambda: services.delete_line(lines["96367"], reason="duplicate_line", actor=second, version=0),
    )

    outcomes = sorted(kind for kind, _ in results)
    assert outcomes == ["error", "ok"], results
    error = next(value for kind, value in results if kind == "error")
    assert isinstance(error, services.ReviewConflict) and "Nothing of yours was saved" in str(error)
    assert len(error.changes) == 1
    assert FinalLine.objects.count() == 1
    assert EncounterReview.objects.get(encounter=encounter).version == 1
