"""coding.documentation: the ORM -> EncounterDoc bridge."""

import datetime as dt
from decimal import Decimal

import pytest

from charting.models import Administration, Encounter, OtherService, Pause
from coding.documentation import doc_to_json, encounter_doc
from coding.engine import evaluate, parse_scenario

pytestmark = pytest.mark.django_db


def _add_pauses_and_services(encounter):
    for adm in encounter.administrations.all():
        Pause.objects.create(administration=adm, paused_at=adm.started_at + dt.timedelta(minutes=5), resumed_at=adm.started_at + dt.timedelta(minutes=10))
    OtherService.objects.create(encounter=encounter, kind="supplies", detail="tubing")


@pytest.mark.parametrize("n", [1, 10])
def test_encounter_doc_takes_the_same_queries_for_1_and_10_administrations(make_encounter, django_assert_num_queries, n):
    encounter = make_encounter(n)
    _add_pauses_and_services(encounter)
    fresh = Encounter.objects.get(pk=encounter.pk)

    # clinic, access sites, administrations JOIN drug, pauses, vials, other services
    with django_assert_num_queries(6):
        doc = encounter_doc(fresh)

    assert len(doc.administrations) == n
    assert all(len(a.pauses) == 1 for a in doc.administrations)


def test_encounter_doc_maps_the_chart(make_encounter):
    encounter = make_encounter(2)
    first, second = encounter.administrations.order_by("started_at")
    first.drug.hcpcs, first.drug.billing_unit_value, first.drug.billing_unit_unit = "J9999", Decimal(10), "mg"
    first.drug.save()
    Administration.objects.filter(pk=second.pk).update(hcpcs_override="J8888", visit="2", concurrent_with=first, bag="B1")

    doc = encounter_doc(Encounter.objects.get(pk=encounter.pk))

    by_id = {a.id: a for a in doc.administrations}
    a1, a2 = by_id[str(first.pk)], by_id[str(second.pk)]
    site = encounter.access_sites.get()
    assert doc.timezone == "America/New_York" and doc.setting == "office" and doc.payer == "medicare"
    assert doc.access_sites[0].id == str(site.pk) and a1.access_site == str(site.pk)
    assert a1.hcpcs == "J9999" and a1.hcpcs_unit.value == 10 and a1.hcpcs_unit.unit == "mg"
    assert a1.dose.value == Decimal(100) and str(a1.dose.value) == "100"
    assert a2.hcpcs == "J8888" and a2.hcpcs_unit is None  # the catalog unit belongs to another code
    assert a2.encounter == "2" and a2.concurrent_with == str(first.pk) and a2.bag == "B1"
    assert a1.start.tzinfo is not None


def test_doc_to_json_replays_to_the_same_doc_and_result(make_encounter):
    encounter = make_encounter(3)
    _add_pauses_and_services(encounter)
    doc = encounter_doc(Encounter.objects.get(pk=encounter.pk))

    replayed = parse_scenario(doc_to_json(doc))

    assert replayed == doc
    assert evaluate(replayed) == evaluate(doc)
