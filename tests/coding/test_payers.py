"""Payer policies in the database: the seeded Medicare row, constraints, the
admin, and what a payer's policy changes when an encounter is (re-)coded."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from charting.models import Encounter
from coding.engine import MEDICARE, PayerPolicy, evaluate, parse_scenario
from coding.engine import policy as engine_policy
from coding.models import (
    DistinctModifier,
    LineDates,
    MixedBag,
    OverrideFamily,
    Payer,
    PayerFamilyOverride,
    SameDrugRuns,
    SecondaryHydration59,
    SplitDoseInjection,
    Suggestion,
)
from coding.services import CodingError, suggest_for_encounter

pytestmark = pytest.mark.django_db

SCENARIOS = {obj["id"]: obj for path in sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.json")) for obj in json.loads(path.read_text())}


def import_scenario(scenario_id: str, tmp_path) -> Encounter:
    """Chart, sign and code one shared scenario (as `make run` does for the demo)."""
    path = tmp_path / f"{scenario_id}.json"
    path.write_text(json.dumps([SCENARIOS[scenario_id]]))
    call_command("import_scenarios", str(path), stdout=io.StringIO())
    return Encounter.objects.get(external_id=scenario_id)


def current_suggestion(encounter) -> Suggestion:
    return Suggestion.objects.current().get(encounter=encounter)


def lines_of(suggestion) -> list[tuple[str, int, tuple[str, ...]]]:
    return sorted((line.code, line.units, tuple(line.modifiers)) for line in suggestion.lines.all())


# --- the rows -------------------------------------------------------------------


def test_medicare_is_seeded_with_the_engine_defaults():
    medicare = Payer.objects.with_overrides().get(code="medicare")
    assert medicare.to_policy() == MEDICARE
    assert Payer.objects.policy_for("medicare") == MEDICARE
    assert Payer.objects.policy_for("no-such-payer") is None


def test_every_builtin_engine_policy_is_seeded_as_an_editable_payer():
    seeded = {payer.code: payer.to_policy() for payer in Payer.objects.with_overrides()}
    assert seeded == engine_policy.POLICIES
    assert seeded["independence_blue_cross"].family_for("J0717") == "therapeutic"


@pytest.mark.parametrize(
    ("choices", "engine_choices"),
    [
        (DistinctModifier, engine_policy.DISTINCT_MODIFIERS),
        (SecondaryHydration59, engine_policy.SECONDARY_HYDRATION_59_CHOICES),
        (SameDrugRuns, engine_policy.SAME_DRUG_RUNS_CHOICES),
        (SplitDoseInjection, engine_policy.SPLIT_DOSE_CHOICES),
        (MixedBag, engine_policy.MIXED_BAG_CHOICES),
        (LineDates, engine_policy.LINE_DATES_CHOICES),
    ],
)
def test_choices_are_the_engines(choices, engine_choices):
    assert set(choices.values) == set(engine_choices)


def test_every_policy_setting_has_a_column():
    columns = {f.name for f in Payer._meta.get_fields()}
    assert set(MEDICARE.to_dict()) - {"name", "family_overrides"} <= columns


def test_to_policy_carries_every_setting_and_the_overrides_sorted():
    payer = Payer.objects.create(
        code="acme",
        name="Acme Health",
        distinct_modifier="XU",
        separate_encounter_modifier="XE",
        injection_repeat_modifier="XS",
        secondary_hydration_59="never",
        report_jz=False,
        jz_when_discard_below_unit=False,
        same_drug_runs="sequential",
        combine_hydration_segments=False,
        split_dose_injection="per_syringe",
        injections_on_one_line=True,
        mixed_bag="concurrent",
        port_flush_with_em=True,
        hydration_volume_floor_ml=500,
        line_dates="service_day",
    )
    PayerFamilyOverride.objects.create(payer=payer, hcpcs="J1745", family="therapeutic")
    PayerFamilyOverride.objects.create(payer=payer, hcpcs="J0717", family="therapeutic")

    policy = payer.to_policy()

    assert policy == PayerPolicy.from_dict(policy.to_dict())
    assert policy.family_overrides == (("J0717", "therapeutic"), ("J1745", "therapeutic"))
    expected = {f.name: getattr(payer, f.name) for f in Payer._meta.concrete_fields if f.name in policy.to_dict() and f.name != "name"}
    assert {k: v for k, v in policy.to_dict().items() if k in expected} == expected
    assert policy.name == "acme"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "Has Spaces"),
        ("distinct_modifier", "25"),
        ("separate_encounter_modifier", "JW"),
        ("injection_repeat_modifier", ""),
        ("secondary_hydration_59", "sometimes"),
        ("same_drug_runs", "average"),
        ("split_dose_injection", "two"),
        ("mixed_bag", "shaken"),
        ("line_dates", "admission_date"),
    ],
)
def test_payer_constraints(field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        Payer.objects.create(**{"code": "bad", "name": "Bad", field: value})


def test_hydration_floor_is_not_negative():
    with pytest.raises(IntegrityError), transaction.atomic():
        Payer.objects.create(code="bad", name="Bad", hydration_volume_floor_ml=-1)


@pytest.mark.parametrize(
    ("hcpcs", "family"), [("j0717", "therapeutic"), ("J071", "therapeutic"), ("96413", "therapeutic"), ("J0717", "hydration"), ("J0717", "")]
)
def test_family_override_constraints(hcpcs, family):
    medicare = Payer.objects.get(code="medicare")
    with pytest.raises(IntegrityError), transaction.atomic():
        PayerFamilyOverride.objects.create(payer=medicare, hcpcs=hcpcs, family=family)


def test_one_override_per_payer_and_code():
    medicare = Payer.objects.get(code="medicare")
    PayerFamilyOverride.objects.create(payer=medicare, hcpcs="J0717", family=OverrideFamily.THERAPEUTIC)
    with pytest.raises(IntegrityError), transaction.atomic():
        PayerFamilyOverride.objects.create(payer=medicare, hcpcs="J0717", family=OverrideFamily.CHEMO_COMPLEX)
    # Another payer may override the same code.
    PayerFamilyOverride.objects.create(payer=Payer.objects.create(code="acme", name="Acme"), hcpcs="J0717", family=OverrideFamily.CHEMO_COMPLEX)


# --- Django admin -----------------------------------------------------------------


def _change_form(payer, **changes):
    """The admin change form's POST data for `payer` with `changes` (no overrides unless given)."""
    data = {
        "name": payer.name,
        "distinct_modifier": payer.distinct_modifier,
        "separate_encounter_modifier": payer.separate_encounter_modifier,
        "injection_repeat_modifier": payer.injection_repeat_modifier,
        "secondary_hydration_59": payer.secondary_hydration_59,
        "same_drug_runs": payer.same_drug_runs,
        "split_dose_injection": payer.split_dose_injection,
        "mixed_bag": payer.mixed_bag,
        "line_dates": payer.line_dates,
        "hydration_volume_floor_ml": "",
        "family_overrides-TOTAL_FORMS": "0",
        "family_overrides-INITIAL_FORMS": "0",
        "family_overrides-MIN_NUM_FORMS": "0",
        "family_overrides-MAX_NUM_FORMS": "1000",
    }
    for flag in ("report_jz", "jz_when_discard_below_unit", "combine_hydration_segments", "injections_on_one_line", "port_flush_with_em"):
        if getattr(payer, flag):
            data[flag] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_edits_a_payer_and_its_overrides(client, admin):
    client.force_login(admin)
    medicare = Payer.objects.get(code="medicare")
    url = reverse("admin:coding_payer_change", args=[medicare.pk])

    assert client.get(reverse("admin:coding_payer_changelist")).status_code == 200
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        _change_form(
            medicare,
            distinct_modifier="XU",
            report_jz=None,
            **{"family_overrides-TOTAL_FORMS": "1", "family_overrides-0-hcpcs": "J0717", "family_overrides-0-family": "therapeutic"},
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    policy = Payer.objects.policy_for("medicare")
    assert (policy.distinct_modifier, policy.report_jz, policy.family_overrides) == ("XU", False, (("J0717", "therapeutic"),))


def test_admin_form_reports_a_bad_override_instead_of_crashing(client, admin):
    client.force_login(admin)
    medicare = Payer.objects.get(code="medicare")
    response = client.post(
        reverse("admin:coding_payer_change", args=[medicare.pk]),
        _change_form(medicare, **{"family_overrides-TOTAL_FORMS": "1", "family_overrides-0-hcpcs": "j0717", "family_overrides-0-family": "therapeutic"}),
    )
    assert response.status_code == 200
    assert "capital letter and four digits" in response.content.decode()
    assert not medicare.family_overrides.exists()


def test_admin_adds_a_payer(client, admin):
    client.force_login(admin)
    response = client.post(reverse("admin:coding_payer_add"), _change_form(Payer(), code="acme", name="Acme Health", distinct_modifier="XS"))
    assert response.status_code == 302
    assert Payer.objects.policy_for("acme").distinct_modifier == "XS"


def test_payer_code_is_read_only_once_created_and_payers_are_not_deleted(client, admin):
    client.force_login(admin)
    medicare = Payer.objects.get(code="medicare")
    client.post(reverse("admin:coding_payer_change", args=[medicare.pk]), _change_form(medicare, code="renamed"))
    assert Payer.objects.filter(code="medicare").exists()
    assert client.post(reverse("admin:coding_payer_delete", args=[medicare.pk]), {"post": "yes"}).status_code == 403
    assert Payer.objects.filter(code="medicare").exists()


def test_staff_without_the_admin_role_cannot_edit_payers(client, coder):
    coder.is_staff = True
    coder.save(update_fields=["is_staff"])
    client.force_login(coder)
    medicare = Payer.objects.get(code="medicare")
    assert client.get(reverse("admin:coding_payer_change", args=[medicare.pk])).status_code == 403
    assert client.post(reverse("admin:coding_payer_change", args=[medicare.pk]), _change_form(medicare, distinct_modifier="XU")).status_code == 403
    assert Payer.objects.get(code="medicare").distinct_modifier == "59"


# --- the policy applied when coding ---------------------------------------------------


def test_xu_payer_changes_the_second_initials_modifier_on_a_recode(tmp_path):
    encounter = import_scenario("office-two-sites-medically-required", tmp_path)
    first = current_suggestion(encounter)
    assert ("96365", 1, ("59",)) in lines_of(first)

    Payer.objects.filter(code="medicare").update(distinct_modifier="XU")
    second = suggest_for_encounter(encounter.pk)

    assert second.pk != first.pk
    assert ("96365", 1, ("XU",)) in lines_of(second) and ("96365", 1, ("59",)) not in lines_of(second)
    assert second.policy["distinct_modifier"] == "XU"


def test_therapeutic_override_for_a_biologic_turns_96413_into_96365(tmp_path):
    encounter = import_scenario("office-infliximab-400mg-four-vials-jz", tmp_path)
    assert {code for code, _, _ in lines_of(current_suggestion(encounter))} >= {"96413", "96415"}
    acme = Payer.objects.create(code="acme", name="Acme Health")
    PayerFamilyOverride.objects.create(payer=acme, hcpcs="J1745", family="therapeutic")
    Encounter.objects.filter(pk=encounter.pk).update(payer="acme")

    codes = {code for code, _, _ in lines_of(suggest_for_encounter(encounter.pk))}

    # 120 minutes: 96365 + 96366 x1 instead of 96413 + 96415 x1; the drug line stays.
    assert {"96365", "96366", "J1745"} <= codes and not codes & {"96413", "96415"}


def test_a_payer_without_jz_drops_jz(tmp_path):
    encounter = import_scenario("office-infliximab-400mg-four-vials-jz", tmp_path)
    assert ("J1745", 40, ("JZ",)) in lines_of(current_suggestion(encounter))
    Payer.objects.filter(code="medicare").update(report_jz=False)

    lines = lines_of(suggest_for_encounter(encounter.pk))

    assert ("J1745", 40, ()) in lines
    assert not any("JZ" in mods for _, _, mods in lines)


def test_stored_suggestion_keeps_the_policy_it_was_coded_with(tmp_path):
    encounter = import_scenario("office-two-sites-medically-required", tmp_path)
    first = current_suggestion(encounter)
    before = lines_of(first)
    assert first.policy == MEDICARE.to_dict()

    Payer.objects.filter(code="medicare").update(distinct_modifier="XU")

    first.refresh_from_db()
    assert first.is_current and first.policy == MEDICARE.to_dict() and lines_of(first) == before
    # Replaying the stored input with the stored policy gives the stored lines.
    replay = evaluate(parse_scenario(first.engine_input), PayerPolicy.from_dict(first.policy))
    assert sorted((line.code, line.units, line.modifiers) for line in replay.lines) == before


def test_same_documentation_and_policy_is_not_recoded(make_encounter):
    encounter = make_encounter(1)
    first = suggest_for_encounter(encounter.pk)
    assert suggest_for_encounter(encounter.pk).pk == first.pk
    Payer.objects.filter(code="medicare").update(secondary_hydration_59="always")
    assert suggest_for_encounter(encounter.pk).pk != first.pk


def test_unknown_payer_is_coded_with_the_engines_fallback_and_a_warning(make_encounter):
    encounter = make_encounter(1)
    Encounter.objects.filter(pk=encounter.pk).update(payer="unheard-of")

    suggestion = suggest_for_encounter(encounter.pk)

    assert [w["kind"] for w in suggestion.warnings] == ["payer_policy"]
    assert suggestion.policy == MEDICARE.to_dict()
    assert suggestion.payer_code == "unheard-of" and suggestion.policy_name == "medicare"


def test_a_stored_policy_the_engine_rejects_is_a_coding_error(make_encounter, monkeypatch):
    encounter = make_encounter(1)

    def reject(self):
        raise engine_policy.PolicyError("distinct_modifier", "'59' is not one of XU")

    monkeypatch.setattr(Payer, "to_policy", reject)
    with pytest.raises(CodingError, match="medicare"):
        suggest_for_encounter(encounter.pk)
