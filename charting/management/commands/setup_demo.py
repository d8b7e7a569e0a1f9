"""Demo data for `make run`: invented clinic, people, patients and encounters.

Idempotent: running it again changes nothing that is already there. Every
patient is invented; no data comes from anywhere real.
"""

import io
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from charting.models import Clinic, DosingBasis, Drug, Encounter, Patient

DEMO_PASSWORD = "chairside-demo"
DEMO_CLINIC = "Chairside Demo Clinic (America/New_York)"
DEMO_PEOPLE = (
    # username, first, last, group
    ("nurse", "Nora", "Reyes", "nurse"),
    ("coder", "Colin", "Baptiste", "coder"),
    ("admin", "Ada", "Okafor", "admin"),
)
# What the demo admin marked as ordered by weight (mg/kg), so the drug cards
# show the Dosing help; in a real clinic an admin decides it (Django admin).
DEMO_MG_PER_KG = ("infliximab", "infliximab-dyyb", "infliximab-abda", "tocilizumab")
TODAY_PATIENTS = (
    # mrn, given, family: invented
    ("DEMO-0001", "Marigold", "Ashdown"),
    ("DEMO-0002", "Tobias", "Quenby"),
    ("DEMO-0003", "Philippa", "Strand"),
)


class Command(BaseCommand):
    help = "Create the demo clinic, the users nurse / coder / admin, the drug catalog and demo encounters."

    def add_arguments(self, parser):
        parser.add_argument("--scenarios", nargs="*", default=None, help="Scenario files to import as signed demo encounters (default: tests/scenarios/*.json).")

    def handle(self, *args, scenarios=None, **options):
        """Prints one line per step saying what it created and what was there
        already (the sub-commands' own lines are summed up, not repeated)."""
        seeded = io.StringIO()
        call_command("seed_drug_catalog", stdout=seeded)
        self.stdout.write(seeded.getvalue().strip())
        Drug.objects.filter(name__in=DEMO_MG_PER_KG).update(dosing_basis=DosingBasis.MG_PER_KG)
        files = scenarios if scenarios is not None else sorted(str(p) for p in (Path(settings.BASE_DIR) / "tests" / "scenarios").glob("*.json"))
        if files:
            imported = io.StringIO()
            call_command("import_scenarios", *files, stdout=imported)
            lines = imported.getvalue().splitlines()
            new, there = sum(line.startswith("imported ") for line in lines), sum(line.startswith("skipped ") for line in lines)
            self.stdout.write(f"scenarios: {len(files)} files: {new} encounters imported (signed and coded), {there} already there")
        with transaction.atomic():
            clinic, clinic_created = Clinic.objects.get_or_create(name=DEMO_CLINIC, defaults={"time_zone": "America/New_York"})
            User = get_user_model()
            users_created = 0
            for username, first, last, group_name in DEMO_PEOPLE:
                user, created = User.objects.get_or_create(username=username, defaults={"first_name": first, "last_name": last})
                if created:
                    user.set_password(DEMO_PASSWORD)
                    user.is_staff = group_name == "admin"
                    user.is_superuser = group_name == "admin"
                    user.save()
                    users_created += 1
                group, _ = Group.objects.get_or_create(name=group_name)
                user.groups.add(group)
                # The demo people work at every demo clinic (one per scenario time zone).
                for c in Clinic.objects.filter(name__startswith="Chairside Demo Clinic"):
                    c.staff.add(user)
            today = timezone.localdate(timezone=clinic.tz)
            encounters_created = 0
            for mrn, given, family in TODAY_PATIENTS:
                patient, _ = Patient.objects.get_or_create(clinic=clinic, mrn=mrn, defaults={"given_name": given, "family_name": family})
                if not patient.encounters.filter(date_of_service=today).exists():
                    Encounter.objects.create(patient=patient, clinic=clinic, setting="office", date_of_service=today)
                    encounters_created += 1
        self.stdout.write(f"clinic {DEMO_CLINIC!r}: {'created' if clinic_created else 'already there'}")
        self.stdout.write(f"users nurse, coder, admin: {users_created} created, {len(DEMO_PEOPLE) - users_created} already there")
        self.stdout.write(f"today's encounters ({today.isoformat()}): {encounters_created} opened, {len(TODAY_PATIENTS) - encounters_created} already open")
        # Flags at once, rather than after beat's first sweep period.
        swept = io.StringIO()
        call_command("sweep_flags", stdout=swept)
        self.stdout.write(f"flags: {swept.getvalue().strip()}")
        self.stdout.write(self.style.SUCCESS(f"Demo ready: log in as nurse, coder or admin with password {DEMO_PASSWORD!r}."))
