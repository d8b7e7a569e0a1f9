"""State changes of the coding workflow: one function per change.

Each runs in one transaction, locks what it changes, writes its audit row in
the same transaction and raises `CodingError` (with a message a coder can read)
when the change is not allowed.
"""

from __future__ import annotations

import re
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

from .models import (
    DocumentationQuery,
    EncounterReview,
    FinalAction,
    FinalLine,
    OverrideReason,
    Payer,
    QueryStatus,
    ReviewStatus,
    SuggestedLine,
    Suggestion,
)


class CodingError(Exception):
    """A coding action that cannot be done; `str(exc)` is shown to the user.
    `field` names the form field the message belongs to, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ReviewConflict(CodingError):
    """A coder's save posted the review version its page loaded, and another
    save has happened since (CON-1): nothing was written. `changes` lists, in
    words, what was saved after that version; the view answers 409."""

    def __init__(self, review: EncounterReview, posted: int, changes: list[str]):
        who = _person(review.updated_by) if review.updated_by else "someone"
        when = timezone.localtime(review.updated_at, review.encounter.clinic.tz).strftime("%H:%M") if review.updated_at else "meanwhile"
        super().__init__(
            f"{who} saved this encounter at {when}, after your page was loaded (version {review.version}, your page had {posted}). "
            "Nothing of yours was saved: reload the encounter, check their changes and redo yours if still needed."
        )
        self.changes = changes
        self.version = review.version


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


def diff_lines(old_lines: Any, new_lines: Any, encounter_date: date) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(added, removed, changed) between two sets of lines (SuggestedLine rows or
    engine Lines: anything with code, units, modifiers, date_of_service), as
    "code×units-modifiers" texts; `changed` pairs a removed and an added line
    with the same code (units or modifiers changed). Order of each side kept."""
    old = [_line_text(l.code, l.units, l.modifiers, l.date_of_service, encounter_date) for l in old_lines]
    new = [_line_text(l.code, l.units, l.modifiers, l.date_of_service, encounter_date) for l in new_lines]
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
    return tuple(added), tuple(removed), tuple(changed)


def preview_recode(encounter_id: uuid.UUID | str) -> Recode:
    """Re-code a signed encounter from its current documentation with the current
    engine and payer policy, and compare with its stored current suggestion.
    Writes nothing (`suggest_for_encounter` stores). Raises CodingError when the
    encounter does not exist or is not signed."""
    encounter = _signed_encounter(encounter_id, lock=False)
    coding = code_encounter(encounter)
    stored = Suggestion.objects.current().filter(encounter=encounter).prefetch_related("lines").first()
    added, removed, changed = diff_lines(stored.lines.all() if stored else [], coding.result.lines, encounter.date_of_service)
    policy_changes = stored.policy_changes(coding.policy) if stored else tuple((key, None, value) for key, value in coding.policy.items())
    return Recode(
        encounter=encounter,
        stored=stored,
        coding=coding,
        added=added,
        removed=removed,
        changed=changed,
        policy_changes=policy_changes,
    )


# --- the coder's review (issue 4) --------------------------------------------------
#
# Every coder save locks the encounter row first (as suggest_for_encounter and
# charting's amendment do, so they serialise), then its review, then checks
# the version the page posted (CON-1). A repeated save that is already in
# effect (accept twice, finalise twice) returns without writing, whatever the
# version: a double submit gives one result, not a conflict.


def _person(user: Any) -> str:
    return (user.get_full_name() or user.username) if user is not None else "the system"


def _lock_review(encounter_id: Any) -> EncounterReview:
    """Lock the signed encounter and its review (created at version 0 on first use)."""
    encounter = _signed_encounter(encounter_id, lock=True)
    review, _ = EncounterReview.objects.select_for_update(of=("self",)).select_related("updated_by", "finalised_by").get_or_create(encounter=encounter)
    review.encounter = encounter
    return review


