"""Admin: catalog upkeep and read-mostly views of clinical rows.

Clinical documentation changes through the nurse screens (services), so the
charting rows are read-only here; the drug catalog and clinics are edited.
"""

from django.contrib import admin

from .models import AccessSite, Administration, Clinic, DocumentationFlag, Drug, Encounter, OtherService, Patient, Pause, TimeCorrection


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone"]
    filter_horizontal = ["staff"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["family_name", "given_name", "mrn", "clinic"]
    list_filter = ["clinic"]
    search_fields = ["mrn", "family_name"]


@admin.register(Drug)
class DrugAdmin(admin.ModelAdmin):
    list_display = ["name", "brand", "hcpcs", "billing_unit_value", "billing_unit_unit", "admin_family", "single_dose", "unverified"]
    list_filter = ["is_verified", "admin_family", "single_dose"]
    search_fields = ["name", "brand", "hcpcs"]

    @admin.display(boolean=True, description="unverified", ordering="is_verified")
    def unverified(self, drug: Drug) -> bool:
        return not drug.is_verified


class ReadOnlyAdmin(admin.ModelAdmin):
    """Clinical rows: changed only through services (audit, locks, state checks)."""

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


for model in (AccessSite, Pause, TimeCorrection, OtherService, DocumentationFlag):
    admin.site.register(model, ReadOnlyAdmin)
