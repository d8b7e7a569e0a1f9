from django.contrib import admin

from audit.models import Category
from audit.phi import PhiAdminMixin

from .models import ExportLog


@admin.register(ExportLog)
class ExportLogAdmin(PhiAdminMixin, admin.ModelAdmin):
    """Read-only: the export log is a record of what left the system."""

    phi_category = Category.SYSTEM

    list_display = ("at", "actor", "report", "table", "format", "row_count", "completed_at")
    list_filter = ("report", "format")
    readonly_fields = [f.name for f in ExportLog._meta.fields] + ["clinics"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
