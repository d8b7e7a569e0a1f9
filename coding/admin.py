"""Read-only admin for suggestions: the engine's output is changed by re-coding, never by hand."""

from django.contrib import admin

from .models import SuggestedLine, Suggestion


class SuggestedLineInline(admin.TabularInline):
    model = SuggestedLine
    fields = ("position", "code", "units", "modifiers", "minutes", "rules", "explanation", "accepted_by", "accepted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ("encounter", "ruleset_version", "is_current", "created_at")
    list_filter = ("is_current", "ruleset_version")
    list_select_related = ("encounter__patient",)
    readonly_fields = ("encounter", "ruleset_version", "engine_input", "not_billed", "warnings", "is_current", "created_at")
    inlines = [SuggestedLineInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