def _changes_since(review: EncounterReview, version: int) -> list[str]:
    """What the saves after `version` did, one sentence each (the 409 message)."""
    tz = review.encounter.clinic.tz
    at = lambda value: timezone.localtime(value, tz).strftime("%H:%M")  # noqa: E731
    changes = []
    decisions = FinalLine.objects.filter(review=review, version__gt=version).select_related("decided_by", "reason", "suggested_line").order_by("version", "pk")
    for line in decisions:
        before = _line_summary(line.suggested_line) if line.suggested_line else None
        what = {
            FinalAction.ACCEPT: f"accepted {before}",
            FinalAction.CHANGE: f"changed {before} to {_line_summary(line)}",
            FinalAction.DELETE: f"deleted {before}",
            FinalAction.ADD: f"added {_line_summary(line)}",
        }[line.action]
        why = f" ({line.reason}{': ' + line.reason_text if line.reason_text else ''})" if line.reason else ""
        changes.append(f"{_person(line.decided_by)} {what}{why} at {at(line.decided_at)}.")
    for query in DocumentationQuery.objects.filter(encounter=review.encounter, version__gt=version).select_related("asked_by"):
        changes.append(f"{_person(query.asked_by)} asked the nurse at {at(query.asked_at)}: “{query.question}”.")
    if review.status == ReviewStatus.FINAL:
        changes.append(f"{_person(review.finalised_by)} finalised the encounter at {at(review.finalised_at)}.")
    elif review.returned_after_amendment:
        changes.append("The nurse amended the documentation after finalisation: the encounter is back in the queue.")
    return changes or [f"The review is now at version {review.version} ({review.get_status_display()})."]


def _check_version(review: EncounterReview, version: int | None) -> None:
    if version is not None and version != review.version:
        raise ReviewConflict(review, version, _changes_since(review, version))


def _check_not_final(review: EncounterReview) -> None:
    if review.status == ReviewStatus.FINAL:
        when = timezone.localtime(review.finalised_at, review.encounter.clinic.tz).strftime("%Y-%m-%d %H:%M")
        raise CodingError(f"This encounter was finalised by {_person(review.finalised_by)} at {when}: its lines are locked.")


def _save_review(review: EncounterReview, *, actor: Any, status: str | None = None, extra: tuple[str, ...] = ()) -> EncounterReview:
    """Bump the version and stamp who saved; `status` moves it (new → in review on first decision)."""
    review.version += 1
    review.updated_by = actor
    review.updated_at = timezone.now()
    if status is not None:
        review.status = status
    elif review.status == ReviewStatus.NEW:
        review.status = ReviewStatus.IN_REVIEW
    review.save(update_fields=["version", "updated_by", "updated_at", "status", *extra])
    return review


def _current_line(line_id: int, review: EncounterReview) -> SuggestedLine:
    """The suggested line, locked, refusing a line of a replaced suggestion."""
    # Lock the suggestion too: a re-code marking it not current either commits
    # first, and is_current is read after it, or waits for this decision.
    line = SuggestedLine.objects.select_for_update(of=("self", "suggestion")).select_related("suggestion").get(pk=line_id)
    if line.suggestion.encounter_id != review.encounter_id:
        raise CodingError("This line belongs to another encounter.")
    if not line.suggestion.is_current:
        raise CodingError("This suggestion has been replaced since the page was loaded; reload the encounter.")
    return line


def _reason(reason: OverrideReason | str | None, reason_text: str) -> tuple[OverrideReason, str]:
    reason_text = (reason_text or "").strip()
    if isinstance(reason, str):
        reason = OverrideReason.objects.filter(code=reason, is_active=True).first()
    if reason is None:
        raise CodingError("A reason is required.", field="reason")
    if reason.code == "other" and not reason_text:
        raise CodingError("Say why in the note: the reason is “Other”.", field="reason_text")
    return reason, reason_text


PAST = {FinalAction.ACCEPT: "accepted", FinalAction.CHANGE: "changed", FinalAction.DELETE: "deleted", FinalAction.ADD: "added"}


