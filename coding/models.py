"""Payer policies, suggested lines from the engine and the coder's decisions on them.

A suggestion is never overwritten: re-coding an encounter stores a new
Suggestion and marks the old one not current, so the history and the
override rate stay reportable.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, OuterRef, Prefetch, Q

from charting.models import Encounter
from coding.engine import PayerPolicy


class PayerQuerySet(models.QuerySet):
    def with_overrides(self) -> PayerQuerySet:
        """Payers with their family overrides loaded (2 queries for any number)."""
        return self.prefetch_related(Prefetch("family_overrides", queryset=PayerFamilyOverride.objects.order_by("hcpcs")))

    def policy_for(self, code: str) -> PayerPolicy | None:
        """The engine policy of the payer with `code` (`Encounter.payer`), or None
        when no such payer is stored (the engine then applies its fallback and warns)."""
        payer = self.with_overrides().filter(code=code).first()
        return payer.to_policy() if payer is not None else None


class DistinctModifier(models.TextChoices):
    M59 = "59", "59 (distinct procedural service)"
    XU = "XU", "XU (unusual non-overlapping service)"
    XS = "XS", "XS (separate structure)"
    XE = "XE", "XE (separate encounter)"


class SeparateEncounterModifier(models.TextChoices):
    M59 = "59", "59 (distinct procedural service)"
    XE = "XE", "XE (separate encounter)"


class InjectionRepeatModifier(models.TextChoices):
    M59 = "59", "59 (distinct procedural service)"
    XS = "XS", "XS (separate structure)"
    XU = "XU", "XU (unusual non-overlapping service)"


class SecondaryHydration59(models.TextChoices):
    ALWAYS = "always", "Always"
    CHEMO_INITIAL_ONLY = "chemo_initial_only", "Only after a chemo/complex initial"
    NEVER = "never", "Never"


class Payer(models.Model):
    """A payer and its answers to the contested coding points (the "Engine
    defaults" D1, D3, D8/R48 and D9 of coding-rules.md), edited by an admin.

    Encounters name their payer by `code` (`Encounter.payer`); a suggestion
    stores the policy it was coded with, so editing a payer changes only
    suggestions made afterwards.
    """

    code = models.CharField(max_length=40, unique=True, help_text="As charted on the encounter (Encounter.payer), e.g. medicare.")
    name = models.CharField(max_length=200)
    distinct_modifier = models.CharField(
        max_length=2,
        choices=DistinctModifier.choices,
        default=DistinctModifier.M59,
        help_text="D3 (R12): modifier on the second initial at a medically required separate site.",
    )
    separate_encounter_modifier = models.CharField(
        max_length=2,
        choices=SeparateEncounterModifier.choices,
        default=SeparateEncounterModifier.M59,
        help_text="D3 (R13): modifier on the initial of a second encounter the same day.",
    )
    injection_repeat_modifier = models.CharField(
        max_length=2,
        choices=InjectionRepeatModifier.choices,
        default=InjectionRepeatModifier.M59,
        help_text="D11 (R9): modifier on a second injection line with the same code.",
    )
    secondary_hydration_59 = models.CharField(
        "59 on secondary hydration",
        max_length=20,
        choices=SecondaryHydration59.choices,
        default=SecondaryHydration59.CHEMO_INITIAL_ONLY,
        help_text="D1 (R31): when 96361 after another initial carries 59.",
    )
    report_jz = models.BooleanField("report JZ", default=True, help_text="R48, D8: JZ on a single-dose drug line when nothing was discarded.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = PayerQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(code__regex=r"^[a-z0-9_-]+$"),
                name="payer_code_slug",
                violation_error_message="A payer code is lower-case letters, digits, - and _.",
            ),
            models.CheckConstraint(
                condition=Q(distinct_modifier__in=DistinctModifier.values),
                name="payer_distinct_modifier_valid",
                violation_error_message="Unknown distinct-service modifier.",
            ),
            models.CheckConstraint(
                condition=Q(separate_encounter_modifier__in=SeparateEncounterModifier.values),
                name="payer_separate_encounter_modifier_valid",
                violation_error_message="Unknown separate-encounter modifier.",
            ),
            models.CheckConstraint(
                condition=Q(injection_repeat_modifier__in=InjectionRepeatModifier.values),
                name="payer_injection_repeat_modifier_valid",
                violation_error_message="Unknown repeat-injection modifier.",
            ),
            models.CheckConstraint(
                condition=Q(secondary_hydration_59__in=SecondaryHydration59.values),
                name="payer_secondary_hydration_59_valid",
                violation_error_message="Unknown secondary-hydration setting.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def to_policy(self) -> PayerPolicy:
        """This payer as the engine's frozen `PayerPolicy` (prefetch
        `family_overrides`, see `Payer.objects.with_overrides()`, when converting many)."""
        return PayerPolicy(
            name=self.code,
            distinct_modifier=self.distinct_modifier,
            separate_encounter_modifier=self.separate_encounter_modifier,
            injection_repeat_modifier=self.injection_repeat_modifier,
            secondary_hydration_59=self.secondary_hydration_59,
            family_overrides=tuple(sorted((o.hcpcs, o.family) for o in self.family_overrides.all())),
            report_jz=self.report_jz,
        )


class OverrideFamily(models.TextChoices):
    # Hydration is not a choice: a bag carrying a drug is never hydration (R3).
    CHEMO_COMPLEX = "chemo_complex", "Chemotherapy / complex"
    THERAPEUTIC = "therapeutic", "Therapeutic / prophylactic / diagnostic"


class PayerFamilyOverride(models.Model):
    """D9 (R36-R38): this payer bills drug `hcpcs` in `family`, whatever the
    catalog's default (e.g. certolizumab J0717 or denosumab J0897 as therapeutic)."""

    payer = models.ForeignKey(Payer, on_delete=models.CASCADE, related_name="family_overrides")
    hcpcs = models.CharField("HCPCS", max_length=5, help_text="Level II code as charted, e.g. J0717.")
    family = models.CharField("administration family", max_length=20, choices=OverrideFamily.choices)

    class Meta:
        ordering = ["payer", "hcpcs"]
        constraints = [
            models.UniqueConstraint(
                fields=["payer", "hcpcs"], name="payer_family_override_one_per_code", violation_error_message="This payer already overrides this HCPCS code."
            ),
            # Upper case, as the catalog and the chart write codes: "j0717" would never match.
            models.CheckConstraint(
                condition=Q(hcpcs__regex=r"^[A-Z][0-9]{4}$"),
                name="payer_family_override_hcpcs_format",
                violation_error_message="An HCPCS code is a capital letter and four digits, e.g. J0717.",
            ),
            models.CheckConstraint(
                condition=Q(family__in=OverrideFamily.values),
                name="payer_family_override_family_valid",
                violation_error_message="Unknown administration family.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hcpcs} → {self.get_family_display()}"


class SuggestionQuerySet(models.QuerySet):
    def current(self):
        return self.filter(is_current=True)


class Suggestion(models.Model):
    """One run of the engine over one encounter.

    `engine_input` is the EncounterDoc as JSON, `policy` the payer policy the
    engine applied (`PayerPolicy.to_dict()`) and `ruleset_version` the engine's
    version, so the result can be replayed later:
    `evaluate(parse_scenario(engine_input), PayerPolicy.from_dict(policy))`.
    """

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="suggestions")
    ruleset_version = models.CharField(max_length=40)
    engine_input = models.JSONField()
    policy = models.JSONField(null=True, blank=True, help_text="Payer policy applied; null for suggestions stored before policies were recorded.")
    not_billed = models.JSONField(default=list)
    warnings = models.JSONField(default=list)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SuggestionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["encounter"],
                condition=Q(is_current=True),
                name="suggestion_one_current_per_encounter",
                violation_error_message="An encounter has one current suggestion.",
            ),
        ]

    @property
    def payer_code(self) -> str:
        """The payer charted on the encounter when it was coded."""
        return str(self.engine_input.get("payer") or "")

    @property
    def policy_name(self) -> str:
        """Name of the policy applied: the payer's code, or the fallback's when
        the payer had no stored policy."""
        return str((self.policy or {}).get("name") or "")


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
