"""Admin: catalog upkeep and read-mostly views of clinical rows.

Clinical documentation changes through the nurse screens (services), so the
charting rows are read-only here; the drug catalog and clinics are edited.
"""

from django.contrib import admin
from django.utils import timezone

from audit.models import Category
from audit.phi import PhiAdminMixin

from .models import (
    AccessSite,
    AccessSiteCheck,
    Administration,
    Amendment,
    AmendmentReason,
    Clinic,
    DocumentationFlag,
    Drug,
    Encounter,
    OtherService,
    Patient,
    PatientScan,
    Pause,
    Reaction,
    SweepRun,
    TimeCorrection,
    VitalSigns,
    dose_tiers,
)


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "site_check_minutes"]
    filter_horizontal = ["staff"]


@admin.register(Patient)
class PatientAdmin(PhiAdminMixin, admin.ModelAdmin):
    phi_category = Category.DEMOGRAPHICS
    list_display = ["family_name", "given_name", "mrn", "clinic"]
    list_filter = ["clinic"]
    search_fields = ["mrn", "family_name"]


class VerificationFilter(admin.SimpleListFilter):
    title = "verification"
    parameter_name = "verification"

    def lookups(self, request, model_admin):
        return [("unverified", "Unverified (to confirm)"), ("verified", "Confirmed by an admin")]

    def queryset(self, request, queryset):
        if self.value() in ("unverified", "verified"):
            return queryset.filter(is_verified=self.value() == "verified")
        return queryset


@admin.register(Drug)
class DrugAdmin(admin.ModelAdmin):
    # "unverified" right after the name: on a tablet the last columns of a
    # wide list are off-screen, and the marks must stay visible to admins
    # until confirmed (the brief; fresh-clone review, session 4).
    list_display = ["name", "unverified", "brand", "codes", "billing_unit_value", "billing_unit_unit", "admin_family", "single_dose", "dosing_basis", "vial_sizes_mg"]
    list_filter = [VerificationFilter, "admin_family", "single_dose", "dosing_basis"]
    search_fields = ["name", "brand", "hcpcs"]

    @admin.display(boolean=True, description="unverified", ordering="is_verified")
    def unverified(self, drug: Drug) -> bool:
        return not drug.is_verified

    @admin.display(description="HCPCS", ordering="hcpcs")
    def codes(self, drug: Drug) -> str:
        """The catalog code, or every "up to" code by dose (Drug.dose_tiers)."""
        try:
            tiers = dose_tiers(drug.dose_tiers)
        except ValueError:
            return f"{drug.hcpcs} (tiers unusable: open the drug)"
        return "; ".join(f"{hcpcs} up to {amount} {unit}" for amount, unit, hcpcs in tiers) or drug.hcpcs


class ReadOnlyAdmin(PhiAdminMixin, admin.ModelAdmin):
    """Clinical rows: changed only through services (audit, locks, state checks).
    Every page is a PHI read with its audit row (audit.phi.PhiAdminMixin)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Encounter)
class EncounterAdmin(ReadOnlyAdmin):
    list_display = ["patient", "clinic", "date_of_service", "setting", "status"]
    list_filter = ["status", "clinic", "setting"]
    list_select_related = ["patient", "clinic"]


@admin.register(Administration)
class AdministrationAdmin(ReadOnlyAdmin):
    list_display = ["drug", "route", "encounter", "started_at", "stopped_at"]
    list_select_related = ["drug", "encounter__patient"]


for model in (AccessSite, Pause, TimeCorrection, OtherService):
    admin.site.register(model, ReadOnlyAdmin)


# Issue #8's chair-side rows, read-only like the rest (struck rows included:
# `objects` is the plain manager; "entered in error" shows in the columns).
@admin.register(AccessSiteCheck)
class AccessSiteCheckAdmin(ReadOnlyAdmin):
    list_display = ["site", "finding", "checked_by", "checked_at"]
    list_select_related = ["site", "checked_by"]
    ordering = ["-checked_at"]


@admin.register(PatientScan)
class PatientScanAdmin(ReadOnlyAdmin):
    """Wristband checks, mismatches included (a wrong-patient near miss)."""

    list_display = ["encounter", "result", "scanned_by", "scanned_at"]
    list_filter = ["result"]
    list_select_related = ["encounter__patient", "scanned_by"]
    ordering = ["-scanned_at"]


@admin.register(VitalSigns)
class VitalSignsAdmin(ReadOnlyAdmin):
    list_display = ["encounter", "taken_at", "systolic_mmhg", "diastolic_mmhg", "pulse_per_min", "spo2_percent", "temperature_c", "weight_kg", "entered_in_error_at"]
    list_select_related = ["encounter__patient"]
    ordering = ["-taken_at"]


@admin.register(Reaction)
class ReactionAdmin(ReadOnlyAdmin):
    list_display = ["encounter", "onset_at", "grade", "symptoms", "outcome", "entered_in_error_at"]
    list_filter = ["grade", "outcome"]
    list_select_related = ["encounter__patient"]
    ordering = ["-onset_at"]


class FlagStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(DocumentationFlag)
class DocumentationFlagAdmin(ReadOnlyAdmin):
    """Flags by age, oldest first: what has waited longest for a nurse.

    Raised and resolved only by the sweep (services.sweep_flags), so read-only.
    """

    list_display = ["message", "kind", "patient", "date_of_service", "clinic", "age", "created_at", "resolved_at"]
    list_filter = [FlagStateFilter, "kind", "encounter__clinic", "encounter__status"]
    list_select_related = ["encounter__patient", "encounter__clinic"]
    ordering = ["created_at", "pk"]
    search_fields = ["message", "encounter__patient__mrn", "encounter__patient__family_name"]
    date_hierarchy = "created_at"

    @admin.display(description="patient", ordering="encounter__patient__family_name")
    def patient(self, flag: DocumentationFlag) -> str:
        return f"{flag.encounter.patient} (MRN {flag.encounter.patient.mrn})"

    @admin.display(description="date of service", ordering="encounter__date_of_service")
    def date_of_service(self, flag: DocumentationFlag):
        return flag.encounter.date_of_service

    @admin.display(description="clinic", ordering="encounter__clinic__name")
    def clinic(self, flag: DocumentationFlag) -> str:
        return flag.encounter.clinic.name

    @admin.display(description="age", ordering="created_at")
    def age(self, flag: DocumentationFlag) -> str:
        """Open: how long it has waited; resolved: how long it took."""
        seconds = int(((flag.resolved_at or timezone.now()) - flag.created_at).total_seconds())
        days, rest = divmod(seconds, 86400)
        return f"{days} d {rest // 3600} h" if days else f"{rest // 3600} h {rest % 3600 // 60} min"


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "period_start", "opened", "resolved", "still_open", "finished_at"]
    ordering = ["-started_at"]


@admin.register(AmendmentReason)
class AmendmentReasonAdmin(admin.ModelAdmin):
    """The maintained list of amendment reasons: edited here, retired by
    unticking "active" (amendments keep pointing at it: no delete)."""

    list_display = ["label", "code", "is_active", "position"]
    list_editable = ["is_active", "position"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Amendment)
class AmendmentAdmin(ReadOnlyAdmin):
    list_display = ["recorded_at", "encounter", "administration", "field", "old_value", "new_value", "reason", "author"]
    list_filter = ["field", "reason"]
    list_select_related = ["encounter__patient", "administration__drug", "reason", "author"]