def _decide(review: EncounterReview, line: SuggestedLine | None, *, action: str, actor: Any, reason: OverrideReason | None = None, reason_text: str = "", **values: Any) -> FinalLine:
    """Store a decision (superseding the line's current one) and bump the review."""
    if line is not None:
        FinalLine.objects.filter(suggested_line=line, is_current=True).update(is_current=False)
    _save_review(review, actor=actor)
    base = {
        "code": line.code,
        "units": line.units,
        "modifiers": list(line.modifiers),
        "date_of_service": line.date_of_service,
        "ndc": line.ndc,
        "ndc_qualifier": line.ndc_qualifier,
        "ndc_quantity": line.ndc_quantity,
        "ndc_unit": line.ndc_unit,
        "position": line.position,
        "suggestion": line.suggestion,
    } if line is not None else {}
    final = FinalLine.objects.create(
        review=review,
        suggested_line=line,
        action=action,
        reason=reason,
        reason_text=reason_text,
        decided_by=actor,
        decided_at=review.updated_at,
        version=review.version,
        **(base | values),
    )
    encounter = review.encounter
    record(
        f"coding.line.{PAST[action]}",
        actor=actor,
        # The suggested line acted on (an added line has none: the decision itself).
        obj=line if line is not None else final,
        patient_id=encounter.patient_id,
        detail={
            "encounter": str(encounter.pk),
            "final_line": final.pk,
            "suggested": _line_summary(line) if line is not None else None,
            "final": _line_summary(final) if action != FinalAction.DELETE else None,
            "reason": reason.code if reason else None,
            "reason_text": reason_text,
            "version": review.version,
        },
    )
    return final


def _clean_line(code: str, units: Any, modifiers: Any) -> tuple[str, int, list[str]]:
    """Validate a line as a coder typed it: code 5 letters/digits (upper-cased),
    units a whole number 1-999, modifiers two letters/digits each (comma or
    space separated, at most 4, R12/R13, CMS-1500 24D)."""
    code = (code or "").strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{5}", code):
        raise CodingError("A CPT/HCPCS code is five letters or digits, e.g. 96365 or J1745.", field="code")
    try:
        units = int(units)
    except (TypeError, ValueError):
        raise CodingError("Units are a whole number.", field="units") from None
    if not 1 <= units <= 999:
        raise CodingError("Units are between 1 and 999.", field="units")
    if isinstance(modifiers, str):
        modifiers = [m for m in re.split(r"[\s,;-]+", modifiers.upper()) if m]
    modifiers = [str(m).strip().upper() for m in modifiers or []]
    if len(modifiers) > 4 or any(not re.fullmatch(r"[A-Z0-9]{2}", m) for m in modifiers):
        raise CodingError("Modifiers are two letters or digits each (e.g. 59, JZ), at most four.", field="modifiers")
    return code, units, modifiers


@transaction.atomic
def accept_line(line: SuggestedLine, *, actor: Any, version: int | None = None) -> SuggestedLine:
    """The coder accepts one suggested line as it is: a FinalLine (accept) is
    stored beside it and the line is marked accepted. Accepting a line whose
    current decision is already an accept is a no-op (double submit).

    `version` is the review version the coder's page loaded (None from callers
    that hold no page, e.g. accept_all_lines inside its own lock). Raises
    ReviewConflict when stale, CodingError when the suggestion has been
    replaced (re-coded since the page loaded) or the encounter is final.
    """
    review = _lock_review(line.suggestion.encounter_id)
    locked = _current_line(line.pk, review)
    if FinalLine.objects.filter(suggested_line=locked, is_current=True, action=FinalAction.ACCEPT).exists():
        return SuggestedLine.objects.select_related("accepted_by").get(pk=locked.pk)
    _check_not_final(review)
    _check_version(review, version)
    _decide(review, locked, action=FinalAction.ACCEPT, actor=actor)
    locked.accepted_by = actor
    locked.accepted_at = review.updated_at
    locked.save(update_fields=["accepted_by", "accepted_at"])
    locked.review_version = review.version
    return locked


