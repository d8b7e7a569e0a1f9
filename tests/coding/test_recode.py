"""`manage.py recode ENCOUNTER_ID [--save]` and the diff behind it (services.preview_recode)."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from charting.models import Administration, Encounter, Pause
from coding.engine import RULESET_VERSION
from coding.models import Payer, Suggestion
from coding.services import CodingError, preview_recode, suggest_for_encounter
from tests.coding.test_payers import import_scenario
from tests.factories import amending

pytestmark = pytest.mark.django_db


def recode(*args) -> str:
    out = io.StringIO()
    call_command("recode", *[str(a) for a in args], stdout=out)
    return out.getvalue()


def test_unchanged_encounter_says_so_and_saves_nothing(make_encounter):
    encounter = make_encounter(2)
    stored = suggest_for_encounter(encounter.pk)

    out = recode(encounter.pk, "--save")

    assert f"Stored suggestion: {stored.pk}" in out
    assert f"Rule set: {RULESET_VERSION} (unchanged)" in out
    assert "Documentation: unchanged" in out and "Policy: unchanged" in out and "Lines: unchanged" in out
    assert "Nothing to save" in out
    assert list(Suggestion.objects.filter(encounter=encounter)) == [stored]


def test_policy_change_shows_the_changed_line_and_setting_and_saves_only_with_save(tmp_path):
    encounter = import_scenario("office-two-sites-medically-required", tmp_path)
    stored = Suggestion.objects.current().get(encounter=encounter)
    Payer.objects.filter(code="medicare").update(distinct_modifier="XU")

    out = recode(encounter.pk)

    assert "Documentation: unchanged" in out
    assert "  distinct_modifier: 59 → XU" in out
    assert "  ~ 96365×1-59 → 96365×1-XU" in out
    assert "96413" not in out  # unchanged lines are not listed
    assert Suggestion.objects.current().get(encounter=encounter) == stored

    saved = recode(encounter.pk, "--save")

    current = Suggestion.objects.current().get(encounter=encounter)
    assert current != stored and f"Saved suggestion {current.pk}" in saved
    assert current.policy["distinct_modifier"] == "XU"
    assert "Lines: unchanged" in recode(encounter.pk)


def test_documentation_change_shows_lines_added_removed_and_changed(make_encounter):
    encounter = make_encounter(1)
    suggest_for_encounter(encounter.pk)
    adm = encounter.administrations.get()
    # 60 -> 120 minutes: 96365 stays, 96366 x1 is added.
    with amending():  # the documentation was amended after signing
        Administration.objects.filter(pk=adm.pk).update(stopped_at=adm.started_at + dt.timedelta(minutes=120))

    diff = preview_recode(encounter.pk)

    assert diff.documentation_changed and diff.added == ("96366×1",) and not diff.removed and not diff.changed
    assert "  + 96366×1" in recode(encounter.pk)


def test_a_line_replaced_by_another_code_is_removed_and_added(make_encounter):
    encounter = make_encounter(2)
    suggest_for_encounter(encounter.pk)
    second = encounter.administrations.order_by("started_at").last()
    # The second drug paused for all but 10 minutes: a push now (R18), not a sequential infusion.
    Pause.objects.create(administration=second, paused_at=second.started_at + dt.timedelta(minutes=5), resumed_at=second.started_at + dt.timedelta(minutes=55))

    diff = preview_recode(encounter.pk)

    assert (diff.removed, diff.added, diff.changed) == (("96367×1",), ("96375×1",), ())
    out = recode(encounter.pk)
    assert "  - 96367×1" in out and "  + 96375×1" in out


def test_ruleset_version_old_to_new(make_encounter):
    encounter = make_encounter(1)
    stored = suggest_for_encounter(encounter.pk)
    Suggestion.objects.filter(pk=stored.pk).update(ruleset_version="2024.9")

    out = recode(encounter.pk)

    assert f"Rule set: 2024.9 → {RULESET_VERSION}" in out
    assert "Lines: unchanged" in out


def test_suggestion_stored_before_policies_were_recorded(make_encounter):
    encounter = make_encounter(1)
    stored = suggest_for_encounter(encounter.pk)
    Suggestion.objects.filter(pk=stored.pk).update(policy=None)

    out = recode(encounter.pk, "--save")

    assert "Policy: not recorded with the stored suggestion" in out
    assert Suggestion.objects.current().get(encounter=encounter).policy["name"] == "medicare"


def test_payer_switch_lists_the_policy_name(make_encounter):
    encounter = make_encounter(1)
    suggest_for_encounter(encounter.pk)
    Payer.objects.create(code="acme", name="Acme Health", secondary_hydration_59="never")
    Encounter.objects.filter(pk=encounter.pk).update(payer="acme")

    out = recode(encounter.pk)

    assert "policy acme" in out and "  name: medicare → acme" in out and "  secondary_hydration_59: chemo_initial_only → never" in out
    assert "Documentation: changed" in out  # the payer is part of the engine input


def test_never_coded_encounter_lists_every_line_as_added(make_encounter):
    encounter = make_encounter(2)

    out = recode(encounter.pk)

    assert "Stored suggestion: none" in out and f"Rule set: - → {RULESET_VERSION}" in out
    assert "  + 96365×1" in out and "  + 96367×1" in out


@pytest.mark.parametrize("encounter_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_unknown_encounter_exits_2(encounter_id):
    with pytest.raises(CommandError, match="does not exist") as excinfo:
        recode(encounter_id)
    assert excinfo.value.returncode == 2


def test_draft_encounter_exits_2(make_encounter):
    draft = make_encounter(1, signed=False)
    with pytest.raises(CommandError, match="signed") as excinfo:
        recode(draft.pk, "--save")
    assert excinfo.value.returncode == 2
    assert not Suggestion.objects.exists()


def test_preview_writes_nothing(make_encounter, django_assert_max_num_queries):
    encounter = make_encounter(3)
    suggest_for_encounter(encounter.pk)
    with pytest.raises(CodingError):
        preview_recode("00000000-0000-0000-0000-000000000000")
    # encounter JOIN clinic, documentation (sites, administrations, pauses, vials,
    # other services), payer + overrides, stored suggestion + lines: reads only.
    with django_assert_max_num_queries(11) as captured:
        preview_recode(encounter.pk)
    assert not any(q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for q in captured.captured_queries)
