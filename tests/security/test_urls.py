"""Attack 1: every URL pattern of the project, walked from the resolver.

A pattern added later without being classified here fails
`test_every_url_is_classified`, so new pages get the same checks.
"""

from __future__ import annotations

import random
import uuid

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

NURSE_READ = {"charting:worklist", "charting:encounter", "charting:ready_panel", "charting:dosing_help"}  # dosing help computes, never saves; the panel is the page's refresh
NURSE_WRITE = {
    "charting:open_encounter",
    "charting:add_access_site",
    "charting:add_administration",
    "charting:sign_encounter",
    "charting:start_administration",
    "charting:pause_administration",
    "charting:resume_administration",
    "charting:stop_administration",
    "charting:correct_time",
    "charting:record_vials",
    "charting:confirm_waste",
    "charting:remove_vials",
    "charting:amend_administration",  # signed encounters only
    "charting:answer_query",  # the coder's question, answered by the nurse
    "charting:edit_administration",  # draft only (signed: 409, amend instead)
    "charting:enter_in_error",  # REC-4: struck, never deleted
    "charting:edit_access_site",  # draft only
    "charting:document_em_service",  # draft only
    "charting:undo_administration",  # within CHAIRSIDE_UNDO_SECONDS of the tap
    "charting:check_access_site",  # draft only
    "charting:scan_vial",  # issue #8: fills the Vials form, charts nothing
    "charting:check_wristband",  # issue #8: records the check (PatientScan)
    "charting:record_vitals",  # issue #8: draft only
    "charting:strike_vitals",  # REC-4: struck, never deleted
    "charting:record_reaction",  # pauses the related running drugs
    "charting:strike_reaction",
    "charting:reaction_outcome",
    "charting:correct_vitals_time",
}
CODER_READ = {"coding:queue", "coding:review", "coding:export"}
CODER_WRITE = {
    "coding:accept_all",
    "coding:accept_line",
    "coding:change_line",
    "coding:delete_line",
    "coding:add_line",
    "coding:withdraw_line",
    "coding:open_query",
    "coding:close_query",
    "coding:finalise",
    "coding:export_download",  # a POST: it writes the export log
}
RULES_READ = {"coding:rule"}  # the text of a cited rule: coders and admins
# The admin's audit reports (issue 6) and their exports: admins only.
ADMIN_READ = {"reports:index", "reports:completeness", "reports:coding", "reports:timing", "reports:vials", "reports:access", "reports:export"}
PUBLIC = {"login", "admin:login", "healthz", "favicon"}  # the login pages themselves, the load balancer probe, the icon
OTHER = {"home", "logout"}  # home: per-role redirect (403 without a role); logout: POST only
TWO_FACTOR = {"two_factor", "two_factor_setup"}  # any logged-in user (AC-9); the only pages before the code
WRITE = NURSE_WRITE | CODER_WRITE


def _walk(patterns, ns=None):
    for p in patterns:
        if isinstance(p, URLResolver):
            child_ns = f"{ns}:{p.namespace}" if ns and p.namespace else (p.namespace or ns)
            yield from _walk(p.url_patterns, child_ns)
        elif isinstance(p, URLPattern) and p.name:
            yield (f"{ns}:{p.name}" if ns else p.name), p


def _candidates(name: str, pattern) -> list:
    regex = pattern.pattern.regex
    groups = list(regex.groupindex)
    converters = getattr(pattern.pattern, "converters", {})
    values = {}
    for g in groups:
        conv = type(converters.get(g)).__name__ if g in converters else ""
        if conv == "UUIDConverter":
            values[g] = [uuid.uuid4()]
        elif conv == "IntConverter":
            values[g] = [random.randint(10_000, 10_000_000)]
        else:
            values[g] = ["auth", "user", "1", "x"]
    return values


def _reverse(name: str, pattern) -> str | None:
    values = _candidates(name, pattern)
    keys = list(values)

    def combos(i, acc):
        if i == len(keys):
            yield dict(acc)
            return
        for v in values[keys[i]]:
            acc[keys[i]] = v
            yield from combos(i + 1, acc)

    for kwargs in combos(0, {}):
        try:
            return reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
    return None


def all_urls():
    seen = {}
    for name, pattern in _walk(get_resolver().url_patterns):
        if name in seen:
            continue
        url = _reverse(name, pattern)
        if url is not None:
            seen[name] = url
    return seen


