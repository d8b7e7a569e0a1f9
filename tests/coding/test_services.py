"""coding.services: suggest (idempotent in effect), accept (idempotent), audit rows."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from charting.models import Administration, Pause
from coding.engine import RULESET_VERSION, evaluate, parse_scenario
from coding.models import SuggestedLine, Suggestion
from coding.services import (
    CodingError,
    accept_all_lines,
    accept_line,
    suggest_for_encounter,
)
from tests.coding.test_payers import SCENARIOS, import_scenario
from tests.factories import amending

pytestmark = pytest.mark.django_db


def test_suggest_stores_lines_with_their_reasons(make_encounter):
    encounter = make_encounter(2)

    suggestion = suggest_for_encounter(encounter.pk)

    assert suggestion.is_current and suggestion.ruleset_version == RULESET_VERSION
    lines = list(suggestion.lines.order_by("position"))
    assert [(l.code, l.units) for l in lines] == [("96365", 1), ("96367", 1)]
    adm_ids = [str(pk) for pk in encounter.administrations.order_by("started_at").values_list("pk", flat=True)]
    assert lines[0].administrations == [adm_ids[0]]
    assert lines[0].minutes == 60
    assert lines[0].rules and all(r[0] in "RD" for r in lines[0].rules)
    assert lines[0].explanation
    assert suggestion.engine_input["id"] == str(encounter.pk)
    assert AuditEvent.objects.filter(action="coding.suggestion.created", object_id=str(suggestion.pk), patient_id=encounter.patient_id).count() == 1


def test_suggest_twice_leaves_one_current_suggestion(make_encounter):
    encounter = make_encounter(1)

    first = suggest_for_encounter(encounter.pk)
    second = suggest_for_encounter(str(encounter.pk))

    assert second.pk == first.pk
    assert Suggestion.objects.filter(encounter=encounter).count() == 1
    assert SuggestedLine.objects.filter(suggestion__encounter=encounter).count() == 1


def test_changed_documentation_replaces_the_suggestion_and_keeps_the_old(make_encounter, coder):
    encounter = make_encounter(1)
    first = suggest_for_encounter(encounter.pk)
    accept_line(first.lines.get(), actor=coder)
    adm = encounter.administrations.get()
    # A 20-minute pause: 60 - 20 = 40 minutes, still 96365 but other minutes.
    Pause.objects.create(administration=adm, paused_at=adm.started_at + dt.timedelta(minutes=10), resumed_at=adm.started_at + dt.timedelta(minutes=30))

    second = suggest_for_encounter(encounter.pk)

    assert second.pk != first.pk
    first.refresh_from_db()
    assert not first.is_current and first.lines.get().is_accepted
    assert list(Suggestion.objects.current().filter(encounter=encounter)) == [second]
    assert second.lines.get().minutes == 40
    assert AuditEvent.objects.get(action="coding.suggestion.created", object_id=str(second.pk)).detail["replaces"] == first.pk


def test_suggest_refuses_a_draft_and_an_unknown_encounter(make_encounter):
    draft = make_encounter(1, signed=False)
    with pytest.raises(CodingError):
        suggest_for_encounter(draft.pk)
    with pytest.raises(CodingError):
        suggest_for_encounter("00000000-0000-0000-0000-000000000000")
    with pytest.raises(CodingError):
        suggest_for_encounter("not-a-uuid")
    assert not Suggestion.objects.exists()


def test_no_stop_time_gives_a_warning_not_a_timed_line(make_encounter):
    encounter = make_encounter(1)
    with amending():
        Administration.objects.filter(encounter=encounter).update(stopped_at=None)

    suggestion = suggest_for_encounter(encounter.pk)

    assert not suggestion.lines.filter(code="96365").exists()
    assert suggestion.warnings and all(w["kind"] and w["message"] for w in suggestion.warnings)


def test_accept_line_is_idempotent_and_audited(make_encounter, coder):
    line = suggest_for_encounter(make_encounter(1).pk).lines.get()

    accepted = accept_line(line, actor=coder)
    first_at = accepted.accepted_at
    again = accept_line(line, actor=coder)

    assert accepted.accepted_by == coder and first_at is not None
    assert again.accepted_at == first_at
    assert AuditEvent.objects.filter(action="coding.line.accepted", object_id=str(line.pk), actor=coder).count() == 1


def test_accept_line_of_a_replaced_suggestion_is_refused(make_encounter, coder):
    encounter = make_encounter(1)
    old_line = suggest_for_encounter(encounter.pk).lines.get()
    with amending():  # the documentation was amended after signing
        Administration.objects.filter(encounter=encounter).update(dose_value=200)
    suggest_for_encounter(encounter.pk)

    with pytest.raises(CodingError):
        accept_line(old_line, actor=coder)
    old_line.refresh_from_db()
    assert not old_line.is_accepted


def test_accept_all_accepts_the_pending_lines(make_encounter, coder):
    suggestion = suggest_for_encounter(make_encounter(3).pk)
    accept_line(suggestion.lines.order_by("position").first(), actor=coder)

    accepted = accept_all_lines(suggestion, actor=coder)

    assert len(accepted) == suggestion.lines.count() - 1
    assert not suggestion.lines.filter(accepted_at__isnull=True).exists()


def test_drug_lines_keep_their_ndc_quantity_and_unit(tmp_path):
    encounter = import_scenario("pc-37", tmp_path)
    pure = evaluate(parse_scenario(SCENARIOS["pc-37"]))

    stored = Suggestion.objects.current().get(encounter=encounter)
    with_ndc = [(line.code, line.ndc, line.ndc_qualifier, line.ndc_quantity, line.ndc_unit) for line in stored.lines.exclude(ndc="")]
    assert with_ndc and with_ndc == [(line.code, line.ndc, line.ndc_qualifier, line.ndc_quantity, line.ndc_unit) for line in pure.lines if line.ndc]
    assert all(len(ndc) == 11 and qualifier == "N4" for _, ndc, qualifier, _, _ in with_ndc)


@pytest.mark.parametrize(
    "ndc_fields",
    [
        {"ndc": "5789403001", "ndc_qualifier": "N4"},  # 10 digits as printed, not 5-4-2
        {"ndc": "57894003001", "ndc_qualifier": ""},  # no qualifier
        {"ndc": "", "ndc_qualifier": "", "ndc_quantity": 3, "ndc_unit": "UN"},  # quantity without an NDC
        {"ndc": "57894003001", "ndc_qualifier": "N4", "ndc_quantity": 3, "ndc_unit": ""},  # quantity without its unit
        {"ndc": "57894003001", "ndc_qualifier": "N4", "ndc_quantity": 3, "ndc_unit": "MG"},  # not a qualifier
    ],
)
def test_suggested_line_ndc_constraints(make_encounter, ndc_fields):
    suggestion = suggest_for_encounter(make_encounter(1).pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        SuggestedLine.objects.create(suggestion=suggestion, position=99, code="J1745", units=1, explanation="x", **ndc_fields)
