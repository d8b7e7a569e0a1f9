"""Dosing help (issue #8): the pure rounding and container choice
(charting/dosing.py), the seed's reading of the catalog's container sizes,
and the dosing-help view."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from charting.dosing import DosingError, choose_containers, round_dose, weight_based_dose
from charting.management.commands.seed_drug_catalog import parse_vial_sizes
from charting.models import Drug
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- rounding and dose ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "rounded"),
    [
        (D("365"), D("365")),
        (D("364.5"), D("365")),  # half up
        (D("249.49"), D("249")),
        (D("10"), D("10")),
        (D("9.96"), D("10.0")),  # below 10 mg: to 0.1 mg
        (D("7.25"), D("7.3")),
        (D("0.04"), D("0.0")),
    ],
)
def test_round_dose(dose, rounded):
    assert round_dose(dose) == rounded


@pytest.mark.parametrize(
    ("weight", "mg_per_kg", "dose"),
    [(D("73"), D("5"), D("365")), (D("71.3"), D("3.5"), D("250")), (D("82.4"), D("10"), D("824")), (D("5.2"), D("1.5"), D("7.8"))],
)
def test_weight_based_dose(weight, mg_per_kg, dose):
    assert weight_based_dose(weight, mg_per_kg) == dose


@pytest.mark.parametrize(("weight", "mg_per_kg"), [(D("0"), D("5")), (None, D("5")), (D("70"), D("0")), (D("70"), None), (D("-1"), D("5"))])
def test_weight_based_dose_refuses_what_is_not_positive(weight, mg_per_kg):
    with pytest.raises(DosingError):
        weight_based_dose(weight, mg_per_kg)


# --- the containers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "sizes", "containers", "waste"),
    [
        # The examples.
        (D("712.5"), [D(500), D(100)], ((D(500), 1), (D(100), 3)), D("87.5")),
        (D("365"), [D(100)], ((D(100), 4),), D("35")),
        # Exactly a vial: no waste.
        (D("400"), [D(100)], ((D(100), 4),), D("0")),
        (D("500"), [D(100), D(500)], ((D(500), 1),), D("0")),
        # Least waste beats fewer vials: 2 x 500 would waste 287.5.
        (D("600"), [D(500), D(100)], ((D(500), 1), (D(100), 1)), D("0")),
        # Tocilizumab 8 mg/kg x 70 kg = 560 mg: 400 + 80 + 80 (0 waste) over 400 + 200 (40 waste).
        (D("560"), [D(80), D(200), D(400)], ((D(400), 1), (D(80), 2)), D("0")),
        # Same waste, fewer containers: 1000 = 1 x 1 g rather than 2 x 500.
        (D("1000"), [D(40), D(125), D(500), D(1000)], ((D(1000), 1),), D("0")),
        # Immune globulin 2 g/kg x 61 kg = 122 g from 5, 10, 20, 40 g bottles.
        (D("122000"), [D(5000), D(10000), D(20000), D(40000)], ((D(40000), 3), (D(5000), 1)), D("3000")),
        # A fraction of a mg still needs the next whole container.
        (D("100.001"), [D(100)], ((D(100), 2),), D("99.999")),
        # Sizes that are not whole mg.
        (D("1.2"), [D("0.5")], ((D("0.5"), 3),), D("0.3")),
    ],
)
def test_choose_containers(dose, sizes, containers, waste):
    plan = choose_containers(dose, sizes)
    assert plan.containers == containers
    assert plan.waste_mg == waste
    assert plan.opened_mg == dose + waste


def test_the_plan_explains_itself():
    assert choose_containers(D("712.5"), [D(500), D(100)]).explain() == "1 x 500 mg + 3 x 100 mg = 800 mg for 712.5 mg: 87.5 mg left over (waste)."


@pytest.mark.parametrize(("dose", "sizes"), [(D("100"), []), (D("0"), [D(100)]), (D("100"), [D(0)]), (D("10000000"), [D("0.001"), D(1000)])])
def test_choose_containers_refuses(dose, sizes):
    with pytest.raises(DosingError):
        choose_containers(dose, sizes)


@settings(max_examples=150, deadline=None)
@given(dose=st.integers(min_value=1, max_value=1200), sizes=st.sets(st.sampled_from([50, 80, 100, 120, 200, 250, 400, 500]), min_size=1, max_size=3))
def test_choose_containers_is_the_best_by_brute_force(dose, sizes):
    """Against every combination: no plan covering the dose wastes less, and
    none with the same waste uses fewer containers."""
    plan = choose_containers(D(dose), [D(s) for s in sizes])
    assert plan.opened_mg >= dose
    sizes = sorted(sizes)
    best = None
    ranges = [range(0, dose // s + 2) for s in sizes]
    for counts in itertools.product(*ranges):
        total = sum(n * s for n, s in zip(counts, sizes, strict=True))
        if total >= dose:
            key = (total - dose, sum(counts))
            best = key if best is None or key < best else best
    assert (plan.waste_mg, plan.count) == best


# --- the seed: container sizes from the catalog -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "sizes", "unread"),
    [
        ("100 mg lyophilized single-dose vial", (D(100),), ()),
        ("100 mg/10 mL; 500 mg/50 mL single-use vials", (D(100), D(500)), ()),
        ("100 mg/10 mL (unverified); 500 mg/50 mL", (D(100), D(500)), ()),
        ("80 mg/4 mL; 200 mg/10 mL; 400 mg/20 mL single-dose vials", (D(80), D(200), D(400)), ()),
        ("120 mg and 400 mg single-dose vials", (D(120), D(400)), ()),
        ("5 g, 10 g, 20 g, 40 g (unverified)", (D(5000), D(10000), D(20000), D(40000)), ()),
        ("40 mg, 125 mg, 500 mg, 1 g single-dose vials (sizes unverified)", (D(40), D(125), D(500), D(1000)), ()),
        ("10 g/100 mL single-use vial (verified); other sizes unverified", (D(10000),), ()),
        # Never guessed: concentrations without the volume, ranges, bare numbers, volumes.
        ("8 mg/mL single-dose vial", (), ("8 mg/mL single-dose vial",)),
        ("1-30 g vials (unverified)", (), ("1-30 g vials (unverified)",)),
        ("80/4, 200/10, 400/20 mL vials (S26)", (), ("80/4", "200/10", "400/20 mL vials (S26)")),
        ("250/500/1000 mL bags", (), ("250/500/1000 mL bags",)),
        ("25 mg/mL vials (2 mL, 10 mL), 1 g vial (unverified)", (D(1000),), ("25 mg/mL vials (2 mL, 10 mL)",)),
        ("200 mg lyophilized kit; 200 mg/mL prefilled syringe (unverified)", (D(200),), ("200 mg/mL prefilled syringe (unverified)",)),
        ("", (), ()),
    ],
)
def test_parse_vial_sizes(text, sizes, unread):
    assert parse_vial_sizes(text) == (sizes, unread)


@pytest.mark.django_db
def test_the_seed_fills_container_sizes_keeps_the_text_and_never_sets_the_dosing_basis():
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    rituximab = Drug.objects.get(name="rituximab")
    assert rituximab.vial_sizes_mg == [100, 500] and "500 mg/50 mL" in rituximab.vial_sizes_text
    pegloticase = Drug.objects.get(name="pegloticase")
    assert pegloticase.vial_sizes_mg == [] and pegloticase.vial_sizes_text == "8 mg/mL single-dose vial"
    assert "unverified" in Drug.objects.get(name="anifrolumab").vial_sizes_text
    assert set(Drug.objects.values_list("dosing_basis", flat=True)) == {"flat"}
    # An admin's choice survives a re-seed.
    Drug.objects.filter(name="infliximab").update(dosing_basis="mg_per_kg")
    call_command("seed_drug_catalog", stdout=open("/dev/null", "w"))
    assert Drug.objects.get(name="infliximab").dosing_basis == "mg_per_kg"


# --- the view -----------------------------------------------------------------------------------------


@pytest.fixture
def mgkg_adm(db, clinic):
    drug = DrugFactory(name="infliximab", dosing_basis="mg_per_kg", vial_sizes_mg=[100], vial_sizes_text="100 mg lyophilized single-dose vial")
    return AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), drug=drug, label="infliximab", dose_value=None, dose_unit="")


def test_the_panel_is_on_mg_per_kg_cards_only_and_prefilled_with_the_latest_weight(nurse_client, nurse, mgkg_adm):
    from charting import clinical

    flat = AdministrationFactory(encounter=mgkg_adm.encounter, drug=DrugFactory(name="flat drug"), label="flat")
    clinical.record_vitals(mgkg_adm.encounter, measures={"weight_kg": D("73.0")}, actor=nurse)
    html = nurse_client.get(reverse("charting:encounter", kwargs={"pk": mgkg_adm.encounter.pk})).content.decode()
    assert 'data-testid="dosing-infliximab"' in html and f'data-testid="dosing-{flat.label}"' not in html
    assert 'name="weight_kg" value="73.0"' in html
    assert f'<label class="form-label" for="dosing-weight-{mgkg_adm.pk}">' in html


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_dosing_help_answers_dose_containers_and_waste_without_saving(nurse_client, mgkg_adm, htmx):
    url = reverse("charting:dosing_help", kwargs={"pk": mgkg_adm.pk})
    response = nurse_client.get(url, {"weight_kg": "73", "mg_per_kg": "5"}, **(HTMX if htmx else {}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="dosing-dose-infliximab">365 mg<' in html
    assert 'data-testid="dosing-containers-infliximab">4 × 100 mg<' in html
    assert 'data-testid="dosing-waste-infliximab">35 mg<' in html
    assert ('<html' in html) is not htmx
    mgkg_adm.refresh_from_db()
    assert mgkg_adm.dose_value is None  # computing never charts


def test_without_javascript_use_this_dose_shows_the_edit_form_filled_in(nurse_client, mgkg_adm):
    url = reverse("charting:dosing_help", kwargs={"pk": mgkg_adm.pk})
    html = nurse_client.get(url, {"weight_kg": "73", "mg_per_kg": "5", "use": "1"}).content.decode()
    assert f'action="{reverse("charting:edit_administration", kwargs={"pk": mgkg_adm.pk})}"' in html
    assert f'id="id_edit_{mgkg_adm.pk}_dose_value"' in html and 'value="365"' in html
    mgkg_adm.refresh_from_db()
    assert mgkg_adm.dose_value is None


def test_dosing_help_bad_input_keeps_what_was_typed(nurse_client, mgkg_adm):
    url = reverse("charting:dosing_help", kwargs={"pk": mgkg_adm.pk})
    html = nurse_client.get(url, {"weight_kg": "abc", "mg_per_kg": "5"}, **HTMX).content.decode()
    assert 'value="abc"' in html and 'value="5"' in html and "is-invalid" in html
    html = nurse_client.get(url, {"weight_kg": "9000", "mg_per_kg": "5"}, **HTMX).content.decode()
    assert "less than or equal to 500" in html


def test_a_flat_drug_gets_no_dosing_answer(nurse_client, clinic):
    adm = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), drug=DrugFactory(name="flat one"))
    html = nurse_client.get(reverse("charting:dosing_help", kwargs={"pk": adm.pk}), {"weight_kg": "70", "mg_per_kg": "5"}).content.decode()
    assert "dosing-dose-" not in html
