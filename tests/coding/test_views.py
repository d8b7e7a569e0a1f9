"""Coder pages, thinly: status, permission, clinic scoping, partial vs page, queries."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from audit.models import AuditEvent
from charting.models import Encounter
from coding import rulebook
from coding.engine import RULE_TITLES
from coding.models import Payer, SuggestedLine, Suggestion
from coding.services import suggest_for_encounter
from tests.coding.test_payers import import_scenario
from tests.factories import amending

pytestmark = pytest.mark.django_db


# session, user, groups (role check), encounter JOIN patient/clinic/signer/review
# (the user's clinics as a subquery), audit insert, suggestion, lines JOIN
# accepted_by, administrations JOIN drug/site, pauses, payer, payer's overrides
# (has the policy changed since coding?), current decisions JOIN reason/coder,
# override reasons, queries JOIN people/drug, amendments JOIN author/reason/drug,
# the previous suggestion and its lines (the re-code diff). Rule links and
# titles come from memory.
# + the session's two-factor check (roles.needs_two_factor, django-otp): +1
REVIEW_QUERIES = 23  # + the audit row: savepoint, role, chain-head lock, head move, release (the insert was counted before)


@pytest.fixture
def coder_client(client, coder):
    client.force_login(coder)
    return client


def review_url(encounter):
    return reverse("coding:review", kwargs={"encounter_id": encounter.pk})


def test_nurse_gets_403_on_every_coder_page(nurse_client, make_encounter):
    encounter = make_encounter(1)
    line = suggest_for_encounter(encounter.pk).lines.get()

    assert nurse_client.get(reverse("coding:queue")).status_code == 403
    assert nurse_client.get(review_url(encounter)).status_code == 403
    assert nurse_client.post(reverse("coding:accept_line", args=[line.pk])).status_code == 403
    assert nurse_client.post(reverse("coding:accept_all", args=[encounter.pk])).status_code == 403
    line.refresh_from_db()
    assert not line.is_accepted


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("coding:queue"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_another_clinics_encounter_is_404(client, other_clinic_coder, make_encounter):
    encounter = make_encounter(1)
    line = suggest_for_encounter(encounter.pk).lines.get()
    client.force_login(other_clinic_coder)

    assert client.get(review_url(encounter)).status_code == 404
    assert client.post(reverse("coding:accept_line", args=[line.pk]), HTTP_HX_REQUEST="true").status_code == 404
    assert client.post(reverse("coding:accept_all", args=[encounter.pk])).status_code == 404
    assert b"queue-row" not in client.get(reverse("coding:queue")).content


def test_queue_lists_signed_encounters_oldest_first_with_counts(coder_client, make_encounter, coder):
    coded = make_encounter(2)
    suggestion = suggest_for_encounter(coded.pk)
    from coding.services import accept_line

    accept_line(suggestion.lines.first(), actor=coder)
    pending = make_encounter(1)
    pending.date_of_service = coded.date_of_service.replace(day=1)
    with amending():
        pending.save()
    make_encounter(1, signed=False)  # drafts are not the coder's business

    response = coder_client.get(reverse("coding:queue"))

    assert response.status_code == 200
    rows = list(response.context["encounters"])
    assert [e.pk for e in rows] == [pending.pk, coded.pk]
    assert (rows[1].line_count, rows[1].accepted_count, rows[1].has_suggestion) == (2, 1, True)
    assert rows[0].has_suggestion is False
    assert response.content.count(b'data-testid="queue-row"') == 2
    assert b"coding pending" in response.content


# session, user, groups (role check), the filter form's clinics and payers,
# the per-status counts (one GROUP BY), the page count, the page of the queue
# (one query: review status, line counts, open queries and flags as subqueries).
# + the PHI request's one audit row (audit/phi.py): savepoint, role, chain-head lock, insert, head move, release (role cached) = 14
QUEUE_QUERIES = 15  # + the session's two-factor check (roles.needs_two_factor, django-otp)


@pytest.mark.parametrize("n", [1, 10])
def test_queue_query_budget_does_not_grow_with_rows(coder_client, make_encounter, django_assert_max_num_queries, n):
    for _ in range(n):
        suggest_for_encounter(make_encounter(2).pk)
    # + the session's two-factor check (roles.needs_two_factor, django-otp): +1
    with django_assert_max_num_queries(QUEUE_QUERIES):
        response = coder_client.get(reverse("coding:queue"))
    assert response.content.count(b'data-testid="queue-row"') == n


def test_review_shows_lines_beside_their_administrations_and_audits_the_read(coder_client, coder, make_encounter):
    encounter = make_encounter(2)
    suggestion = suggest_for_encounter(encounter.pk)

    response = coder_client.get(review_url(encounter))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-testid="suggested-line"') == 2
    assert 'data-code="96365"' in html and 'data-code="96367"' in html
    assert html.count('data-testid="accept-line"') == 2
    assert "test drug 0" in html and "60 min" in html
    assert "09:00" in html  # 13:00 UTC in the clinic's America/New_York
    for rule in suggestion.lines.first().rules:
        assert rule in html
    assert AuditEvent.objects.filter(action="coding.encounter.viewed", actor=coder, object_id=str(encounter.pk), patient_id=encounter.patient_id).count() == 1


def test_review_before_the_task_ran_says_coding_pending(coder_client, make_encounter):
    response = coder_client.get(review_url(make_encounter(1)))
    assert response.status_code == 200 and b'data-testid="coding-pending"' in response.content


@pytest.mark.parametrize("n", [1, 10])
def test_review_query_budget_does_not_grow_with_administrations(coder_client, make_encounter, django_assert_max_num_queries, n):
    encounter = make_encounter(n)
    suggest_for_encounter(encounter.pk)
    with django_assert_max_num_queries(REVIEW_QUERIES):
        response = coder_client.get(review_url(encounter))
    # 96365 + 96367 (units summed): n administrations beside the lines.
    assert response.content.count(b'data-testid="line-administration"') == n


@pytest.mark.parametrize("n", [1, 50])
def test_review_query_budget_does_not_grow_with_lines(coder_client, make_encounter, django_assert_max_num_queries, n):
    encounter = make_encounter(1)
    suggestion = suggest_for_encounter(encounter.pk)
    first = suggestion.lines.get()
    # More lines than the engine would make for one drug, each citing rules and the administration.
    SuggestedLine.objects.bulk_create(
        SuggestedLine(
            suggestion=suggestion,
            position=i,
            code="96372",
            units=1,
            modifiers=["59"],
            administrations=first.administrations,
            rules=["R9", "D11"],
            explanation=f"injection {i}",
        )
        for i in range(2, n + 1)
    )
    with django_assert_max_num_queries(REVIEW_QUERIES):
        response = coder_client.get(review_url(encounter))
    assert response.content.count(b'data-testid="suggested-line"') == n
    assert response.content.count(b'data-testid="rule-link"') == len(first.rules) + 2 * (n - 1)


def test_review_shows_explanation_rule_links_version_and_payer(coder_client, make_encounter):
    encounter = make_encounter(1)
    suggestion = suggest_for_encounter(encounter.pk)
    line = suggestion.lines.get()

    html = coder_client.get(review_url(encounter)).content.decode()

    assert f'<p class="mb-1" data-testid="line-explanation">{escape(line.explanation)}</p>' in html
    assert f'data-testid="ruleset-version">{suggestion.ruleset_version}<' in html
    assert 'data-testid="suggestion-payer">medicare<' in html
    for rule in line.rules:
        title = RULE_TITLES.get(rule) or rulebook.rule(rule).title
        assert f'href="{reverse("coding:rule", args=[rule])}" title="{escape(title)}" data-testid="rule-link">{rule}</a>' in html


def test_review_names_the_fallback_policy_for_an_unknown_payer(coder_client, make_encounter):
    encounter = make_encounter(1)
    Encounter.objects.filter(pk=encounter.pk).update(payer="unheard-of")
    suggest_for_encounter(encounter.pk)

    html = coder_client.get(review_url(encounter)).content.decode()

    assert 'data-testid="suggestion-payer">unheard-of<' in html and "no policy stored for this payer" in html
    # The payer_policy warning is listed too.
    assert 'data-testid="warning"' in html


def test_accept_via_htmx_returns_the_line_partial(coder_client, coder, make_encounter):
    encounter = make_encounter(1)
    line = suggest_for_encounter(encounter.pk).lines.get()

    response = coder_client.post(reverse("coding:accept_line", args=[line.pk]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert 'data-testid="line-accepted"' in html and 'data-testid="accept-line"' not in html
    assert html.count('data-testid="suggested-line"') == 1
    assert "HX-Request" in response["Vary"]
    line.refresh_from_db()
    assert line.accepted_by == coder


def test_accept_by_plain_post_redirects_and_twice_is_harmless(coder_client, make_encounter):
    encounter = make_encounter(1)
    line = suggest_for_encounter(encounter.pk).lines.get()
    url = reverse("coding:accept_line", args=[line.pk])

    first = coder_client.post(url)
    second = coder_client.post(url)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == review_url(encounter)
    assert AuditEvent.objects.filter(action="coding.line.accepted").count() == 1


def test_accept_is_post_only(coder_client, make_encounter):
    line = suggest_for_encounter(make_encounter(1).pk).lines.get()
    assert coder_client.get(reverse("coding:accept_line", args=[line.pk])).status_code == 405


def test_accept_all(coder_client, make_encounter):
    encounter = make_encounter(3)
    suggestion = suggest_for_encounter(encounter.pk)

    response = coder_client.post(reverse("coding:accept_all", args=[encounter.pk]))

    assert response.status_code == 302
    assert not suggestion.lines.filter(accepted_at__isnull=True).exists()
    page = coder_client.get(review_url(encounter)).content.decode()
    assert page.count('data-testid="line-accepted"') == suggestion.lines.count()


def test_review_shows_a_drug_lines_ndc(coder_client, coder, tmp_path):
    encounter = import_scenario("pc-37", tmp_path)
    encounter.clinic.staff.add(coder)
    line = Suggestion.objects.current().get(encounter=encounter).lines.exclude(ndc="").first()

    html = coder_client.get(review_url(encounter)).content.decode()

    assert f"N4 {line.ndc}" in html
    if line.ndc_quantity is not None:
        assert f"{line.ndc_unit} {line.ndc_quantity.normalize():f}" in html


def test_review_says_when_the_payers_policy_changed_since_coding(coder_client, make_encounter):
    encounter = make_encounter(1)
    suggest_for_encounter(encounter.pk)
    assert b'data-testid="policy-changed"' not in coder_client.get(review_url(encounter)).content

    Payer.objects.filter(code="medicare").update(secondary_hydration_59="never")
    html = coder_client.get(review_url(encounter)).content.decode()

    assert 'data-testid="policy-changed"' in html
    assert '<span class="font-monospace">secondary_hydration_59</span> chemo_initial_only → never' in html
