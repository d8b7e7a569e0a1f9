"""Payer policies, suggested lines from the engine and the coder's decisions on them.

A suggestion is never overwritten: re-coding an encounter stores a new
Suggestion and marks the old one not current, so the history and the
override rate stay reportable.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, Subquery, Value
from django.db.models.functions import Coalesce

from charting.models import Encounter
from coding.engine import PayerPolicy

# Choices mirror coding.engine.policy (a test keeps them equal); the first
# named in each docstring is the Medicare default.


class DistinctModifier(models.TextChoices):
    """D3 (R12, R13), D11: distinct-service modifiers (59 by default)."""

    M59 = "59", "59 (distinct procedural service)"
    XE = "XE", "XE (separate encounter)"
    XS = "XS", "XS (separate structure)"
    XP = "XP", "XP (separate practitioner)"
    XU = "XU", "XU (unusual non-overlapping service)"


class SecondaryHydration59(models.TextChoices):
    """D1 (R31): chemo_initial_only by default."""

    CHEMO_INITIAL_ONLY = "chemo_initial_only", "Only after a chemo/complex initial"
    ALWAYS = "always", "Always"
    NEVER = "never", "Never"


class SameDrugRuns(models.TextChoices):
    """D2 (R17): sum by default."""

    SUM = "sum", "Summed before units are computed"
    ADDITIONAL_HOUR = "additional_hour", "Each later run as additional hours (96366/96415)"
    SEQUENTIAL = "sequential", "Each later run as sequential (96367/96417)"


class SplitDoseInjection(models.TextChoices):
    """D11 (R9): one_injection by default."""

    ONE_INJECTION = "one_injection", "One injection"
    PER_SYRINGE = "per_syringe", "One line per syringe"


class MixedBag(models.TextChoices):
    """R26: one_infusion by default."""

    ONE_INFUSION = "one_infusion", "One infusion"
    SEQUENTIAL = "sequential", "Sequential (96367)"
    CONCURRENT = "concurrent", "Concurrent (96368)"


class LineDates(models.TextChoices):
    """D4 (R14): start_date by default."""

    START_DATE = "start_date", "Every unit on the day the service started"
    SERVICE_DAY = "service_day", "Each hour-unit on the day it began"


class PayerQuerySet(models.QuerySet):
    def with_overrides(self) -> PayerQuerySet:
        """Payers with their family overrides loaded (2 queries for any number)."""
        return self.prefetch_related(Prefetch("family_overrides", queryset=PayerFamilyOverride.objects.order_by("hcpcs")))

    def policy_for(self, code: str) -> PayerPolicy | None:
        """The engine policy of the payer with `code` (`Encounter.payer`), or None
        when no such payer is stored (the engine then applies its fallback and warns).
        Raises `coding.engine.policy.PolicyError` when the engine rejects a stored value."""
        payer = self.with_overrides().filter(code=code).first()
        return payer.to_policy() if payer is not None else None


class Payer(models.Model):
    """A payer and its answers to the contested coding points of coding-rules.md
    ("Engine defaults" D1-D11 and "Points where sources disagree"), one field
    per `PayerPolicy` field, edited by an admin.

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
        help_text="D3 (R10, R12): on the second initial at a medically required separate site.",
    )
    separate_encounter_modifier = models.CharField(
        max_length=2,
        choices=DistinctModifier.choices,
        default=DistinctModifier.M59,
        help_text="D3 (R13): on the initial of a second encounter the same day (XE is the CMS subset).",
    )
    injection_repeat_modifier = models.CharField(
        max_length=2, choices=DistinctModifier.choices, default=DistinctModifier.M59, help_text="D11 (R9): on a second injection line with the same code."
    )
    secondary_hydration_59 = models.CharField(
        "59 on secondary hydration",
        max_length=20,
        choices=SecondaryHydration59.choices,
        default=SecondaryHydration59.CHEMO_INITIAL_ONLY,
        help_text="D1 (R31): when 96361 after another initial carries 59.",
    )
    report_jz = models.BooleanField("report JZ", default=True, help_text="R48: JZ on single-dose drug lines with nothing discarded.")
    jz_when_discard_below_unit = models.BooleanField(
        "JZ when the discard is below one unit", default=True, help_text="D8 (R47): a discard smaller than one billing unit takes JZ (else neither JW nor JZ)."
    )
    same_drug_runs = models.CharField(
        max_length=20, choices=SameDrugRuns.choices, default=SameDrugRuns.SUM, help_text="D2 (R17): separate runs of one drug in an encounter."
    )
    combine_hydration_segments = models.BooleanField(
        default=True, help_text="D5 (R17, R21): non-contiguous hydration segments are summed (else each judged alone)."
    )
    split_dose_injection = models.CharField(
        max_length=20, choices=SplitDoseInjection.choices, default=SplitDoseInjection.ONE_INJECTION, help_text="D11 (R9): one dose split over syringes."
    )
    injections_on_one_line = models.BooleanField(default=False, help_text="R9: several injections with one code on one line with units.")
    mixed_bag = models.CharField(max_length=20, choices=MixedBag.choices, default=MixedBag.ONE_INFUSION, help_text="R26: drugs mixed in one bag.")
    port_flush_with_em = models.BooleanField(
        "96523 beside an E/M", default=False, help_text="R42: port irrigation also reported beside a significant E/M (25 on the E/M)."
    )
    hydration_volume_floor_ml = models.PositiveIntegerField(
        "hydration volume floor (mL)", null=True, blank=True, help_text="R33: hydration of this many mL or less is not reported; empty for no floor (CPT)."
    )
    line_dates = models.CharField(
        max_length=20, choices=LineDates.choices, default=LineDates.START_DATE, help_text="D4 (R14): dating the units of a service that crosses midnight."
    )
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
            *(
                models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=f"payer_{field}_valid", violation_error_message=message)
                for field, choices, message in (
                    ("distinct_modifier", DistinctModifier, "Unknown distinct-service modifier."),
                    ("separate_encounter_modifier", DistinctModifier, "Unknown separate-encounter modifier."),
                    ("injection_repeat_modifier", DistinctModifier, "Unknown repeat-injection modifier."),
                    ("secondary_hydration_59", SecondaryHydration59, "Unknown secondary-hydration setting."),
                    ("same_drug_runs", SameDrugRuns, "Unknown same-drug-runs setting."),
                    ("split_dose_injection", SplitDoseInjection, "Unknown split-dose setting."),
                    ("mixed_bag", MixedBag, "Unknown mixed-bag setting."),
                    ("line_dates", LineDates, "Unknown line-dates setting."),
                )
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def to_policy(self) -> PayerPolicy:
        """This payer as the engine's frozen `PayerPolicy` (prefetch
        `family_overrides`, see `Payer.objects.with_overrides()`, when converting
        many). Raises `PolicyError` when the engine rejects a value."""
        return PayerPolicy(
            name=self.code,
            distinct_modifier=self.distinct_modifier,
            separate_encounter_modifier=self.separate_encounter_modifier,
            secondary_hydration_59=self.secondary_hydration_59,
            family_overrides=tuple(sorted((o.hcpcs, o.family) for o in self.family_overrides.all())),
            report_jz=self.report_jz,
            jz_when_discard_below_unit=self.jz_when_discard_below_unit,
            same_drug_runs=self.same_drug_runs,
            combine_hydration_segments=self.combine_hydration_segments,
            split_dose_injection=self.split_dose_injection,
            injection_repeat_modifier=self.injection_repeat_modifier,
            injections_on_one_line=self.injections_on_one_line,
            mixed_bag=self.mixed_bag,
            port_flush_with_em=self.port_flush_with_em,
            hydration_volume_floor_ml=self.hydration_volume_floor_ml,
            line_dates=self.line_dates,
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

    def policy_changes(self, policy: dict[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
        """(setting, as coded, in `policy`) for each setting of `policy`
        (`PayerPolicy.to_dict()`) that differs from the one this suggestion was
        coded with; every setting when none was recorded."""
        old = self.policy or {}
        return tuple((key, old.get(key), policy.get(key)) for key in dict.fromkeys([*old, *policy]) if old.get(key) != policy.get(key))

    @property
    def policy_name(self) -> str:
        """Name of the policy applied: the payer's code, or the fallback's when
        the payer had no stored policy."""
        return str((self.policy or {}).get("name") or "")


class NdcUnit(models.TextChoices):
    """R49: unit qualifier of the NDC quantity."""

    UN = "UN", "UN (unit / each)"
    ML = "ML", "ML (millilitre)"
    GR = "GR", "GR (gram)"
    F2 = "F2", "F2 (international unit)"
    ME = "ME", "ME (milligram)"


class SuggestedLine(models.Model):
    """One line of a suggestion as the engine wrote it. Drug lines with an NDC
    (R49) also carry it in 11-digit 5-4-2 form with qualifier N4 and, when it can
    be expressed in the package's unit, the NDC quantity and its unit."""

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
    ndc = models.CharField("NDC", max_length=11, blank=True)
    ndc_qualifier = models.CharField("NDC qualifier", max_length=2, blank=True)
    ndc_quantity = models.DecimalField("NDC quantity", max_digits=12, decimal_places=3, null=True, blank=True)
    ndc_unit = models.CharField("NDC unit", max_length=2, choices=NdcUnit.choices, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["suggestion", "position"]
        constraints = [
            models.UniqueConstraint(fields=["suggestion", "position"], name="suggested_line_position_unique"),
            models.CheckConstraint(condition=Q(units__gte=1), name="suggested_line_units_positive", violation_error_message="Units are at least 1."),
            models.CheckConstraint(
                condition=Q(ndc="", ndc_qualifier="", ndc_quantity__isnull=True, ndc_unit="") | Q(ndc__regex=r"^[0-9]{11}$", ndc_qualifier="N4"),
                name="suggested_line_ndc_11_digits_n4",
                violation_error_message="An NDC is 11 digits (5-4-2) with qualifier N4; no NDC, no quantity.",
            ),
            models.CheckConstraint(
                condition=Q(ndc_quantity__isnull=True, ndc_unit="") | Q(ndc_quantity__gt=0, ndc_unit__in=NdcUnit.values),
                name="suggested_line_ndc_quantity_with_unit",
                violation_error_message="An NDC quantity is positive and has its unit (UN, ML, GR, F2, ME).",
            ),
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
    current suggestion's lines (`line_count`, `accepted_count`),
    `has_suggestion` (False while the coding task hasn't run yet), the review
    status (`review_status`, "new" without a review row), `returned` (amended
    after finalisation) and `open_query_count`.

    One query: encounter JOIN patient JOIN clinic LEFT JOIN review, LEFT JOIN
    suggestions and their lines grouped per encounter, plus correlated
    subqueries for the current suggestion and open queries.
    """
    current = Q(suggestions__is_current=True)
    open_queries = (
        DocumentationQuery.objects.filter(encounter=OuterRef("pk"), status=QueryStatus.OPEN).values("encounter").annotate(n=Count("pk")).values("n")
    )
    return (
        with_review_status(encounters_for_coder(user))
        .select_related("patient", "clinic")
        .annotate(
            line_count=Count("suggestions__lines", filter=current),
            accepted_count=Count("suggestions__lines", filter=current & Q(suggestions__lines__accepted_at__isnull=False)),
            has_suggestion=Exists(Suggestion.objects.filter(encounter=OuterRef("pk"), is_current=True)),
            open_query_count=Coalesce(Subquery(open_queries), 0),
        )
        .order_by("date_of_service", "signed_at", "pk")
    )


def with_review_status(encounters: models.QuerySet[Encounter]) -> models.QuerySet[Encounter]:
    """`review_status` (new without a review row) and `returned` (amended after finalisation)."""
    return encounters.annotate(
        review_status=Coalesce(F("review__status"), Value(ReviewStatus.NEW)),
        returned=Coalesce(F("review__returned_after_amendment"), Value(False)),
    )


def filter_queue(encounters: models.QuerySet[Encounter], filters: dict[str, Any]) -> models.QuerySet[Encounter]:
    """Apply the queue's filters (QueueFilterForm.filters(): clinic, date_from,
    date_to, payer, flags="open"; `status` is applied by the caller, after the
    per-status counts) to a queryset annotated by `with_review_status`."""
    if "clinic" in filters:
        encounters = encounters.filter(clinic=filters["clinic"])
    if "date_from" in filters:
        encounters = encounters.filter(date_of_service__gte=filters["date_from"])
    if "date_to" in filters:
        encounters = encounters.filter(date_of_service__lte=filters["date_to"])
    if "payer" in filters:
        encounters = encounters.filter(payer=filters["payer"])
    if filters.get("flags") == "open":
        encounters = encounters.with_open_flags()
    return encounters


def status_counts(user, filters: dict[str, Any]) -> dict[str, int]:
    """Encounters per review status under the other filters (one query), every status present."""
    rows = filter_queue(with_review_status(encounters_for_coder(user)), filters).order_by().values("review_status").annotate(n=Count("pk"))
    counts = dict.fromkeys(ReviewStatus.values, 0)
    counts.update({row["review_status"]: row["n"] for row in rows})
    return counts


# --- the coder's review (issue 4) ------------------------------------------------


class OverrideReason(models.Model):
    """A reason a coder gives for changing, deleting or adding a line: a
    maintained list (seeded by migration 0007, edited by admins), so the
    override rate can be reported per reason. A retired reason is marked
    inactive, never deleted (final lines keep pointing at it)."""

    code = models.CharField(max_length=40, unique=True)
    label = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in the coder's list.")

    class Meta:
        ordering = ["position", "label"]
        constraints = [
            models.CheckConstraint(condition=Q(code__regex=r"^[a-z0-9_]+$"), name="override_reason_code_slug", violation_error_message="A reason code is lower-case letters, digits and _."),
        ]

    def __str__(self) -> str:
        return self.label


class ReviewStatus(models.TextChoices):
    NEW = "new", "New"
    IN_REVIEW = "in_review", "In review"
    QUERY_OPEN = "query_open", "Query open"
    FINAL = "final", "Final"


class EncounterReview(models.Model):
    """The coder's state of one signed encounter. Created by the first coder
    save (an encounter without one is "new" in the queue).

    `version` is the optimistic lock (CON-1): every coder save posts the
    version its page loaded; a save with an older one is refused with what
    changed (services.ReviewConflict), never applied over the other save.
    `returned_after_amendment` marks an encounter the nurse amended after it
    was finalised; `finalised_by/at` keep the last finalisation.
    """

    encounter = models.OneToOneField(Encounter, on_delete=models.PROTECT, related_name="review")
    status = models.CharField(max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.NEW)
    returned_after_amendment = models.BooleanField(default=False)
    finalised_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    finalised_at = models.DateTimeField(null=True, blank=True)
    finalised_suggestion = models.ForeignKey(
        Suggestion, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="The suggestion whose final lines were locked (what exports read)."
    )
    version = models.PositiveIntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ReviewStatus.values), name="encounter_review_status_valid", violation_error_message="Unknown review status."),
            models.CheckConstraint(
                condition=~Q(status=ReviewStatus.FINAL) | Q(finalised_by__isnull=False, finalised_at__isnull=False, finalised_suggestion__isnull=False),
                name="encounter_review_final_has_finaliser",
                violation_error_message="A final encounter records who finalised it and when.",
            ),
        ]

    def __str__(self) -> str:
        return f"review of {self.encounter_id} ({self.status}, v{self.version})"

    @property
    def is_final(self) -> bool:
        return self.status == ReviewStatus.FINAL


class FinalAction(models.TextChoices):
    ACCEPT = "accept", "Accepted"
    CHANGE = "change", "Changed"
    DELETE = "delete", "Deleted"
    ADD = "add", "Added"


class FinalLineQuerySet(models.QuerySet):
    def current(self):
        return self.filter(is_current=True)

    def billed(self):
        """Current decisions that leave a line to bill (accepted, changed, added)."""
        return self.current().exclude(action=FinalAction.DELETE)


class FinalLine(models.Model):
    """The coder's decision on one line, stored beside the suggestion (which is
    never changed): accept or change or delete a suggested line, or add one.

    The billed values (code, units, modifiers, NDC in 11-digit 5-4-2 form with
    qualifier N4, NDC quantity and its unit, R49) are copied from the suggested
    line and changed where the coder changed them; a delete keeps the suggested
    values for the report. Every action but accept needs a `reason`.
    Deciding a line again supersedes the earlier decision (`is_current`
    False), which stays as history; `version` is the review version this
    decision created (what a conflicting save lists).
    """

    review = models.ForeignKey(EncounterReview, on_delete=models.PROTECT, related_name="final_lines")
    suggestion = models.ForeignKey(Suggestion, on_delete=models.PROTECT, related_name="final_lines")
    suggested_line = models.ForeignKey(SuggestedLine, null=True, blank=True, on_delete=models.PROTECT, related_name="final_lines")
    action = models.CharField(max_length=10, choices=FinalAction.choices)
    position = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=10)
    units = models.PositiveIntegerField()
    modifiers = models.JSONField(default=list)
    date_of_service = models.DateField(null=True, blank=True)
    ndc = models.CharField("NDC", max_length=11, blank=True)
    ndc_qualifier = models.CharField("NDC qualifier", max_length=2, blank=True)
    ndc_quantity = models.DecimalField("NDC quantity", max_digits=12, decimal_places=3, null=True, blank=True)
    ndc_unit = models.CharField("NDC unit", max_length=2, choices=NdcUnit.choices, blank=True)
    reason = models.ForeignKey(OverrideReason, null=True, blank=True, on_delete=models.PROTECT, related_name="final_lines")
    reason_text = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField()
    version = models.PositiveIntegerField()
    is_current = models.BooleanField(default=True)

    objects = FinalLineQuerySet.as_manager()

    class Meta:
        ordering = ["review", "position", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=FinalAction.values), name="final_line_action_valid", violation_error_message="Unknown action."),
            models.CheckConstraint(condition=Q(units__gte=1), name="final_line_units_positive", violation_error_message="Units are at least 1."),
            models.CheckConstraint(condition=Q(code__regex=r"^[A-Z0-9]{5}$"), name="final_line_code_format", violation_error_message="A CPT/HCPCS code is five letters or digits, e.g. 96365 or J1745."),
            models.CheckConstraint(
                condition=Q(action=FinalAction.ACCEPT) | Q(reason__isnull=False),
                name="final_line_override_has_reason",
                violation_error_message="A change, delete or added line needs a reason.",
            ),
            models.CheckConstraint(
                condition=Q(action=FinalAction.ADD, suggested_line__isnull=True) | (~Q(action=FinalAction.ADD) & Q(suggested_line__isnull=False)),
                name="final_line_add_has_no_suggested_line",
                violation_error_message="An added line has no suggested line; every other decision has one.",
            ),
            models.CheckConstraint(
                condition=Q(ndc="", ndc_qualifier="", ndc_quantity__isnull=True, ndc_unit="") | Q(ndc__regex=r"^[0-9]{11}$", ndc_qualifier="N4"),
                name="final_line_ndc_11_digits_n4",
                violation_error_message="An NDC is 11 digits (5-4-2) with qualifier N4; no NDC, no quantity.",
            ),
            models.CheckConstraint(
                condition=Q(ndc_quantity__isnull=True, ndc_unit="") | Q(ndc_quantity__gt=0, ndc_unit__in=NdcUnit.values),
                name="final_line_ndc_quantity_with_unit",
                violation_error_message="An NDC quantity is positive and has its unit (UN, ML, GR, F2, ME).",
            ),
            models.UniqueConstraint(
                fields=["suggested_line"],
                condition=Q(is_current=True, suggested_line__isnull=False),
                name="final_line_one_current_per_suggested_line",
                violation_error_message="This suggested line already has a current decision.",
            ),
        ]
        indexes = [models.Index(fields=["review"], condition=Q(is_current=True), name="final_line_current_by_review")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.text}"

    @property
    def text(self) -> str:
        """code×units-modifiers, as the recode diff writes lines."""
        return f"{self.code}×{self.units}" + "".join(f"-{m}" for m in self.modifiers)


class QueryStatus(models.TextChoices):
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered"
    CLOSED = "closed", "Closed"


class DocumentationQueryQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=QueryStatus.OPEN)

    def for_nurse_worklist(self, user):
        """Open queries of the clinics `user` works in, oldest first, with the
        encounter, patient, clinic, administration and drug (one query)."""
        return (
            self.open()
            .filter(encounter__clinic__in=Encounter.objects.visible_to(user).values("clinic"))
            .select_related("encounter__patient", "encounter__clinic", "administration__drug", "asked_by")
            .order_by("asked_at", "pk")
        )


class DocumentationQuery(models.Model):
    """A coder's question to the nurse about an encounter or one of its
    administrations. The nurse answers on the encounter page (and may amend
    the documentation, charting.Amendment.query); the coder may close it."""

    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="documentation_queries")
    administration = models.ForeignKey("charting.Administration", null=True, blank=True, on_delete=models.PROTECT, related_name="documentation_queries")
    question = models.TextField()
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    asked_at = models.DateTimeField()
    answer = models.TextField(blank=True)
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=QueryStatus.choices, default=QueryStatus.OPEN)
    version = models.PositiveIntegerField(default=0, help_text="Review version this query was asked at.")

    objects = DocumentationQueryQuerySet.as_manager()

    class Meta:
        ordering = ["asked_at", "pk"]
        verbose_name_plural = "documentation queries"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=QueryStatus.values), name="documentation_query_status_valid", violation_error_message="Unknown query status."),
            models.CheckConstraint(condition=~Q(question=""), name="documentation_query_question_set", violation_error_message="A query needs a question."),
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True, answered_by__isnull=True, answer="") | (Q(answered_at__isnull=False, answered_by__isnull=False) & ~Q(answer="")),
                name="documentation_query_answer_complete",
                violation_error_message="An answer records its text, who answered and when.",
            ),
            models.CheckConstraint(
                condition=~Q(status=QueryStatus.ANSWERED) | Q(answered_at__isnull=False),
                name="documentation_query_answered_has_answer",
                violation_error_message="An answered query has an answer.",
            ),
        ]

    def __str__(self) -> str:
        return f"query {self.pk} ({self.status})"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    FHIR = "fhir", "FHIR R4 (R4B) Bundle of ChargeItem"


class ExportLog(models.Model):
    """One export of final lines (a disclosure, AUD-9): who, when, the
    parameters and exactly which encounters were included. Each encounter
    also gets an audit row (`coding.lines.exported`)."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Empty for the export_lines command.")
    source = models.CharField(max_length=10, choices=[("web", "Web download"), ("command", "manage.py export_lines")])
    created_at = models.DateTimeField(auto_now_add=True)
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    date_from = models.DateField()
    date_to = models.DateField()
    clinic_ids = models.JSONField(default=list, help_text="Clinics the export covered.")
    encounter_ids = models.JSONField(default=list)
    line_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(format__in=ExportFormat.values), name="export_log_format_valid", violation_error_message="Unknown export format."),
            models.CheckConstraint(condition=Q(date_to__gte=F("date_from")), name="export_log_dates_ordered", violation_error_message="The end date is before the start date."),
        ]
