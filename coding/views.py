"""The coder's pages: the queue of signed encounters, the review of one, and
the text of the rules its lines cite.

Every encounter view requires the coder role and fetches through a QuerySet
limited to the coder's clinics, so another clinic's encounter or line is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from audit.models import Category
from audit.phi import phi
from audit.services import record, subject
from charting.models import Administration
from coding.engine import RULE_TITLES, RULESET_VERSION, PolicyError
from infusion_site.roles import ADMIN, CODER, has_role, role_required

from . import rulebook, services
from .documentation import administration_minutes
from .models import Payer, SuggestedLine, Suggestion, encounters_for_coder, review_queue


@require_GET
@phi("coding.queue.viewed", category=Category.CODING)
@role_required(CODER)
def queue(request: HttpRequest) -> HttpResponse:
    # ?flags=open: only encounters with open documentation flags (charting/checks.py).
    only_flagged = request.GET.get("flags") == "open"
    encounters = review_queue(request.user).with_open_flag_count()
    if only_flagged:
        encounters = encounters.with_open_flags()
    return render(request, "coding/queue.html", {"encounters": encounters, "only_flagged": only_flagged})


def rule_links(rule_ids: list[str]) -> list[dict[str, Any]]:
    """Each cited rule id with the URL of its text (None when coding-rules.md
    has no such rule) and its short title from the engine, for a tooltip."""
    known = rulebook.rules()
    return [
        {"id": r, "url": reverse("coding:rule", args=[r]) if r in known else None, "title": RULE_TITLES.get(r) or (known[r].title if r in known else "")}
        for r in rule_ids
    ]


def _attach_sources(lines: list[SuggestedLine], administrations: dict[str, Administration]) -> None:
    """Give each line the charted administrations it came from (`line.sources`)
    and links to the rules it cites (`line.rule_links`)."""
    for line in lines:
        line.sources = [administrations[a] for a in line.administrations if a in administrations]
        line.rule_links = rule_links(line.rules)


def _administrations(encounter_id) -> dict[str, Administration]:
    """The encounter's administrations by id, with drug, site, pauses and drip minutes (3 queries)."""
    rows = Administration.objects.filter(encounter_id=encounter_id).select_related("drug", "access_site").prefetch_related("pauses")
    for row in rows:
        row.drip_minutes = administration_minutes(row)
    return {str(row.pk): row for row in rows}


@require_GET
@phi("coding.encounter.viewed", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def review(request: HttpRequest, encounter_id) -> HttpResponse:
    encounter = get_object_or_404(encounters_for_coder(request.user).select_related("patient", "clinic", "signed_by"), pk=encounter_id)
    # Reading a chart is audited (DESIGN §8), page by page.
    record("coding.encounter.viewed", actor=request.user, obj=encounter, patient_id=encounter.patient_id)
    suggestion = (
        Suggestion.objects.current()
        .filter(encounter=encounter)
        .prefetch_related(Prefetch("lines", queryset=SuggestedLine.objects.select_related("accepted_by")))
        .first()
    )
    administrations = _administrations(encounter.pk)
    lines = list(suggestion.lines.all()) if suggestion else []
    _attach_sources(lines, administrations)
    if suggestion is not None:
        for item in [*suggestion.warnings, *suggestion.not_billed]:
            item["rule_links"] = rule_links(item.get("rules") or [])
    context = {
        "encounter": encounter,
        "suggestion": suggestion,
        "lines": lines,
        "administrations": list(administrations.values()),
        "pending_count": sum(1 for line in lines if not line.is_accepted),
        "policy_changes": _policy_changes_since(suggestion, encounter.payer) if suggestion is not None else (),
    }
    return render(request, "coding/review.html", context)


def _policy_changes_since(suggestion: Suggestion, payer_code: str) -> tuple[tuple[str, Any, Any], ...]:
    """How the payer's stored policy now differs from the one `suggestion` was
    coded with (2 queries: payer, overrides). Nothing to compare when the payer
    has no stored policy, the suggestion recorded none, or the engine rejects it."""
    try:
        current = Payer.objects.policy_for(payer_code)
    except PolicyError:
        return ()
    if current is None or suggestion.policy is None:
        return ()
    return suggestion.policy_changes(current.to_dict())


def _line_for_coder(request: HttpRequest, line_id: int) -> SuggestedLine:
    lines = SuggestedLine.objects.filter(suggestion__encounter__in=encounters_for_coder(request.user))
    line = get_object_or_404(lines.select_related("suggestion__encounter__clinic", "accepted_by"), pk=line_id)
    subject(line, patient_id=line.suggestion.encounter.patient_id)
    return line


@require_POST
@phi("coding.line.accept", category=Category.CODING, object_type="coding.suggestedline", id_kwarg="line_id")
@role_required(CODER)
@vary_on_headers("HX-Request")
def accept_line(request: HttpRequest, line_id: int) -> HttpResponse:
    """Accept one line; htmx gets the line's partial back, a plain POST a redirect."""
    line = _line_for_coder(request, line_id)
    encounter = line.suggestion.encounter
    try:
        accepted = services.accept_line(line, actor=request.user)
    except services.CodingError as exc:
        messages.error(request, str(exc))
        if request.htmx:
            return HttpResponseClientRedirect(reverse("coding:review", kwargs={"encounter_id": encounter.pk}))
        return redirect("coding:review", encounter_id=encounter.pk)
    if not request.htmx:
        return redirect("coding:review", encounter_id=encounter.pk)
    _attach_sources([accepted], _administrations(encounter.pk))
    return render(request, "coding/review.html#line", {"line": accepted, "encounter": encounter})


@require_POST
@phi("coding.suggestion.accept_all", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def accept_all(request: HttpRequest, encounter_id) -> HttpResponse:
    """Accept every pending line of the suggestion the coder's page showed.

    The page posts that suggestion's id: when the encounter has been re-coded
    since, accept_all_lines refuses instead of accepting lines nobody has seen.
    """
    encounter = get_object_or_404(encounters_for_coder(request.user), pk=encounter_id)
    subject(encounter, patient_id=encounter.patient_id)
    shown = request.POST.get("suggestion")
    suggestions = Suggestion.objects.filter(encounter=encounter)
    if shown is None:  # a page rendered before the id was posted
        suggestion = suggestions.current().first()
    else:
        suggestion = suggestions.filter(pk=int(shown)).first() if shown.isdigit() else None
    if suggestion is None:
        messages.error(request, "There is no suggestion to accept: reload the encounter.")
        return redirect("coding:review", encounter_id=encounter.pk)
    try:
        accepted = services.accept_all_lines(suggestion, actor=request.user)
    except services.CodingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{len(accepted)} line(s) accepted.")
    return redirect("coding:review", encounter_id=encounter.pk)


@require_GET
def rule(request: HttpRequest, rule_id: str) -> HttpResponse:
    """The text of one rule or engine default of coding-rules.md (R12, D3, ...),
    linked from every rule id on the review page. Coders and admins."""
    if not (has_role(request.user, CODER) or has_role(request.user, ADMIN)):
        raise PermissionDenied("This page is for the coder and admin roles.")
    text = rulebook.rule(rule_id)
    if text is None:
        raise Http404(f"No rule {rule_id} in coding-rules.md.")
    return render(request, "coding/rule.html", {"rule": text, "short_title": RULE_TITLES.get(rule_id), "ruleset_version": RULESET_VERSION})
