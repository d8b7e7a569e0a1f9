"""State changes of the coding workflow: one function per change.

Each runs in one transaction, locks what it changes, writes its audit row in
the same transaction and raises `CodingError` (with a message a coder can read)
when the change is not allowed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import record
from charting.models import Encounter
from coding.documentation import doc_to_json, encounter_doc, to_json
from coding.engine import MEDICARE, CodingResult, evaluate, policy_for
from coding.engine.policy import PolicyError

from .models import Payer, SuggestedLine, Suggestion


class CodingError(Exception):
    """A coding action that cannot be done; `str(exc)` is shown to the user."""


@dataclass(frozen=True, slots=True)
class Coding:
    """The engine's answer for an encounter as documented now, under its payer's
    policy as stored now; nothing written yet.

    `engine_input` is the EncounterDoc as JSON, `policy` the policy applied
    (`PayerPolicy.to_dict()`): together with the rule-set version they replay
    `result`.
    """

    engine_input: dict[str, Any]
    policy: dict[str, Any]
    result: CodingResult


def code_encounter(encounter: Encounter) -> Coding:
    """Run the engine over `encounter` with the policy of the payer whose code
    it charts (`Encounter.payer`). Reads only (constant queries: the documentation
    and the payer with its overrides).

    A payer code with no `Payer` row is passed on as no policy: the engine then
    applies its own fallback (Medicare defaults) and adds a `payer_policy`
    warning, and `policy` records that fallback. Raises CodingError when the
    engine rejects a value stored for the payer.
    """
    doc = encounter_doc(encounter)
    try:
        stored = Payer.objects.policy_for(encounter.payer)
    except PolicyError as exc:
        raise CodingError(f"The policy of payer {encounter.payer!r} cannot be applied ({exc.field}: {exc.message}); an admin must correct it.") from exc
    result = evaluate(doc, stored)
    # What evaluate() applied when given no policy (engine.evaluate's own choice).
    applied = stored or policy_for(doc.payer) or MEDICARE
    # to_json: tuples become lists, as the JSONField gives them back, so a stored
    # policy compares equal to a freshly computed one.
    return Coding(engine_input=doc_to_json(doc), policy=to_json(applied.to_dict()), result=result)


def _signed_encounter(encounter_id: uuid.UUID | str, *, lock: bool) -> Encounter:
    encounters = Encounter.objects.select_related("clinic")
    if lock:
        # of=("self",): lock only the encounter row, not the joined clinic.
        encounters = encounters.select_for_update(of=("self",))
    try:
        encounter = encounters.get(pk=encounter_id)
    except (Encounter.DoesNotExist, ValidationError) as exc:
        raise CodingError(f"Encounter {encounter_id} does not exist.") from exc
    if not encounter.is_signed:
        raise CodingError("Only a signed encounter can be coded.")
    return encounter


@transaction.atomic
def suggest_for_encounter(encounter_id: uuid.UUID | str) -> Suggestion:
    """Run the engine over a signed encounter and store its lines as the current suggestion.

    Safe to repeat (the Celery task is `acks_late`): the encounter row is locked,
    so two runs cannot interleave; when the current suggestion was made from
    the same documentation by the same rule-set version under the same payer
    policy, it is returned unchanged (the coder's acceptances survive a
    redelivered task). Otherwise the old suggestion is kept, marked not
    current, and a new one is stored. Editing a payer never touches stored
    suggestions: only a new run (`manage.py recode --save`) applies it.

    Raises CodingError when the encounter does not exist or is not signed.
    """
    encounter = _signed_encounter(encounter_id, lock=True)
    coding = code_encounter(encounter)
    result = coding.result

    current = Suggestion.objects.current().filter(encounter=encounter).first()
    if current is not None and (current.ruleset_version, current.engine_input, current.policy) == (result.ruleset_version, coding.engine_input, coding.policy):
        return current
    if current is not None:
        current.is_current = False
        current.save(update_fields=["is_current"])

    suggestion = Suggestion.objects.create(
        encounter=encounter,
        ruleset_version=result.ruleset_version,
        engine_input=coding.engine_input,
        policy=coding.policy,
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
            ndc=line.ndc or "",
            ndc_qualifier=line.ndc_qualifier or "",
            ndc_quantity=line.ndc_quantity,
            ndc_unit=line.ndc_unit or "",
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
            "policy": coding.policy.get("name"),
            "lines": [_line_summary(line) for line in result.lines],
            "replaces": current.pk if current is not None else None,
        },
    )
    return suggestion


def _line_summary(line: Any) -> str:
    mods = "-".join(line.modifiers)
    return f"{line.code}x{line.units}" + (f"-{mods}" if mods else "")


@dataclass(frozen=True, slots=True)
class Recode:
    """What re-coding an encounter now would change, against its stored current
    suggestion (`stored`, None when it was never coded).

    Lines are compared as text, "code×units-modifiers" (plus "on <date>" when a
    line is dated away from the encounter's date, R14/D4): `changed` pairs a
    removed and an added line with the same code; `policy_changes` lists
    (setting, old, new) for every policy setting that differs.
    """

    encounter: Encounter
    stored: Suggestion | None
    coding: Coding
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, str], ...]
    policy_changes: tuple[tuple[str, Any, Any], ...]

    @property
    def ruleset_versions(self) -> tuple[str | None, str]:
        return (self.stored.ruleset_version if self.stored else None, self.coding.result.ruleset_version)

    @property
    def documentation_changed(self) -> bool:
        return self.stored is None or self.stored.engine_input != self.coding.engine_input

    @property
    def lines_changed(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def is_unchanged(self) -> bool:
        """True when `suggest_for_encounter` would keep the stored suggestion."""
        old, new = self.ruleset_versions
        return not self.documentation_changed and old == new and self.stored is not None and self.stored.policy == self.coding.policy


def _line_text(code: str, units: int, modifiers: Any, when: date | None, encounter_date: date) -> str:
    text = f"{code}×{units}" + "".join(f"-{m}" for m in modifiers)
    return text + (f" on {when.isoformat()}" if when and when != encounter_date else "")


def preview_recode(encounter_id: uuid.UUID | str) -> Recode:
    """Re-code a signed encounter from its current documentation with the current
    engine and payer policy, and compare with its stored current suggestion.
    Writes nothing (`suggest_for_encounter` stores). Raises CodingError when the
    encounter does not exist or is not signed."""
    encounter = _signed_encounter(encounter_id, lock=False)
    coding = code_encounter(encounter)
    stored = Suggestion.objects.current().filter(encounter=encounter).prefetch_related("lines").first()
    day = encounter.date_of_service
    old = [_line_text(l.code, l.units, l.modifiers, l.date_of_service, day) for l in (stored.lines.all() if stored else [])]
    new = [_line_text(l.code, l.units, l.modifiers, l.date_of_service, day) for l in coding.result.lines]
    # Multiset difference, keeping each side's order.
    removed, added = list(old), []
    for text in new:
        if text in removed:
            removed.remove(text)
        else:
            added.append(text)
    changed = []
    for text in list(removed):
        code = text.split("×", 1)[0]
        partner = next((a for a in added if a.split("×", 1)[0] == code), None)
        if partner is not None:
            removed.remove(text)
            added.remove(partner)
            changed.append((text, partner))
    policy_changes = stored.policy_changes(coding.policy) if stored else tuple((key, None, value) for key, value in coding.policy.items())
    return Recode(
        encounter=encounter,
        stored=stored,
        coding=coding,
        added=tuple(added),
        removed=tuple(removed),
        changed=tuple(changed),
        policy_changes=policy_changes,
    )


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
