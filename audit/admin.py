"""The audit trail in the Django admin: read-only (RELIABILITY AUD-4).

No add, change or delete permission for anyone, superusers included; the
database refuses UPDATE and DELETE anyway (audit/dbroles.py).
"""

from django.contrib import admin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "at", "username", "role", "action", "category", "outcome", "object_type", "object_id", "patient_id", "request_id"]
    list_filter = ["outcome", "category"]
    search_fields = ["action", "username", "object_id", "request_id"]
    date_hierarchy = "at"
    list_select_related = []

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