@transaction.atomic
def accept_all_lines(suggestion: Suggestion, *, actor: Any, version: int | None = None) -> list[SuggestedLine]:
    """Accept every line of `suggestion` without a current decision; returns
    the lines accepted now. One version check for the whole batch."""
    review = _lock_review(suggestion.encounter_id)
    if not Suggestion.objects.filter(pk=suggestion.pk, is_current=True).exists():
        raise CodingError("This suggestion has been replaced since the page was loaded; reload the encounter.")
    pending = list(suggestion.lines.exclude(final_lines__is_current=True).order_by("position"))
    if not pending:
        return []
    _check_not_final(review)
    _check_version(review, version)
    return [accept_line(line, actor=actor) for line in pending]


@transaction.atomic
def change_line(line: SuggestedLine, *, code: str, units: Any, modifiers: Any, reason: OverrideReason | str | None, reason_text: str = "", actor: Any, version: int | None) -> FinalLine:
    """The coder bills a suggested line differently (code, units or modifiers);
    the suggestion is kept as it is, the FinalLine holds the new values with
    the reason. Raises CodingError (with `field`) on bad input or no change."""
    review = _lock_review(line.suggestion.encounter_id)
    locked = _current_line(line.pk, review)
    _check_not_final(review)
    _check_version(review, version)
    code, units, modifiers = _clean_line(code, units, modifiers)
    reason, reason_text = _reason(reason, reason_text)
    if (code, units, modifiers) == (locked.code, locked.units, list(locked.modifiers)):
        raise CodingError("Nothing changed: to keep the line as suggested, accept it.", field="code")
    values = {"code": code, "units": units, "modifiers": modifiers}
    if code != locked.code:
        # Another code is another product: the NDC belonged to the suggested one (R49).
        values |= {"ndc": "", "ndc_qualifier": "", "ndc_quantity": None, "ndc_unit": ""}
    return _decide(review, locked, action=FinalAction.CHANGE, actor=actor, reason=reason, reason_text=reason_text, **values)


@transaction.atomic
def delete_line(line: SuggestedLine, *, reason: OverrideReason | str | None, reason_text: str = "", actor: Any, version: int | None) -> FinalLine:
    """The coder drops a suggested line from the bill (with a reason); the
    suggested line stays. Deleting a deleted line again is a no-op."""
    review = _lock_review(line.suggestion.encounter_id)
    locked = _current_line(line.pk, review)
    existing = FinalLine.objects.filter(suggested_line=locked, is_current=True, action=FinalAction.DELETE).first()
    if existing is not None:
        return existing
    _check_not_final(review)
    _check_version(review, version)
    reason, reason_text = _reason(reason, reason_text)
    return _decide(review, locked, action=FinalAction.DELETE, actor=actor, reason=reason, reason_text=reason_text)


@transaction.atomic
def add_line(encounter: Encounter, *, code: str, units: Any, modifiers: Any, reason: OverrideReason | str | None, reason_text: str = "", actor: Any, version: int | None) -> FinalLine:
    """The coder adds a line the suggestion lacks, against the current suggestion."""
    review = _lock_review(encounter.pk)
    _check_not_final(review)
    _check_version(review, version)
    suggestion = Suggestion.objects.current().filter(encounter_id=encounter.pk).first()
    if suggestion is None:
        raise CodingError("Coding is still pending for this encounter: wait for the suggestion, then add lines.")
    code, units, modifiers = _clean_line(code, units, modifiers)
    reason, reason_text = _reason(reason, reason_text)
    last = max([*suggestion.lines.values_list("position", flat=True), *FinalLine.objects.filter(suggestion=suggestion).values_list("position", flat=True), 0])
    return _decide(
        review, None, action=FinalAction.ADD, actor=actor, reason=reason, reason_text=reason_text,
        suggestion=suggestion, position=last + 1, code=code, units=units, modifiers=modifiers, date_of_service=review.encounter.date_of_service,
    )


