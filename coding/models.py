"""Suggested lines from the engine and the coder's decisions on them.

A suggestion is never overwritten: re-coding an encounter stores a new
Suggestion and marks the old one not current, so the history and the
override rate stay reportable.
"""

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q

from charting.models import Encounter


class SuggestionQuerySet(models.QuerySet):
    def current(self):
        return self.filter(is_current=True)


class Suggestion(models.Model):
    """One run of the engine over one encounter.

    `engine_input` is the EncounterDoc as JSON and `ruleset_version` the engine's
    version, so the result can be replayed later.
    """

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="suggestions")
    ruleset_version = models.CharField(max_length=40)
    engine_input = models.JSONField()
    not_billed = models.JSONField(default=list)
    warnings = models.JSONField(default=list)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SuggestionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["encounter"], condition=Q(is_current=True), name="suggestion_one_current_per_encounter", violation_error_message="An encounter has one current suggestion."),
        ]


class SuggestedLine(models.Model):
    suggestion = models.ForeignKey(Suggestion, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=10)
    units = models.PositiveIntegerField()
    modifiers = models.JSONField(default=list)
    administrations = models.JSONField(default=list, help_text="Administration labels/ids the line came from.")
    minutes = models.PositiveIntegerField(null=True, blank=True)
    rules = models.JSONField(default=list)
    explanation = models.TextField()
    date_of_service = models.DateField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["suggestion", "position"]
        constraints = [
            models.UniqueConstraint(fields=["suggestion", "position"], name="suggested_line_position_unique"),
            models.CheckConstraint(condition=Q(units__gte=1), name="suggested_line_units_positive", violation_error_message="Units are at least 1."),
            models.CheckConstraint(
                condition=Q(accepted_by__isnull=True, accepted_at__isnull=True) | Q(accepted_by__isnull=False, accepted_at__isnull=False),
                name="suggested_line_acceptance_complete",
                violation_error_message="An accepted line records who accepted it and when.",
            ),
        ]

    @property
    def is_accepted(self) -> bool:
        return self.accepted_at is not None


# Encounter's manager belongs to charting; the coder's views of it live here,
# as functions named like QuerySet filters, each starting from what the user
# may see.


def encounters_for_coder(user) -> models.QuerySet[Encounter]:
    """Signed encounters of the clinics `user` works in (access control in the query)."""
    return Encounter.objects.visible_to(user).filter(status=Encounter.Status.SIGNED)


def review_queue(user) -> models.QuerySet[Encounter]:
    """The coder's queue: signed encounters, oldest first, with counts of the
    current suggestion's lines (`line_count`, `accepted_count`) and
    `has_suggestion` (False while the coding task hasn't run yet).

    One query: encounter JOIN patient JOIN clinic, LEFT JOIN suggestions and
    their lines grouped per encounter, plus an EXISTS for the current suggestion.
    """
    current = Q(suggestions__is_current=True)
    return (
        encounters_for_coder(user)
        .select_related("patient", "clinic")
        .annotate(
            line_count=Count("suggestions__lines", filter=current),
            accepted_count=Count("suggestions__lines", filter=current & Q(suggestions__lines__accepted_at__isnull=False)),
            has_suggestion=Exists(Suggestion.objects.filter(encounter=OuterRef("pk"), is_current=True)),
        )
        .order_by("date_of_service", "signed_at", "pk")
    )
