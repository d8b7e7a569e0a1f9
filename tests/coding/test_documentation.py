"""coding.documentation: the ORM -> EncounterDoc bridge."""

import datetime as dt
from decimal import Decimal

import pytest

from charting.models import Administration, Encounter, OtherService, Pause, VialUse
from coding.documentation import doc_to_json, encounter_doc
from coding.engine import Container, Quantity, evaluate, parse_scenario
from tests.factories import AdministrationFactory, amending

pytestmark = pytest.mark.django_db


def _add_pauses_and_services(encounter):
    for adm in encounter.administrations.all():
        Pause.objects.create(administration=adm, paused_at=adm.started_at + dt.timedelta(minutes=5), resumed_at=adm.started_at + dt.timedelta(minutes=10))
        VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="L1", size_value=100, size_unit="mg", count=1)
    with amending():
        encounter.administrations.update(container_type="single_dose", wasted_value=0, wasted_unit="mg", waste_confirmed_at=dt.datetime(2025, 6, 10, tzinfo=dt.UTC))
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
    assert all(len(a.pauses) == 1 and a.container.count == 1 for a in doc.administrations)


def test_encounter_doc_maps_the_chart(make_encounter):
    encounter = make_encounter(2)
    first, second = encounter.administrations.order_by("started_at")
    first.drug.hcpcs, first.drug.billing_unit_value, first.drug.billing_unit_unit = "J9999", Decimal(10), "mg"
    first.drug.save()
    with amending():
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


def test_encounter_doc_passes_containers_waste_and_ndc(make_encounter):
    encounter = make_encounter(3)
    first, second, third = encounter.administrations.order_by("started_at")
    # rituximab 712.5 mg style: one 500 mg vial and three 100 mg vials of two NDCs
    VialUse.objects.create(administration=first, ndc="50242-051-21", lot="R1", size_value=500, size_unit="mg", count=1)
    VialUse.objects.create(administration=first, ndc="50242-053-06", lot="R2", size_value=100, size_unit="mg", count=3)
    with amending():
        Administration.objects.filter(pk=first.pk).update(container_type="single_dose", wasted_value=Decimal("87.5"), wasted_unit="mg", waste_confirmed_at=first.stopped_at)
    VialUse.objects.create(administration=second, ndc="", size_value=100, size_unit="mg", count=2)
    VialUse.objects.create(administration=second, ndc="57894-030-01", lot="L2", size_value=Decimal("0.1"), size_unit="g", count=1)
    with amending():
        Administration.objects.filter(pk=second.pk).update(container_type="multi_dose")

    by_id = {a.id: a for a in encounter_doc(Encounter.objects.get(pk=encounter.pk)).administrations}
    a1, a2, a3 = by_id[str(first.pk)], by_id[str(second.pk)], by_id[str(third.pk)]

    assert a1.container == Container(type="single_dose", size=None, count=4)  # sizes differ
    assert a1.wasted == Quantity(Decimal("87.5"), "mg") and str(a1.wasted.value) == "87.5"
    assert a1.ndc == "50242-051-21"  # the first charted
    assert a2.container == Container(type="multi_dose", size=None, count=3)  # 100 mg and 0.1 g are charted apart
    assert a2.wasted is None and a2.ndc == "57894-030-01"
    assert a3.container is None and a3.wasted is None and a3.ndc is None


def test_one_size_is_the_containers_size():
    adm = AdministrationFactory(container_type="single_dose")
    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="L1", size_value=100, size_unit="mg", count=1)
    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="L2", size_value=100, size_unit="mg", count=2)
    doc = encounter_doc(adm.encounter)
    assert doc.administrations[0].container == Container(type="single_dose", size=Quantity(Decimal(100), "mg"), count=3)


def test_a_charted_billing_unit_comes_before_the_catalogs(make_encounter):
    encounter = make_encounter(2)
    first, second = encounter.administrations.order_by("started_at")
    first.drug.hcpcs, first.drug.billing_unit_value, first.drug.billing_unit_unit = "J9312", Decimal(100), "mg"
    first.drug.save()
    with amending():
        Administration.objects.filter(pk=first.pk).update(hcpcs_unit_value=10, hcpcs_unit_unit="mg")
    with amending():
        Administration.objects.filter(pk=second.pk).update(hcpcs_override="J7030", hcpcs_unit_value=1000, hcpcs_unit_unit="mL")

    by_id = {a.id: a for a in encounter_doc(Encounter.objects.get(pk=encounter.pk)).administrations}

    assert by_id[str(first.pk)].hcpcs_unit == Quantity(Decimal(10), "mg")
    assert by_id[str(second.pk)].hcpcs_unit == Quantity(Decimal(1000), "mL")  # known although the code is not the catalog's
