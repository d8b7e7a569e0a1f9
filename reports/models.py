"""The export log: one row per report export, who asked for what, when, and how
many rows it held (issue 6: "each export itself logged").

Exports also write an audit row (`reports.<report>.exported`); this table is the
auditor's register of what left the system, readable without parsing audit
detail JSON.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from charting.models import Clinic


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (XLSX)"


class ExportLogQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Exports that covered one of the clinics `user` works in."""
        return self.filter(clinics__in=Clinic.objects.filter(staff=user)).distinct()


class ExportLog(models.Model):
    """One export of one report table.

    Written when the export starts; `row_count` and `completed_at` are filled
    in when its last row has been sent. A row with neither is an export the
    client abandoned (or that failed) before the end.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    report = models.CharField(max_length=40, help_text="Report slug, e.g. timing.")
    table = models.CharField(max_length=40, help_text="Table of the report, e.g. near_threshold.")
    format = models.CharField(max_length=4, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict, help_text="Filters as applied: clinics, date range, user, patient.")
    clinics = models.ManyToManyField(Clinic, related_name="+", help_text="Clinics the export covered.")
    row_count = models.PositiveIntegerField(null=True, blank=True, help_text="Data rows sent (header not counted).")
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ExportLogQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(format__in=ExportFormat.values), name="report_export_log_format_valid", violation_error_message="Unknown export format."),
            models.CheckConstraint(
                condition=Q(row_count__isnull=True, completed_at__isnull=True) | Q(row_count__isnull=False, completed_at__isnull=False),
                name="report_export_log_completed_with_count",
                violation_error_message="A completed export records how many rows it sent.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.report}/{self.table}.{self.format} by {self.actor} at {self.at:%Y-%m-%d %H:%M}"
