"""The rule text behind every rule id a line cites: the copy of coding-rules.md,
its parsing, and the coder's rule page."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from coding import rulebook
from coding.services import suggest_for_encounter

SHARED_RULES = Path(__file__).resolve().parents[2].parent / "shared" / "coding-rules.md"


@pytest.mark.skipif(not SHARED_RULES.is_file(), reason="shared/coding-rules.md not beside the repository")
def test_rules_file_is_a_byte_identical_copy_of_the_shared_one():
    assert rulebook.RULES_FILE.read_bytes() == SHARED_RULES.read_bytes()


def test_every_rule_and_default_of_the_file_is_parsed():
    text = rulebook.RULES_FILE.read_text(encoding="utf-8")
    written = re.findall(r"^\*\*(R\d+) — ", text, flags=re.M) + re.findall(r"^\* \*\*(D\d+) — ", text, flags=re.M)

    assert list(rulebook.rules()) == written
    assert len(written) == 51 + 13
    assert all(rule.title and rule.body for rule in rulebook.rules().values())


@pytest.mark.parametrize(
    ("rule_id", "title", "in_body", "not_in_body"),
    [
        ("R1", "Three families", "Pick the family by the agent", "R2"),
        # A title wrapped over two lines.
        ("R8", "After the initial is fixed, pick subsequent codes from whichever family fits, regardless of the initial's family", "96375 with 96365", "**R9"),
        ("R12", "Where the modifier goes", "payer-specific", "Separate encounters"),
        # The rule runs on through its table and the note after it, up to the next heading.
        ("R38", "Rheumatology drug table (engine default → review flag)", "| Certolizumab (J0717 1 mg) SC |", "## H."),
        # The last rule stops at the horizontal rule.
        ("R51", "Declotting a catheter", "36593", "Engine defaults"),
        ("D1", "modifier 59 on secondary hydration (R31)", "chemo initial only, never.", "D2"),
        ("D13", "hormonal antineoplastics (R34)", "other complex SC/IM agents take 96401.", "Points where"),
    ],
)
def test_rule_paragraphs(rule_id, title, in_body, not_in_body):
    rule = rulebook.rule(rule_id)
    assert rule.title == title
    assert in_body in rule.body
    assert not_in_body not in rule.body


def test_rule_text_is_escaped_and_lightly_formatted():
    html = rulebook.render_markdown("a <script> & **bold** *it* `code`\n\n| h1 | h2 |\n|---|---|\n| x | **y** |")
    assert "<script>" not in html and "&lt;script&gt; &amp;" in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html and "<code>code</code>" in html
    assert "<th>h1</th>" in html and "<td><strong>y</strong></td>" in html and "---" not in html


# --- the page -------------------------------------------------------------------


def rule_url(rule_id):
    return reverse("coding:rule", args=[rule_id])


@pytest.mark.django_db
@pytest.mark.parametrize("person", ["coder", "admin"])
def test_coder_and_admin_read_a_rule(client, person, request):
    client.force_login(request.getfixturevalue(person))

    response = client.get(rule_url("R12"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-rule="R12"' in html and "Where the modifier goes" in html
    assert "RAC 0071 accepts 59, XE, XS, XP or XU" in html


@pytest.mark.django_db
def test_engine_default_page(client, coder):
    client.force_login(coder)
    response = client.get(rule_url("D3"))
    assert response.status_code == 200 and b"distinct-service modifier" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("rule_id", ["R52", "R0", "D14", "X1", "r12"])
def test_unknown_rule_is_404(client, coder, rule_id):
    client.force_login(coder)
    assert client.get(rule_url(rule_id)).status_code == 404


@pytest.mark.django_db
def test_nurse_gets_403_and_anonymous_the_login_page(client, nurse):
    assert client.get(rule_url("R12")).status_code == 302
    client.force_login(nurse)
    assert client.get(rule_url("R12")).status_code == 403


@pytest.mark.django_db
def test_rule_page_is_get_only(client, coder):
    client.force_login(coder)
    assert client.post(rule_url("R12")).status_code == 405


@pytest.mark.django_db
def test_every_rule_id_on_the_review_page_links_to_its_text(client, coder, make_encounter):
    encounter = make_encounter(2)
    suggestion = suggest_for_encounter(encounter.pk)
    client.force_login(coder)

    html = client.get(reverse("coding:review", kwargs={"encounter_id": encounter.pk})).content.decode()

    cited = {rule for line in suggestion.lines.all() for rule in line.rules}
    links = dict(re.findall(r'<a class="font-monospace" href="([^"]+)"[^>]*data-testid="rule-link">([^<]+)</a>', html))
    assert cited and cited <= set(links.values())
    for url, rule_id in links.items():
        assert url == rule_url(rule_id)
        page = client.get(url)
        assert page.status_code == 200 and f'data-rule="{rule_id}"'.encode() in page.content
