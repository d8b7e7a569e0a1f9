"""The "ready to bill" panel follows the chart without a reload, and never
offers "Sign anyway" while a drug runs (signing would be refused)."""

import pytest
from django.urls import reverse

from charting import services
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def adm(clinic):
    encounter = EncounterFactory(patient=PatientFactory(clinic=clinic))
    site = AccessSiteFactory(encounter=encounter, label="A")
    return AdministrationFactory(encounter=encounter, label="infliximab", drug=DrugFactory(name="infliximab"), access_site=site, started_at=None, stopped_at=None)


def test_a_drug_action_tells_the_panel_to_reload(nurse_client, adm):
    response = nurse_client.post(reverse("charting:start_administration", kwargs={"pk": adm.pk}), **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "chart-changed"


def test_the_panel_listens_for_chart_changes(nurse_client, adm):
    page = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter.pk})).content.decode()
    panel = page[page.index('id="ready-to-bill"') - 200 : page.index('id="ready-to-bill"') + 600]
    assert 'hx-trigger="chart-changed from:body"' in panel
    assert 'hx-select="#ready-to-bill"' in panel


def test_no_sign_anyway_while_a_drug_runs(nurse_client, nurse, adm):
    services.start_administration(adm, actor=nurse)
    page = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter.pk})).content.decode()
    assert 'data-testid="ready-running"' in page
    assert "Stop every drug before signing: infliximab (running)." in page
    assert 'data-testid="sign-anyway"' not in page
