"""Seed the coder's override reasons (editable afterwards in the admin)."""

from django.db import migrations

REASONS = [
    ("documentation_supports_other_code", "Documentation supports a different code"),
    ("units_miscounted", "Units do not match the documented time or dose"),
    ("modifier_missing", "Modifier missing"),
    ("modifier_not_supported", "Modifier not supported by the documentation"),
    ("payer_rule", "Payer-specific rule"),
    ("not_separately_reportable", "Not separately reportable (bundled)"),
    ("duplicate_line", "Duplicate line"),
    ("service_not_documented", "Service not documented"),
    ("service_missing", "Documented service missing from the suggestion"),
    ("ndc_correction", "NDC or NDC quantity correction"),
    ("other", "Other (explain in the note)"),
]


def seed(apps, schema_editor):
    OverrideReason = apps.get_model("coding", "OverrideReason")
    for position, (code, label) in enumerate(REASONS, start=1):
        OverrideReason.objects.get_or_create(code=code, defaults={"label": label, "position": position})


class Migration(migrations.Migration):
    dependencies = [("coding", "0007_review_override_query_export")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