@transaction.atomic
def withdraw_added_line(final: FinalLine, *, actor: Any, version: int | None) -> FinalLine:
    """Take back a line the coder added (it stays as history, not current)."""
    review = _lock_review(final.review.encounter_id)
    locked = FinalLine.objects.select_for_update().get(pk=final.pk)
    if not locked.is_current:
        return locked
    _check_not_final(review)
    _check_version(review, version)
    if locked.action != FinalAction.ADD:
        raise CodingError("Only a line you added can be withdrawn; a suggested line is deleted with a reason.")
    locked.is_current = False
    locked.save(update_fields=["is_current"])
    _save_review(review, actor=actor)
    record("coding.line.withdrawn", actor=actor, obj=locked, patient_id=review.encounter.patient_id, detail={"encounter": str(review.encounter_id), "line": _line_summary(locked)})
    return locked


@transaction.atomic
def open_query(encounter: Encounter, *, question: str, administration: Any = None, actor: Any, version: int | None) -> DocumentationQuery:
    """The coder asks the nurse about the encounter or one of its
    administrations; the review becomes "query open" until every query is
    answered or closed. The question appears on the nurse's worklist."""
    review = _lock_review(encounter.pk)
    _check_not_final(review)
    _check_version(review, version)
    question = (question or "").strip()
    if not question:
        raise CodingError("Write the question for the nurse.", field="question")
    if len(question) > 2000:
        raise CodingError("Keep the question under 2,000 characters.", field="question")
    if administration is not None and administration.encounter_id != encounter.pk:
        raise CodingError("That administration belongs to another encounter.", field="administration")
    _save_review(review, actor=actor, status=ReviewStatus.QUERY_OPEN)
    query = DocumentationQuery.objects.create(
        encounter=review.encounter, administration=administration, question=question, asked_by=actor, asked_at=review.updated_at, version=review.version
    )
    record(
        "coding.query.opened",
        actor=actor,
        obj=query,
        patient_id=review.encounter.patient_id,
        detail={"encounter": str(encounter.pk), "administration": str(administration.pk) if administration else None, "version": review.version},
    )
    return query


def _status_after_queries(review: EncounterReview, *, reopen: bool = False) -> str:
    """Final stays final (unless `reopen`); otherwise query open while any query is open."""
    if review.status == ReviewStatus.FINAL and not reopen:
        return ReviewStatus.FINAL
    return ReviewStatus.QUERY_OPEN if DocumentationQuery.objects.open().filter(encounter_id=review.encounter_id).exists() else ReviewStatus.IN_REVIEW


@transaction.atomic
def answer_query(query: DocumentationQuery, *, answer: str, actor: Any, amendment: dict[str, Any] | None = None) -> DocumentationQuery:
    """The nurse answers a coder's query, optionally amending the documentation
    in the same transaction (`amendment`: the keyword arguments of
    `charting.services.amend_administration` but actor and query, including
    `administration`). The review leaves "query open" when no other query is
    open. Answering an answered query again is refused.

    Raises CodingError (answer missing, query not open) or ChartingError (the
    amendment was refused; nothing is saved then)."""
    from charting import services as charting_services  # charting never imports coding at load time

    review = _lock_review(query.encounter_id)
    locked = DocumentationQuery.objects.select_for_update().get(pk=query.pk)
    if locked.status != QueryStatus.OPEN:
        raise CodingError(f"This query is already {locked.get_status_display().lower()}.")
    answer = (answer or "").strip()
    if not answer:
        raise CodingError("Write an answer for the coder.", field="answer")
    if amendment:
        charting_services.amend_administration(**amendment, actor=actor, query=locked)
    locked.answer, locked.answered_by, locked.answered_at, locked.status = answer, actor, timezone.now(), QueryStatus.ANSWERED
    locked.save(update_fields=["answer", "answered_by", "answered_at", "status"])
    status = _status_after_queries(review)
    if status != review.status:
        review.status = status
        review.save(update_fields=["status"])
    record("coding.query.answered", actor=actor, obj=locked, patient_id=review.encounter.patient_id, detail={"encounter": str(review.encounter_id), "amended": bool(amendment)})
    return locked


