"""Audit trail: one row per request that reads or writes patient data, per
authentication event and per change of a user's privileges.

Fields follow ASTM E2147-18 §7.1 and 45 CFR 170.210(e)(1): when (`at`, UTC),
who (`actor`, `username`, `role`), what (`action`, `category`), which record
(`object_type`, `object_id`, `patient_id`), how it ended (`outcome`) and which
request (`request_id`, the correlation id shown on error pages).

The rows are append-only (RELIABILITY AUD-4): a PostgreSQL trigger refuses
UPDATE and DELETE even for the table's owner, and the application role
`chairside_app` holds only SELECT and INSERT on the table (audit/dbroles.py).
They form a SHA-256 hash chain (AUD-5): `row_hash = SHA-256(prev_hash ‖
canonical row)` in `seq` order, appended under the lock of the one
`AuditChainHead` row (audit/chain.py); `manage.py verify_audit` recomputes it.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    # Refused by access control: 403 (wrong role) or 404 (another clinic's record).
    DENIED = "denied", "Denied"
    # The request was understood and refused for what it asked (400 form errors, 409 signed record, bad password).
    FAILURE = "failure", "Failure"
    # The server failed (500).
    ERROR = "error", "Error"


class Category(models.TextChoices):
    """The kind of data an event read or wrote (ASTM E2147 "type of data")."""

    DEMOGRAPHICS = "demographics", "Patient demographics"
    CLINICAL = "clinical", "Clinical documentation"
    CODING = "coding", "Coding and billing"
    AUTHENTICATION = "authentication", "Authentication"
    PRIVILEGES = "privileges", "User privileges"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True, help_text="Position in the hash chain: 1, 2, 3, ... without gaps.")
    at = models.DateTimeField(default=timezone.now, db_index=True, help_text="Server time (UTC) of the event: the ts of AUD-1.")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    username = models.CharField(max_length=150, blank=True, help_text="As typed for a failed log-in; the actor's otherwise (kept if the user is renamed).")
    role = models.CharField(max_length=120, blank=True, help_text="The actor's groups at the time, comma-separated.")
    action = models.CharField(max_length=80, help_text="Dotted name, e.g. charting.administration.stopped")
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.SYSTEM)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    patient_id = models.UUIDField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    request_id = models.CharField(max_length=32, blank=True, db_index=True, help_text="Correlation id of the HTTP request (X-Request-ID); empty for tasks and commands.")
    detail = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, help_text="row_hash of the row before (seq - 1); 64 zeros for the first.")
    row_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex of prev_hash + the canonical row (audit/chain.py).")

    class Meta:
        ordering = ["-seq"]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="audit_outcome_valid", violation_error_message="Unknown outcome."),
            models.CheckConstraint(condition=Q(category__in=Category.values), name="audit_category_valid", violation_error_message="Unknown data category."),
            models.CheckConstraint(condition=Q(seq__gte=1), name="audit_seq_positive", violation_error_message="The chain starts at 1."),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.outcome}"


class AuditChainHead(models.Model):
    """The end of the hash chain: one row (id 1), locked by every append.

    Appending takes this row FOR UPDATE (INSERT ... ON CONFLICT DO UPDATE), so
    concurrent transactions append one after the other in commit order, and
    `verify_audit` compares the last row with it: a row deleted from the end
    of the chain, which leaves no broken link, still shows.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="audit_chain_head_single_row", violation_error_message="There is one chain head.")]
