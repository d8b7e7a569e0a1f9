"""Seed the payer `independence_blue_cross`, the engine's second built-in policy:
Medicare defaults except R37's SC/IM drugs in the therapeutic family (certolizumab
J0717, denosumab J0897, leuprolide J1950 -> 96372).

Stored here so an admin can edit it like any payer; written out rather than read
from `coding.engine.policy` (a migration replays the same rows forever). A test
checks that every seeded payer still equals the engine's built-in policy.
"""

from django.db import migrations

CODE = "independence_blue_cross"
OVERRIDES = (("J0717", "therapeutic"), ("J0897", "therapeutic"), ("J1950", "therapeutic"))


def seed(apps, schema_editor):
    Payer = apps.get_model("coding", "Payer")
    PayerFamilyOverride = apps.get_model("coding", "PayerFamilyOverride")
    payer, created = Payer.objects.get_or_create(code=CODE, defaults={"name": "Independence Blue Cross"})
    if created:
        PayerFamilyOverride.objects.bulk_create(PayerFamilyOverride(payer=payer, hcpcs=hcpcs, family=family) for hcpcs, family in OVERRIDES)


class Migration(migrations.Migration):
    dependencies = [("coding", "0004_payer_all_policy_settings")]

    # Reversing leaves the row: it may have been edited (or used) since.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
