"""Admin: payer policies are edited here by the admin role; suggestions are
read-only (the engine's output is changed by re-coding, never by hand)."""

from django.contrib import admin

from audit.models import Category
from audit.phi import PhiAdminMixin
from infusion_site.roles import ADMIN, has_role

from .models import DocumentationQuery, EncounterReview, ExportLog, FinalLine, OverrideReason, Payer, PayerFamilyOverride, SuggestedLine, Suggestion


class AdminRoleOnly:
    """Access decided by the admin role (roles.py), not by per-model permission
    rows an admin would have to be granted one by one."""

    def has_module_permission(self, request):
        return has_role(request.user, ADMIN)

    def has_view_permission(self, request, obj=None):
        return has_role(request.user, ADMIN)

    def has_add_permission(self, request, *args):
        return has_role(request.user, ADMIN)

    def has_change_permission(self, request, obj=None):
        return has_role(request.user, ADMIN)

    def has_delete_permission(self, request, obj=None):
        return has_role(request.user, ADMIN)


class PayerFamilyOverrideInline(AdminRoleOnly, admin.TabularInline):
    model = PayerFamilyOverride
    extra = 0


@admin.register(Payer)
class PayerAdmin(AdminRoleOnly, admin.ModelAdmin):
    """A change here applies to encounters coded from now on; stored
    suggestions keep the policy they were coded with (`manage.py recode` shows
    what re-coding would change)."""

    list_display = ("code", "name", "distinct_modifier", "secondary_hydration_59", "report_jz", "updated_at")
    search_fields = ("code", "name")
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("code", "name", "updated_at")}),
        (
            "Contested coding points (coding-rules.md, Engine defaults)",
            {
                "fields": (
                    "distinct_modifier",
                    "separate_encounter_modifier",
                    "injection_repeat_modifier",
                    "secondary_hydration_59",
                    "report_jz",
                    "jz_when_discard_below_unit",
                    "same_drug_runs",
                    "combine_hydration_segments",
                    "split_dose_injection",
                    "injections_on_one_line",
                    "mixed_bag",
                    "port_flush_with_em",
                    "hydration_volume_floor_ml",
                    "line_dates",
                )
            },
        ),
    )
    inlines = [PayerFamilyOverrideInline]

    def get_readonly_fields(self, request, obj=None):
        # Encounters name the payer by code: renaming it would orphan them.
        return (*self.readonly_fields, "code") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Encounters still name it; a payer no one uses can be left unused.
        return False


class SuggestedLineInline(admin.TabularInline):
    model = SuggestedLine
    fields = ("position", "code", "units", "modifiers", "minutes", "rules", "explanation", "ndc", "ndc_quantity", "ndc_unit", "accepted_by", "accepted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Suggestion)
class SuggestionAdmin(PhiAdminMixin, admin.ModelAdmin):
    phi_category = Category.CODING

    list_display = ("encounter", "ruleset_version", "is_current", "created_at")
    list_filter = ("is_current", "ruleset_version")
    list_select_related = ("encounter__patient",)
    readonly_fields = ("encounter", "ruleset_version", "engine_input", "policy", "not_billed", "warnings", "is_current", "created_at")
    inlines = [SuggestedLineInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OverrideReason)
class OverrideReasonAdmin(AdminRoleOnly, admin.ModelAdmin):
    """The coders' override reasons: admins add and rename them, and retire
    one by unticking "active" (final lines keep pointing at it: no delete)."""

    list_display = ("label", "code", "is_active", "position")
    list_editable = ("is_active", "position")
    search_fields = ("code", "label")

    def get_readonly_fields(self, request, obj=None):
        # Reports group by the code: renaming it would split the history.
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyRecordAdmin(PhiAdminMixin, AdminRoleOnly, admin.ModelAdmin):
    phi_category = Category.CODING
    """Review records change only through coding.services (locks, versions, audit)."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EncounterReview)
class EncounterReviewAdmin(ReadOnlyRecordAdmin):
    list_display = ("encounter", "status", "returned_after_amendment", "finalised_by", "finalised_at", "version")
    list_filter = ("status", "returned_after_amendment")
    list_select_related = ("encounter__patient", "finalised_by")


@admin.register(FinalLine)
class FinalLineAdmin(ReadOnlyRecordAdmin):
    """Decisions beside the suggestion: the override rate and its reasons."""

    list_display = ("review", "action", "code", "units", "modifiers", "reason", "decided_by", "decided_at", "is_current")
    list_filter = ("action", "reason", "is_current")
    list_select_related = ("review__encounter", "reason", "decided_by")


@admin.register(DocumentationQuery)
class DocumentationQueryAdmin(ReadOnlyRecordAdmin):
    list_display = ("encounter", "status", "asked_by", "asked_at", "answered_by", "answered_at")
    list_filter = ("status",)
    list_select_related = ("encounter__patient", "asked_by", "answered_by")


@admin.register(ExportLog)
class ExportLogAdmin(ReadOnlyRecordAdmin):
    list_display = ("created_at", "requested_by", "source", "format", "date_from", "date_to", "line_count")
    list_filter = ("source", "format")
