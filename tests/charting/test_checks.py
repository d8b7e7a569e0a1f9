"""charting.checks: every named check, by the sweep (SQL) and at the chair (Python).

Each check: make the gap, sweep, see the flag (and the same item in the
panel), fix the gap, sweep, see it resolved; a second sweep changes nothing.
Then both ways agree on a mixed, generated dataset.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest

from charting import checks, services
from charting.models import AdminFamily, Administration, DocumentationFlag, Encounter, OtherService, Pause, TimeCorrection, VialUse
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory, amending

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)  # 10:00 in New York
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def sweep(now=NOW):
    return services.sweep_flags(now=now)


def panel(encounter, now=NOW):
    return checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=now)


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))


@pytest.fixture
def site(encounter):
    return AccessSiteFactory(encounter=encounter, label="A")


def given(encounter, site, *, drug="infliximab", start=NOW - 2 * H, minutes=60, **kwargs):
    """An administration given and stopped, complete: vials with NDC and lot, waste confirmed."""
    fields = {"container_type": "single_dose", "wasted_value": Decimal("0"), "wasted_unit": "mg", "waste_confirmed_at": start} | kwargs
    adm = AdministrationFactory(
        encounter=encounter,
        access_site=site,
        drug=DrugFactory(name=drug),
        started_at=start,
        stopped_at=None if minutes is None else start + minutes * M,
        **fields,
    )
    VialUse.objects.create(administration=adm, ndc="57894-030-01", lot="L123", size_value=Decimal("100"), size_unit="mg", count=5)
    with amending():
        Administration.objects.filter(pk=adm.pk).update(recorded_at=start - 5 * M)
    adm.refresh_from_db()
    return adm


def update(obj, **fields):
    with amending():  # arranging data, signed records included
        type(obj).objects.filter(pk=obj.pk).update(**fields)
    obj.refresh_from_db()


# --- one case per check: (make the gap) -> record, (fix it) ---------------------------------


def still_running(encounter, site):
    adm = given(encounter, site, start=NOW - 7 * H, minutes=None)
    return adm, lambda: update(adm, stopped_at=adm.started_at + 2 * H)


def no_access_site(encounter, site):
    adm = given(encounter, None, route="iv_push", minutes=0)
    return adm, lambda: update(adm, access_site=site)


def hydration_no_indication(encounter, site):
    saline = DrugFactory(name="sodium chloride 0.9%", admin_family=AdminFamily.HYDRATION, hcpcs="J7050")
    adm = given(encounter, site, drug=saline.name, admin_class="hydration", dose_unit="mL")
    return adm, lambda: update(adm, purpose="hydration_medically_necessary")


def dose_missing(encounter, site):
    # Multi-dose: no waste to confirm, only the dose is missing.
    adm = given(encounter, site, dose_value=None, dose_unit="", container_type="multi_dose", wasted_value=None, wasted_unit="", waste_confirmed_at=None)
    return adm, lambda: update(adm, dose_value=Decimal("400"), dose_unit="mg")


def waste_unconfirmed(encounter, site):
    adm = given(encounter, site)
    update(adm, wasted_value=None, wasted_unit="", waste_confirmed_at=None)
    return adm, lambda: update(adm, wasted_value=Decimal("0"), wasted_unit="mg", waste_confirmed_at=NOW)


def ndc_lot_missing(encounter, site):
    adm = given(encounter, site)
    update(adm.vial_uses.get(), lot="")
    return adm, lambda: update(adm.vial_uses.get(), lot="L123")


def pause_not_resumed(encounter, site):
    adm = given(encounter, site, start=NOW - 3 * H, minutes=None)
    pause = Pause.objects.create(administration=adm, paused_at=NOW - 150 * M, reason="Pump alarm")
    return adm, lambda: update(pause, resumed_at=NOW - 140 * M)


def late_entry(encounter, site):
    adm = given(encounter, site)
    update(adm, recorded_at=adm.stopped_at + 2 * H)
    return adm, lambda: TimeCorrection.objects.create(
        administration=adm, field="started_at", original_value=adm.started_at, new_value=adm.started_at, reason="Charted after the emergency in chair 3", corrected_by=UserFactory()
    )


def overlap_same_site(encounter, site):
    first = given(encounter, site, drug="methylprednisolone", start=NOW - 3 * H, minutes=90)
    adm = given(encounter, site, drug="infliximab", start=NOW - 2 * H, minutes=120)
    return adm, lambda: update(adm, concurrent_with=first)


def second_site_no_reason(encounter, site):
    given(encounter, site)
    second = AccessSiteFactory(encounter=encounter, label="B", separate_site_medically_required=True, reason="")
    given(encounter, second, drug="cyclophosphamide", start=NOW - 2 * H + 5 * M)
    return second, lambda: update(second, reason="Incompatible with the infliximab line")


def not_signed(encounter, site):
    update(encounter, date_of_service=dt.date(2026, 3, 9))
    given(encounter, site, start=NOW - 26 * H)
    nurse = UserFactory()
    return encounter, lambda: update(encounter, status="signed", signed_by=nurse, signed_at=NOW)


def em_not_separate(encounter, site):
    given(encounter, site)
    visit = OtherService.objects.create(encounter=encounter, kind="em_visit", level="99213", detail="Flare review")
    return encounter, lambda: update(visit, significant_separately_identifiable=True)


def never_started(encounter, site):
    adm = given(encounter, site)
    update(adm, started_at=None, stopped_at=None, recorded_at=NOW - 7 * H)  # added 03:00, never started
    return adm, lambda: update(adm, started_at=NOW - 6 * H, stopped_at=NOW - 5 * H)


def nothing_charted(encounter, site):
    update(encounter, date_of_service=dt.date(2026, 3, 9))  # yesterday: the day is over
    return encounter, lambda: given(encounter, site, start=NOW - 26 * H)


CASES = {
    "still_running": (still_running, "Stop time missing for infliximab (started 03:00): chart when it stopped."),
    "no_access_site": (no_access_site, "No access site for infliximab (IV push): pick the site it ran through."),
    "hydration_no_indication": (hydration_no_indication, "No reason given for the sodium chloride 0.9% hydration: medically necessary, treating a reaction, or KVO/flush?"),
    "dose_missing": (dose_missing, "Dose and unit missing for infliximab."),
    "waste_unconfirmed": (waste_unconfirmed, "Waste not confirmed for infliximab (single-dose vials): chart what was discarded, or none."),
    "ndc_lot_missing": (ndc_lot_missing, "NDC or lot missing for infliximab: complete the vials charted."),
    "pause_not_resumed": (pause_not_resumed, "Infliximab paused at 07:30 was never resumed: chart when it resumed or stopped."),
    "late_entry": (late_entry, "Infliximab started 08:00 was charted at 11:00: give the reason for the late entry (correct the start)."),
    "overlap_same_site": (overlap_same_site, "Infliximab runs at the same time as methylprednisolone on site A: mark it concurrent or same bag."),
    "second_site_no_reason": (second_site_no_reason, "Site B is charted as a medically required separate site, but no reason is given: say why it was required."),
    "not_signed": (not_signed, "Not signed by the end of the day (Mon 9 Mar): review and sign."),
    "em_not_separate": (em_not_separate, "E/M visit 99213 has no note of significant, separately identifiable work: document it, or the visit is not billed."),
    "never_started": (never_started, "Infliximab was added but never started — start it, or mark it entered in error."),
    "nothing_charted": (nothing_charted, "Nothing charted on this encounter: chart the drugs given or the service provided."),
}


def test_every_flag_kind_has_a_check_and_a_case():
    assert {c.kind.value for c in checks.CHECKS} == set(DocumentationFlag.Kind.values) == set(CASES)


def _target(flag):
    return flag.administration or flag.access_site or flag.encounter


@pytest.mark.parametrize("kind", CASES)
def test_check_flags_the_gap_and_resolves_it_when_fixed(kind, encounter, site):
    make, message = CASES[kind]
    record, fix = make(encounter, site)
    check = checks.CHECKS_BY_KIND[kind]

    first = sweep()
    flag = DocumentationFlag.objects.get(kind=kind)
    assert _target(flag) == record and flag.encounter == encounter
    assert (flag.message, flag.field, flag.created_at, flag.resolved_at) == (message, check.field, NOW, None)
    assert first["opened"] >= 1
    # The chair shows the same item, in the same words.
    assert [(i.kind, i.message) for i in panel(encounter) if i.kind == kind] == [(kind, message)]
    assert sweep() == {"opened": 0, "resolved": 0, "open": first["open"], "skipped": 0}

    fix()
    later = NOW + 10 * M
    assert sweep(later)["resolved"] == 1
    flag.refresh_from_db()
    assert flag.resolved_at == later
    assert kind not in {i.kind for i in panel(encounter, later)}
    assert not DocumentationFlag.objects.open().filter(kind=kind).exists()
    assert sweep(later) == {"opened": 0, "resolved": 0, "open": DocumentationFlag.objects.open().count(), "skipped": 0}


def test_a_complete_encounter_has_no_items(encounter, site):
    given(encounter, site)
    assert panel(encounter) == []
    assert sweep() == {"opened": 0, "resolved": 0, "open": 0, "skipped": 0}


# --- boundaries and exclusions -----------------------------------------------------------


@pytest.mark.parametrize(("hours", "flagged"), [(6, False), (6.01, True)])
def test_still_running_after_the_configured_limit(encounter, site, settings, hours, flagged):
    settings.CHAIRSIDE_RUNNING_FLAG_HOURS = 6
    given(encounter, site, start=NOW - dt.timedelta(hours=hours), minutes=None)
    assert ("still_running" in {i.kind for i in panel(encounter)}) is flagged
    sweep()
    assert DocumentationFlag.objects.filter(kind="still_running").exists() is flagged


@pytest.mark.parametrize(("minutes", "flagged"), [(60, False), (61, True)])
def test_late_entry_threshold(encounter, site, settings, minutes, flagged):
    settings.CHAIRSIDE_LATE_ENTRY_MINUTES = 60
    adm = given(encounter, site)
    update(adm, recorded_at=adm.started_at + minutes * M)
    assert ("late_entry" in {i.kind for i in panel(encounter)}) is flagged
    sweep()
    assert DocumentationFlag.objects.filter(kind="late_entry").exists() is flagged


def test_imported_encounters_are_not_late_entries(encounter, site):
    adm = given(encounter, site)
    update(adm, recorded_at=adm.started_at + 30 * H)
    update(encounter, external_id="scenario-1")
    sweep()
    assert not DocumentationFlag.objects.filter(kind="late_entry").exists()


def test_short_pause_is_not_a_gap_but_an_open_pause_on_a_stopped_drug_is(encounter, site):
    running = given(encounter, site, start=NOW - H, minutes=None)
    Pause.objects.create(administration=running, paused_at=NOW - 10 * M, reason="Patient to restroom")
    stopped = given(encounter, site, drug="rituximab", start=NOW - 3 * H, minutes=30)
    Pause.objects.create(administration=stopped, paused_at=stopped.started_at + 10 * M)
    sweep()
    assert [f.administration for f in DocumentationFlag.objects.filter(kind="pause_not_resumed")] == [stopped]


def test_kvo_and_indicated_hydration_need_no_indication(encounter, site):
    saline = DrugFactory(name="sodium chloride 0.9%", admin_family=AdminFamily.HYDRATION, hcpcs="J7050")
    for purpose in ("kvo", "hydration_medically_necessary", "adverse_reaction_treatment"):
        given(encounter, site, drug=saline.name, admin_class="hydration", purpose=purpose, dose_unit="mL", start=NOW - 8 * H)
    assert "hydration_no_indication" not in {i.kind for i in panel(encounter)}


def test_no_vial_rules_for_multi_dose_unbilled_or_hydration(encounter, site):
    multi = given(encounter, site, drug="ondansetron")
    update(multi, container_type="multi_dose", wasted_value=None, wasted_unit="", waste_confirmed_at=None)
    no_code = given(encounter, site, drug="famotidine")
    update(no_code.drug, hcpcs="")
    no_code.vial_uses.all().delete()
    kinds = {i.kind for i in panel(encounter)}
    assert not kinds & {"waste_unconfirmed", "ndc_lot_missing"}


def test_vials_not_charted_at_all(encounter, site):
    adm = given(encounter, site)
    adm.vial_uses.all().delete()
    assert [i.message for i in panel(encounter) if i.kind == "ndc_lot_missing"] == ["No vials charted for infliximab: chart the NDC and lot."]


@pytest.mark.parametrize(
    ("mark", "flagged"),
    [
        ({}, True),
        ({"bag": "1"}, True),  # only one of the two says bag 1
        ({"both_bag": "1"}, False),
        ({"concurrent_with_first": True}, False),
        ({"first_concurrent_with": True}, False),
        ({"after": True}, False),  # the second starts when the first stopped
    ],
)
def test_overlap_on_one_site(encounter, site, mark, flagged):
    first = given(encounter, site, drug="methylprednisolone", start=NOW - 3 * H, minutes=60, bag=mark.get("both_bag", ""))
    second = given(encounter, site, start=NOW - 3 * H + (60 if mark.get("after") else 30) * M, minutes=60, bag=mark.get("bag", mark.get("both_bag", "")))
    if mark.get("concurrent_with_first"):
        update(second, concurrent_with=first)
    if mark.get("first_concurrent_with"):
        update(first, concurrent_with=second)
    assert [i.administration_id for i in panel(encounter) if i.kind == "overlap_same_site"] == ([second.pk] if flagged else [])
    sweep()
    assert [f.administration_id for f in DocumentationFlag.objects.filter(kind="overlap_same_site")] == ([second.pk] if flagged else [])


def test_overlap_with_a_drug_still_running_counts_until_now(encounter, site):
    given(encounter, site, drug="methylprednisolone", start=NOW - 2 * H, minutes=None)
    second = given(encounter, site, start=NOW - 30 * M, minutes=None)
    assert [i.administration_id for i in panel(encounter) if i.kind == "overlap_same_site"] == [second.pk]


def test_second_site_without_its_own_drugs_is_not_flagged(encounter, site):
    given(encounter, site)
    AccessSiteFactory(encounter=encounter, label="B", separate_site_medically_required=True, reason="")
    assert "second_site_no_reason" not in {i.kind for i in panel(encounter)}


def test_not_signed_uses_the_clinics_midnight(encounter, site):
    # 10 March in New York ends at 04:00 UTC on the 11th.
    assert "not_signed" not in {i.kind for i in panel(encounter, dt.datetime(2026, 3, 11, 3, 59, tzinfo=dt.UTC))}
    assert "not_signed" in {i.kind for i in panel(encounter, dt.datetime(2026, 3, 11, 4, 0, tzinfo=dt.UTC))}
    sweep(dt.datetime(2026, 3, 11, 3, 59, tzinfo=dt.UTC))
    assert not DocumentationFlag.objects.filter(kind="not_signed").exists()
    sweep(dt.datetime(2026, 3, 11, 4, 0, tzinfo=dt.UTC))
    assert DocumentationFlag.objects.get(kind="not_signed").encounter == encounter


# --- what is not charted yet: due at signing, once signed, after the limit, after the day --------


def fresh_drug(encounter, site, *, added=NOW - 10 * M):
    """A drug added at `added`, not started: what the chart holds while the patient waits."""
    adm = AdministrationFactory(encounter=encounter, access_site=site, drug=DrugFactory(name="rituximab"))
    update(adm, recorded_at=added)
    return adm


def panel_kinds(encounter, now=NOW, **kwargs):
    return {i.kind for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=now, **kwargs)}


@pytest.mark.parametrize(("hours", "flagged"), [(6, False), (6.01, True)])
def test_never_started_after_the_running_limit(encounter, site, settings, hours, flagged):
    settings.CHAIRSIDE_RUNNING_FLAG_HOURS = 6
    fresh_drug(encounter, site, added=NOW - dt.timedelta(hours=hours))
    assert ("never_started" in panel_kinds(encounter)) is flagged
    sweep()
    assert DocumentationFlag.objects.filter(kind="never_started").exists() is flagged


def test_a_drug_just_added_is_no_flag_yet_but_signing_asks_about_it(encounter, site):
    adm = fresh_drug(encounter, site)
    assert "never_started" not in panel_kinds(encounter)
    assert sweep()["open"] == 0
    at_signing = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=NOW, signing=True) if i.kind == "never_started"]
    assert [(i.blocking, i.message, i.administration_id) for i in at_signing] == [(True, "Rituximab was added but never started — start it, or mark it entered in error.", adm.pk)]
    # The link goes to the card's Start button (its "Entered in error…" is beside it).
    assert at_signing[0].fix_url.endswith(f"/encounters/{encounter.pk}/#start-{adm.pk}")


def test_never_started_once_the_day_is_over_or_signed(encounter, site):
    fresh_drug(encounter, site, added=dt.datetime(2026, 3, 11, 3, 0, tzinfo=dt.UTC))  # 23:00 in New York
    # 10 March in New York ends at 04:00 UTC on the 11th.
    assert "never_started" not in panel_kinds(encounter, dt.datetime(2026, 3, 11, 3, 59, tzinfo=dt.UTC))
    assert "never_started" in panel_kinds(encounter, dt.datetime(2026, 3, 11, 4, 0, tzinfo=dt.UTC))
    update(encounter, status="signed", signed_by=UserFactory(), signed_at=dt.datetime(2026, 3, 11, 3, 30, tzinfo=dt.UTC))
    assert "never_started" in panel_kinds(encounter, dt.datetime(2026, 3, 11, 3, 30, tzinfo=dt.UTC))
    sweep(dt.datetime(2026, 3, 11, 3, 30, tzinfo=dt.UTC))
    assert DocumentationFlag.objects.filter(kind="never_started").exists()


def test_a_drug_struck_as_entered_in_error_is_not_never_started(encounter, site):
    given(encounter, site)
    adm = fresh_drug(encounter, site, added=NOW - 7 * H)
    sweep()
    flag = DocumentationFlag.objects.get(kind="never_started")
    update(adm, entered_in_error_at=NOW, entered_in_error_reason="Order cancelled")
    assert "never_started" not in panel_kinds(encounter, NOW + M, signing=True)
    assert sweep(NOW + M)["resolved"] == 1
    flag.refresh_from_db()
    assert flag.resolved_at == NOW + M


def test_an_encounter_just_opened_is_not_empty_yet_but_signing_asks(encounter):
    update(encounter, created_at=NOW - 5 * H)
    assert "nothing_charted" not in panel_kinds(encounter)
    items = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=NOW, signing=True) if i.kind == "nothing_charted"]
    assert [(i.blocking, i.encounter_id, i.fix_url.rsplit("#", 1)[1]) for i in items] == [(True, encounter.pk, "administration-form")]
    assert sweep()["open"] == 0
    update(encounter, created_at=NOW - 7 * H)  # opened at 03:00, still nothing
    assert sweep()["opened"] == 1
    assert DocumentationFlag.objects.get(kind="nothing_charted").encounter == encounter


def test_nothing_charted_counts_only_charted_drugs_and_any_other_service(encounter, site):
    update(encounter, date_of_service=dt.date(2026, 3, 9))
    struck = fresh_drug(encounter, site)
    update(struck, entered_in_error_at=NOW, entered_in_error_reason="Wrong patient")
    assert "nothing_charted" in panel_kinds(encounter)
    OtherService.objects.create(encounter=encounter, kind="nurse_visit_99211", detail="Blood pressure check")
    assert "nothing_charted" not in panel_kinds(encounter, signing=True)
    sweep()
    assert not DocumentationFlag.objects.filter(kind="nothing_charted").exists()


def test_second_bag_of_a_drug_is_named_by_its_number(encounter, site):
    given(encounter, site, start=NOW - 4 * H, minutes=60)
    second = given(encounter, site, start=NOW - 2 * H, minutes=None)
    update(second, started_at=NOW - 8 * H, recorded_at=NOW - 3 * H)
    messages = [i.message for i in panel(encounter) if i.kind == "still_running"]
    assert messages == ["Stop time missing for infliximab, bag 2 (started 02:00): chart when it stopped."]
    sweep()
    assert DocumentationFlag.objects.get(kind="still_running").message == messages[0]


def test_blocking_items_come_first_and_link_to_their_card(encounter, site):
    adm = given(encounter, site, dose_value=None)
    update(adm, recorded_at=adm.started_at + 2 * H)
    items = panel(encounter)
    assert [(i.kind, i.blocking) for i in items] == [("dose_missing", True), ("late_entry", False)]
    assert items[0].fix_url.endswith(f"/encounters/{encounter.pk}/#id_edit_{adm.pk}_dose_value")
    assert items[0].card_url.endswith(f"/encounters/{encounter.pk}/#adm-{adm.pk}")


def test_panel_costs_no_query_once_the_chart_is_loaded(encounter, site, django_assert_num_queries):
    for n in range(3):
        given(encounter, site, dose_value=None, start=NOW - (n + 2) * H)
    chart = Encounter.objects.for_chart().get(pk=encounter.pk)
    with django_assert_num_queries(0):
        assert len(checks.check_encounter(chart, now=NOW)) == 3


# --- both ways agree ------------------------------------------------------------------------


def _mixed_dataset(clinic, other_clinic, seed: int) -> None:
    """Encounters in two time zones with a random mix of every gap and of complete records."""
    rng = random.Random(seed)
    makers = [make for make, _ in CASES.values()]
    for n in range(24):
        c = clinic if n % 2 else other_clinic
        enc = EncounterFactory(patient=PatientFactory(clinic=c), date_of_service=dt.date(2026, 3, 10) - dt.timedelta(days=rng.choice([0, 0, 1])))
        site = AccessSiteFactory(encounter=enc, label="A")
        for make in rng.sample(makers, rng.randint(0, 3)):
            record, fix = make(enc, site)
            if rng.random() < 0.3:
                fix()
        if rng.random() < 0.3:
            given(enc, site, drug=f"drug {n}", start=NOW - rng.randint(1, 10) * H, minutes=rng.choice([None, 10, 45, 200]), dose_value=rng.choice([None, Decimal("5")]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sweep_and_panel_agree_on_a_mixed_dataset(clinic, other_clinic, seed):
    _mixed_dataset(clinic, other_clinic, seed)
    result = sweep()
    stored = {(f.kind, f.administration_id or f.access_site_id or f.encounter_id, f.message, f.field) for f in DocumentationFlag.objects.open()}
    computed = {(i.kind, *i.record_key[1:], i.message, i.field) for e in Encounter.objects.for_chart() for i in checks.check_encounter(e, now=NOW)}
    assert stored == computed
    assert result["open"] == len(stored) > 10
    assert len({f[0] for f in stored}) >= 8  # most kinds are in the mix
