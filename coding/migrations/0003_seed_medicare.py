"""Seed the payer `medicare` with the engine defaults of coding-rules.md (D1, D3, D8, D9, D11).

The values are written out rather than read from `coding.engine.MEDICARE`: a
migration replays the same rows forever, whatever the engine says later. A test
checks that the seeded row still equals the engine's defaults.
"""

from django.db import migrations

MEDICARE = {
    "name": "Medicare (traditional Part B)",
    "distinct_modifier": "59",
    "separate_encounter_modifier": "59",
    "injection_repeat_modifier": "59",
    "secondary_hydration_59": "chemo_initial_only",
    "report_jz": True,
}


def seed_medicare(apps, schema_editor):
    Payer = apps.get_model("coding", "Payer")
    Payer.objects.get_or_create(code="medicare", defaults=MEDICARE)


class Migration(migrations.Migration):
    dependencies = [("coding", "0002_payer")]

    # Reversing leaves the row: it may have been edited (or used) since.
    operations = [migrations.RunPython(seed_medicare, migrations.RunPython.noop)]
