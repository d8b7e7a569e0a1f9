"""Audit rows: ts/user/role/category/outcome/request id (AUD-1), a SHA-256 hash
chain (AUD-5), an append-only trigger and the chairside_app role (AUD-4).

Rows written before this migration are chained in id order, then the
trigger is installed (PostgreSQL only)."""

import datetime

import django.utils.timezone
from django.db import migrations, models


def chain_existing_rows(apps, schema_editor):
    import hashlib
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    from audit.chain import CANONICAL_FIELDS, GENESIS

    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    previous, seq = GENESIS, 0
    for event in AuditEvent.objects.order_by("at", "id").iterator():
        seq += 1
        event.seq, event.prev_hash = seq, previous
        event.category = {"charting": "clinical", "coding": "coding"}.get(event.action.split(".", 1)[0], "system")
        # Same canonical form as audit.chain.canonical (the historical model has no methods).
        values = {}
        for name in CANONICAL_FIELDS:
            value = getattr(event, name)
            if name == "at":
                value = value.astimezone(datetime.UTC).isoformat(timespec="microseconds")
            elif name == "patient_id":
                value = str(value) if value is not None else None
            values[name] = value
        event.detail = json.loads(json.dumps(event.detail or {}, cls=DjangoJSONEncoder))
        values["detail"] = event.detail
        body = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder).encode()
        event.row_hash = hashlib.sha256(previous.encode() + body).hexdigest()
        event.save(update_fields=["seq", "prev_hash", "row_hash", "category", "detail"])
        previous = event.row_hash
    AuditChainHead.objects.update_or_create(pk=1, defaults={"seq": seq, "last_hash": previous if seq else ""})


def install_append_only(apps, schema_editor):
    from audit.dbroles import APPEND_ONLY_FUNCTION, append_only_trigger, apply_grants

    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(APPEND_ONLY_FUNCTION, params=None)
    schema_editor.execute(append_only_trigger("audit_auditevent"), params=None)
    apply_grants(schema_editor.connection)


def remove_append_only(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit_auditevent")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("seq", models.BigIntegerField(default=0)),
                ("last_hash", models.CharField(blank=True, max_length=64)),
            ],
            options={
                "constraints": [models.CheckConstraint(condition=models.Q(("id", 1)), name="audit_chain_head_single_row", violation_error_message="There is one chain head.")],
            },
        ),
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ["-seq"]}),
        migrations.AlterField(
            model_name="auditevent",
            name="at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now, help_text="Server time (UTC) of the event: the ts of AUD-1."),
        ),
        migrations.AddField(model_name="auditevent", name="seq", field=models.BigIntegerField(null=True)),
        migrations.AddField(
            model_name="auditevent",
            name="username",
            field=models.CharField(blank=True, default="", help_text="As typed for a failed log-in; the actor's otherwise (kept if the user is renamed).", max_length=150),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="role",
            field=models.CharField(blank=True, default="", help_text="The actor's groups at the time, comma-separated.", max_length=120),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="category",
            field=models.CharField(
                choices=[("demographics", "Patient demographics"), ("clinical", "Clinical documentation"), ("coding", "Coding and billing"), ("authentication", "Authentication"), ("privileges", "User privileges"), ("system", "System")],
                default="system",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="outcome",
            field=models.CharField(choices=[("success", "Success"), ("denied", "Denied"), ("failure", "Failure"), ("error", "Error")], default="success", max_length=10),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="request_id",
            field=models.CharField(blank=True, db_index=True, default="", help_text="Correlation id of the HTTP request (X-Request-ID); empty for tasks and commands.", max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", help_text="row_hash of the row before (seq - 1); 64 zeros for the first.", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(model_name="auditevent", name="row_hash", field=models.CharField(max_length=64, null=True)),
        migrations.RunPython(chain_existing_rows, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(help_text="Position in the hash chain: 1, 2, 3, ... without gaps.", unique=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="row_hash",
            field=models.CharField(help_text="SHA-256 hex of prev_hash + the canonical row (audit/chain.py).", max_length=64, unique=True),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(condition=models.Q(("outcome__in", ["success", "denied", "failure", "error"])), name="audit_outcome_valid", violation_error_message="Unknown outcome."),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(("category__in", ["demographics", "clinical", "coding", "authentication", "privileges", "system"])),
                name="audit_category_valid",
                violation_error_message="Unknown data category.",
            ),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(condition=models.Q(("seq__gte", 1)), name="audit_seq_positive", violation_error_message="The chain starts at 1."),
        ),
        migrations.RunPython(install_append_only, remove_append_only),
    ]