URLS = all_urls()
APP_URLS = {n: u for n, u in URLS.items() if n.split(":")[0] in ("charting", "coding", "reports")}


def test_every_url_is_classified():
    app = {n for n in URLS if n.split(":")[0] in ("charting", "coding", "reports")} | {n for n in URLS if ":" not in n}
    assert app == NURSE_READ | NURSE_WRITE | CODER_READ | CODER_WRITE | RULES_READ | ADMIN_READ | (PUBLIC - {"admin:login"}) | OTHER | TWO_FACTOR
    # the walk found the admin too
    assert any(n.startswith("admin:") for n in URLS)


@pytest.mark.parametrize("name", sorted(set(URLS) - PUBLIC))
def test_anonymous_is_redirected_to_login(client, name):
    method = client.post if name in WRITE else client.get
    response = method(URLS[name])
    assert response.status_code == 302, (name, response.status_code)
    assert "login" in response["Location"], (name, response["Location"])


def test_login_pages_are_public_and_logout_is_post_only(client, nurse):
    assert client.get(URLS["login"]).status_code == 200
    assert client.get(URLS["admin:login"]).status_code == 200
    client.force_login(nurse)
    assert client.get(URLS["logout"]).status_code == 405
    assert client.post(URLS["logout"]).status_code == 302
    assert client.get(URLS["charting:worklist"]).status_code == 302


def _call(client, name):
    return (client.post if name in WRITE else client.get)(URLS[name])


@pytest.mark.parametrize("name", sorted(CODER_READ | CODER_WRITE | RULES_READ))
def test_nurse_gets_403_on_every_coder_url(client, nurse, name):
    client.force_login(nurse)
    assert _call(client, name).status_code == 403


@pytest.mark.parametrize("name", sorted(NURSE_READ | NURSE_WRITE))
def test_coder_gets_403_on_every_nurse_url(client, coder, name):
    client.force_login(coder)
    assert _call(client, name).status_code == 403


@pytest.mark.parametrize("name", sorted(NURSE_READ | NURSE_WRITE | CODER_READ | CODER_WRITE | RULES_READ | {"home"}))
def test_user_without_role_gets_403(client, no_role_user, name):
    client.force_login(no_role_user)
    assert _call(client, name).status_code == 403


@pytest.mark.parametrize("name", sorted(ADMIN_READ))
@pytest.mark.parametrize("who", ["nurse", "coder", "no_role_user", "other_clinic_coder"])
def test_only_the_admin_role_reads_reports(client, request, who, name):
    client.force_login(request.getfixturevalue(who))
    assert client.get(URLS[name]).status_code == 403
    assert client.get(URLS[name], HTTP_HX_REQUEST="true").status_code == 403


@pytest.mark.parametrize("name", sorted(ADMIN_READ - {"reports:export"}))
def test_admin_reads_every_report_page(client, admin, name):
    client.force_login(admin)
    assert client.get(URLS[name]).status_code == 200
    # a write verb is refused: the reports only read
    assert client.post(URLS[name]).status_code == 405


@pytest.mark.parametrize("name", sorted(NURSE_READ | NURSE_WRITE | CODER_READ | CODER_WRITE))
def test_admin_role_is_not_a_nurse_or_coder(client, admin, name):
    client.force_login(admin)
    assert _call(client, name).status_code == 403


@pytest.mark.parametrize("name", sorted(n for n in URLS if n.startswith("admin:") and n not in ("admin:login", "admin:logout")))
@pytest.mark.parametrize("who", ["nurse", "no_role_user"])
def test_nurse_and_no_role_users_cannot_use_the_admin(client, request, who, name):
    client.force_login(request.getfixturevalue(who))
    response = client.get(URLS[name])
    assert response.status_code in (302, 403, 404), (name, response.status_code)
    if response.status_code == 302:
        assert "login" in response["Location"]


@pytest.mark.parametrize("name", sorted(WRITE))
@pytest.mark.parametrize("who", ["nurse", "coder"])
def test_get_on_every_write_url_is_405(client, request, who, name):
    client.force_login(request.getfixturevalue(who))
    assert client.get(URLS[name]).status_code == 405
    assert client.get(URLS[name], HTTP_HX_REQUEST="true").status_code == 405


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_login_does_not_redirect_off_site(client, nurse, next_url):
    from tests.factories import PASSWORD

    response = client.post(URLS["login"] + f"?next={next_url}", {"username": "nurse", "password": PASSWORD})
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]