@transaction.atomic
def close_query(query: DocumentationQuery, *, actor: Any, version: int | None) -> DocumentationQuery:
    """The coder closes a query (answered, or no longer needed). Closing a closed query is a no-op."""
    review = _lock_review(query.encounter_id)
    locked = DocumentationQuery.objects.select_for_update().get(pk=query.pk)
    if locked.status == QueryStatus.CLOSED:
        return locked
    _check_version(review, version)
    locked.status = QueryStatus.CLOSED
    locked.save(update_fields=["status"])
    _save_review(review, actor=actor, status=_status_after_queries(review))
    record("coding.query.closed", actor=actor, obj=locked, patient_id=review.encounter.patient_id, detail={"encounter": str(review.encounter_id)})
    return locked


@transaction.atomic
def finalise_encounter(encounter: Encounter, *, actor: Any, version: int | None) -> EncounterReview:
    """Lock the final lines of the current suggestion and record who and when.

    Refused (CodingError) while coding is pending, a query is open, or a
    suggested line has no decision (the message names them). Finalising a
    final encounter again is a no-op (double submit)."""
    review = _lock_review(encounter.pk)
    if review.status == ReviewStatus.FINAL:
        return review
    _check_version(review, version)
    suggestion = Suggestion.objects.current().filter(encounter_id=encounter.pk).first()
    if suggestion is None:
        raise CodingError("Coding is still pending for this encounter: there is nothing to finalise yet.")
    if DocumentationQuery.objects.open().filter(encounter_id=encounter.pk).exists():
        raise CodingError("A documentation query is still open: wait for the nurse's answer, or close the query.")
    undecided = [_line_summary(l) for l in suggestion.lines.exclude(final_lines__is_current=True).order_by("position")]
    if undecided:
        raise CodingError(f"Decide every suggested line first (accept, change or delete): {', '.join(undecided)}.")
    review.finalised_by, review.finalised_at, review.finalised_suggestion = actor, timezone.now(), suggestion
    review.returned_after_amendment = False
    _save_review(review, actor=actor, status=ReviewStatus.FINAL, extra=("finalised_by", "finalised_at", "finalised_suggestion", "returned_after_amendment"))
    lines = [_line_summary(l) for l in FinalLine.objects.billed().filter(suggestion=suggestion).order_by("position")]
    record("coding.encounter.finalised", actor=actor, obj=review, patient_id=review.encounter.patient_id, detail={"encounter": str(encounter.pk), "lines": lines, "version": review.version})
    return review


def documentation_amended(encounter: Encounter, *, amendment: Any) -> EncounterReview | None:
    """Called by `charting.services.amend_administration` inside its
    transaction (the encounter row is locked there): a final encounter goes
    back to the queue, marked "returned after amendment", its final lines kept
    as they were. Returns the review, or None when no coder has touched it."""
    review = EncounterReview.objects.select_for_update(of=("self",)).filter(encounter_id=encounter.pk).first()
    if review is None:
        return None
    review.encounter = encounter
    if review.status == ReviewStatus.FINAL:
        review.returned_after_amendment = True
        _save_review(review, actor=amendment.author, status=_status_after_queries(review, reopen=True), extra=("returned_after_amendment",))
        record("coding.encounter.returned", actor=amendment.author, obj=review, patient_id=encounter.patient_id, detail={"encounter": str(encounter.pk), "amendment": amendment.pk})
    return review


@dataclass(frozen=True, slots=True)
class SuggestionChange:
    """How the current suggestion differs from the one it replaced (a re-code
    after an amendment or a payer change): lines added, removed and changed
    (units or modifiers), as "code×units-modifiers" (see `diff_lines`)."""

    previous: Suggestion
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, str], ...]

    @property
    def lines_changed(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def suggestion_change(encounter: Encounter, current: Suggestion | None) -> SuggestionChange | None:
    """The difference between `current` (lines prefetched) and the suggestion
    it replaced, or None when it replaced none (2 queries: previous, its lines)."""
    if current is None:
        return None
    previous = Suggestion.objects.filter(encounter=encounter, is_current=False, created_at__lte=current.created_at).exclude(pk=current.pk).order_by("-created_at", "-pk").prefetch_related("lines").first()
    if previous is None:
        return None
    added, removed, changed = diff_lines(previous.lines.all(), current.lines.all(), encounter.date_of_service)
    return SuggestionChange(previous=previous, added=added, removed=removed, changed=changed)
