"""``python manage.py recode ENCOUNTER_ID [--save]`` (issue 3, item 4).

Re-codes a signed encounter from its current documentation with the current
engine and its payer's current policy, and prints how that differs from the
stored current suggestion: lines added, removed and changed (as
code×units-modifiers), the rule-set version old → new and every policy
setting that changed. Nothing is written unless ``--save`` is given; then the
new suggestion is stored through ``suggest_for_encounter`` (the same service
the Celery task calls), which keeps the old one as history.

Exit status 2 with a message on stderr when the encounter does not exist or is
not signed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from coding import services


class Command(BaseCommand):
    help = "Re-code a signed encounter and show the difference from its stored suggestion; --save stores it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("encounter_id", metavar="ENCOUNTER_ID", help="the encounter's id (UUID)")
        parser.add_argument("--save", action="store_true", help="store the new suggestion (the old one is kept, not current)")

    def handle(self, *args: Any, encounter_id: str, save: bool, **options: Any) -> None:
        try:
            recode = services.preview_recode(encounter_id)
        except services.CodingError as exc:
            raise CommandError(str(exc), returncode=2) from None
        for line in describe(recode):
            self.stdout.write(line)
        if not save:
            return
        if recode.is_unchanged:
            self.stdout.write("Nothing to save: the stored suggestion is up to date.")
            return
        try:
            suggestion = services.suggest_for_encounter(recode.encounter.pk)
        except services.CodingError as exc:  # un-signed or deleted meanwhile
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(self.style.SUCCESS(f"Saved suggestion {suggestion.pk} as the current suggestion."))


def describe(recode: services.Recode) -> list[str]:
    """The difference as lines of text, the stored side first."""
    stored = recode.stored
    out = [f"Encounter {recode.encounter.pk} (payer {recode.encounter.payer}, policy {recode.coding.policy.get('name')})"]
    out.append(f"Stored suggestion: {stored.pk} of {stored.created_at:%Y-%m-%d %H:%M}" if stored else "Stored suggestion: none (never coded)")
    old, new = recode.ruleset_versions
    out.append(f"Rule set: {old} (unchanged)" if old == new else f"Rule set: {old or '-'} → {new}")
    out.append("Documentation: " + ("changed" if stored and recode.documentation_changed else "unchanged" if stored else "-"))
    if stored is not None and stored.policy is None:
        out.append("Policy: not recorded with the stored suggestion")
    elif recode.policy_changes:
        out.append("Policy:")
        out.extend(f"  {key}: {_value(old_value)} → {_value(new_value)}" for key, old_value, new_value in recode.policy_changes)
    else:
        out.append("Policy: unchanged")
    if not recode.lines_changed:
        out.append("Lines: unchanged")
        return out
    out.append("Lines:")
    out.extend(f"  - {text}" for text in recode.removed)
    out.extend(f"  + {text}" for text in recode.added)
    out.extend(f"  ~ {old_text} → {new_text}" for old_text, new_text in recode.changed)
    return out


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "-" if value is None else str(value)
