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


def _panel(html: str) -> str:
    start = html.index('<section class="card mb-3 ready-to-bill')
    return html[start : html.index("</section>", start) + len("</section>")]


def test_the_panel_refreshes_from_its_own_url_and_shows_what_the_page_shows(nurse_client, nurse, adm):
    """Session 4: the panel re-fetched the whole encounter page after every tap
    (twice the work, and each tap logged as a chart view). Its own URL renders
    the same panel, from the same checks, with a constant number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditEvent

    page = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter.pk})).content.decode()
    url = reverse("charting:ready_panel", kwargs={"pk": adm.encounter.pk})
    assert f'hx-get="{url}"' in _panel(page)
    services.start_administration(adm, actor=nurse)
    fresh = nurse_client.get(url, HTTP_HX_REQUEST="true", HTTP_X_CHAIRSIDE_BACKGROUND="1")
    assert fresh.status_code == 200 and fresh["Cache-Control"].startswith("max-age=0")
    body = fresh.content.decode()
    assert "Stop every drug before signing: infliximab (running)." in body
    assert _panel(body) == _panel(nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter.pk})).content.decode())
    row = AuditEvent.objects.order_by("-pk").filter(action__startswith="charting.encounter.").values_list("action", flat=True)[1]
    assert row == "charting.encounter.ready_panel_refreshed"  # [0] is the page just read: a view
    for _ in range(3):
        AdministrationFactory(encounter=adm.encounter, drug=DrugFactory(name=f"drug {_}"), access_site=adm.access_site)
    with CaptureQueriesContext(connection) as many:
        nurse_client.get(url)
    one = EncounterFactory(patient=PatientFactory(clinic=adm.encounter.clinic))
    AdministrationFactory(encounter=one, drug=DrugFactory(name="infliximab"), access_site=AccessSiteFactory(encounter=one, label="A"))  # 1 vs 4 (none skips the prefetches)
    with CaptureQueriesContext(connection) as few:
        nurse_client.get(reverse("charting:ready_panel", kwargs={"pk": one.pk}))
    assert len(many) == len(few)
