"""State changes of the coding workflow: one function per change.

Each runs in one transaction, locks what it changes, writes its audit row in
the same transaction and raises `CodingError` (with a message a coder can read)
when the change is not allowed.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import record
from charting.models import Encounter
from coding.documentation import doc_to_json, encounter_doc, to_json
from coding.engine import evaluate

from .models import SuggestedLine, Suggestion


class CodingError(Exception):
    """A coding action that cannot be done; `str(exc)` is shown to the user."""


@transaction.atomic
def suggest_for_encounter(encounter_id: uuid.UUID | str) -> Suggestion:
    """Run the engine over a signed encounter and store its lines as the current suggestion.

    Safe to repeat (the Celery task is `acks_late`): the encounter row is locked,
    so two runs cannot interleave; when the current suggestion was made from
    the same documentation by the same rule-set version, it is returned
    unchanged (the coder's acceptances survive a redelivered task). Otherwise
    the old suggestion is kept, marked not current, and a new one is stored.

    Raises CodingError when the encounter does not exist or is not signed.
    """
    try:
        # of=("self",): lock only the encounter row, not the joined clinic.
        encounter = Encounter.objects.select_for_update(of=("self",)).select_related("clinic").get(pk=encounter_id)
    except (Encounter.DoesNotExist, ValidationError) as exc:
        raise CodingError(f"Encounter {encounter_id} does not exist.") from exc
    if not encounter.is_signed:
        raise CodingError("Only a signed encounter can be coded.")

    doc = encounter_doc(encounter)
    engine_input = doc_to_json(doc)
    result = evaluate(doc)

    current = Suggestion.objects.current().filter(encounter=encounter).first()
    if current is not None and current.ruleset_version == result.ruleset_version and current.engine_input == engine_input:
        return current
    if current is not None:
        current.is_current = False
        current.save(update_fields=["is_current"])

    suggestion = Suggestion.objects.create(
        encounter=encounter,
        ruleset_version=result.ruleset_version,
        engine_input=engine_input,
        not_billed=to_json(result.not_billed),
        warnings=to_json(result.warnings),
        is_current=True,
    )
    SuggestedLine.objects.bulk_create(
        SuggestedLine(
            suggestion=suggestion,
            position=position,
            code=line.code,
            units=line.units,
            modifiers=list(line.modifiers),
            administrations=list(line.administrations),
            minutes=line.minutes,
            rules=list(line.rules),
            explanation=line.explanation,
            date_of_service=line.date_of_service,
        )
        for position, line in enumerate(result.lines, start=1)
    )
    record(
        "coding.suggestion.created",
        actor=None,
        obj=suggestion,
        patient_id=encounter.patient_id,
        detail={
            "encounter": str(encounter.pk),
            "ruleset_version": result.ruleset_version,
            "lines": [_line_summary(line) for line in result.lines],
            "replaces": current.pk if current is not None else None,
        },
    )
    return suggestion


def _line_summary(line: Any) -> str:
    mods = "-".join(line.modifiers)
    return f"{line.code}x{line.units}" + (f"-{mods}" if mods else "")


@transaction.atomic
def accept_line(line: SuggestedLine, *, actor: Any) -> SuggestedLine:
    """The coder accepts one suggested line as it is. Accepting twice is a no-op.

    Raises CodingError when the line belongs to a suggestion that has been
    replaced (the documentation changed and was re-coded since the page loaded).
    """
    # Lock the suggestion too: a re-code marking it not current (suggest_for_encounter)
    # either commits first, and is_current is read after it, or waits for this accept.
    locked = SuggestedLine.objects.select_for_update(of=("self", "suggestion")).select_related("suggestion__encounter").get(pk=line.pk)
    if locked.is_accepted:
        return locked
    if not locked.suggestion.is_current:
        raise CodingError("This suggestion has been replaced since the page was loaded; reload the encounter.")
    locked.accepted_by = actor
    locked.accepted_at = timezone.now()
    locked.save(update_fields=["accepted_by", "accepted_at"])
    record(
        "coding.line.accepted",
        actor=actor,
        obj=locked,
        patient_id=locked.suggestion.encounter.patient_id,
        detail={"encounter": str(locked.suggestion.encounter_id), "line": _line_summary(locked)},
    )
    return locked


@transaction.atomic
def accept_all_lines(suggestion: Suggestion, *, actor: Any) -> list[SuggestedLine]:
    """Accept every line of `suggestion` not accepted yet; returns the lines accepted now."""
    if not Suggestion.objects.filter(pk=suggestion.pk, is_current=True).exists():
        raise CodingError("This suggestion has been replaced since the page was loaded; reload the encounter.")
    pending = suggestion.lines.filter(accepted_at__isnull=True).order_by("position")
    return [accept_line(line, actor=actor) for line in pending]
