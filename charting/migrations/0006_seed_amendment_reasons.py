"""Seed the amendment reasons (editable afterwards in the admin)."""

from django.db import migrations

REASONS = [
    ("transcription_error", "Transcription error"),
    ("late_information", "Information received after signing"),
    ("coder_query", "Answer to a coder's query"),
    ("wrong_field", "Charted in the wrong field"),
    ("device_time", "Pump or device time differs from the chart"),
    ("other", "Other (explain in the note)"),
]


def seed(apps, schema_editor):
    AmendmentReason = apps.get_model("charting", "AmendmentReason")
    for position, (code, label) in enumerate(REASONS, start=1):
        AmendmentReason.objects.get_or_create(code=code, defaults={"label": label, "position": position})


class Migration(migrations.Migration):
    dependencies = [("charting", "0005_amendments")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
