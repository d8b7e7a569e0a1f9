"""Read-only admin pages of issue #8's chair-side rows (site checks, wristband
checks, vitals, reactions): an admin with the view permission sees them, each
page is an audited PHI read, nobody adds, changes or deletes there."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting.models import AccessSiteCheck, PatientScan, Reaction, VitalSigns
from tests.factories import AccessSiteFactory, EncounterFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(clinic, nurse):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    now = timezone.now()
    site = AccessSiteFactory(encounter=enc, label="A")
    return {
        "accesssitecheck": AccessSiteCheck.objects.create(site=site, checked_at=now, checked_by=nurse, finding="patent"),
        "patientscan": PatientScan.objects.create(encounter=enc, result="mismatch", scanned_by=nurse, scanned_at=now),
        "vitalsigns": VitalSigns.objects.create(encounter=enc, taken_at=now, systolic_mmhg=121, diastolic_mmhg=79, weight_kg=Decimal("70.5"), recorded_by=nurse),
        "reaction": Reaction.objects.create(encounter=enc, onset_at=now, grade=2, symptoms="flushing", recorded_by=nurse),
    }


@pytest.mark.parametrize("model", ["accesssitecheck", "patientscan", "vitalsigns", "reaction"])
def test_an_admin_views_the_rows_read_only_and_each_page_is_audited(client, admin, rows, model):
    admin.user_permissions.add(*Permission.objects.filter(codename__in=[f"{verb}_{model}" for verb in ("view", "add", "change", "delete")]))
    client.force_login(admin)
    before = AuditEvent.objects.count()
    listing = client.get(reverse(f"admin:charting_{model}_changelist"))
    assert listing.status_code == 200
    assert [r.pk for r in listing.context["cl"].result_list] == [rows[model].pk]
    detail = client.get(reverse(f"admin:charting_{model}_change", args=[rows[model].pk]))
    assert detail.status_code == 200 and b'name="_save"' not in detail.content  # no Save button: read-only
    assert client.get(reverse(f"admin:charting_{model}_add")).status_code == 403
    assert client.post(reverse(f"admin:charting_{model}_delete", args=[rows[model].pk]), {"post": "yes"}).status_code == 403
    assert type(rows[model]).objects.filter(pk=rows[model].pk).exists()
    assert AuditEvent.objects.count() - before >= 2  # the list and the record: PHI reads (AUD-1)


def test_the_drug_list_shows_unverified_next_to_the_name_and_the_codes_by_dose(client, admin):
    from django.core.management import call_command

    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    admin.user_permissions.add(Permission.objects.get(codename="view_drug"))
    client.force_login(admin)
    url = reverse("admin:charting_drug_changelist")
    page = client.get(url)
    assert page.status_code == 200
    headers = list(page.context["cl"].list_display)  # after the action checkbox
    assert headers[headers.index("name") + 1] == "unverified"
    html = page.content.decode()
    assert "J2920 up to 40 mg; J2930 up to 125 mg" in html
    unverified = client.get(url + "?verification=unverified").context["cl"].result_list
    assert len(unverified) > 0 and not any(d.is_verified for d in unverified)
