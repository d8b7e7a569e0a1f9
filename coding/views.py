"""The coder's pages: the queue of signed encounters, the review of one (with
its decisions, queries and finalisation), exports, and the text of the rules
its lines cite.

Every encounter view requires the coder role and fetches through a QuerySet
limited to the coder's clinics, so another clinic's encounter, line or query
is a 404. Every save posts the review version its page loaded: a stale one is
answered 409 with the page as it is now and what changed (CON-1).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from audit.models import Category
from audit.phi import phi
from audit.services import record, subject
from charting import checks
from charting.models import Administration, Amendment, Encounter
from coding.engine import RULE_TITLES, RULESET_VERSION, PolicyError
from infusion_site.roles import ADMIN, CODER, has_role, role_required

from . import exports, rulebook, services
from .documentation import administration_minutes
from .forms import AddLineForm, ChangeLineForm, DeleteLineForm, ExportForm, QueryForm, QueueFilterForm, VersionForm
from .models import (
    DocumentationQuery,
    EncounterReview,
    FinalLine,
    OverrideReason,
    Payer,
    ReviewStatus,
    SuggestedLine,
    Suggestion,
    encounters_for_coder,
    filter_queue,
    review_queue,
    status_counts,
)

QUEUE_PAGE_SIZE = 25


@require_GET
@phi("coding.queue.viewed", category=Category.CODING)
@role_required(CODER)
def queue(request: HttpRequest) -> HttpResponse:
    """Signed encounters of the coder's clinics, filtered (clinic, date range,
    payer, status, open flags; a bad value is a form error shown on the page
    and that filter is not applied), counted per status,
    oldest first unless ?order=newest, QUEUE_PAGE_SIZE a page."""
    form = QueueFilterForm(request.GET or None, user=request.user)
    filters = form.filters() if request.GET else {}
    encounters = filter_queue(review_queue(request.user).with_open_flag_count(), filters)
    if "status" in filters:
        encounters = encounters.filter(review_status=filters["status"])
    if filters.get("order") == "newest":
        encounters = encounters.order_by("-date_of_service", "-signed_at", "-pk")
    page = Paginator(encounters, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    counts = status_counts(request.user, filters)
    context = {
        "form": form,
        "page": page,
        "encounters": page.object_list,
        "only_flagged": filters.get("flags") == "open",
        "status_counts": [(value, label, counts[value]) for value, label in ReviewStatus.choices],
        "querystring": params.urlencode(),
        "without_status": _without(params, "status"),
    }
    return render(request, "coding/queue.html", context)


def _without(params, key: str) -> str:
    params = params.copy()
    params.pop(key, None)
    return params.urlencode()


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


def _administrations(encounter_id, *, imported: bool = False) -> dict[str, Administration]:
    """The encounter's administrations by id, with drug, site, pauses, drip
    minutes and late-entry minutes (REC-3; not for imported encounters, whose
    rows were entered by the import) (3 queries)."""
    rows = Administration.objects.filter(encounter_id=encounter_id).with_start_corrected().select_related("drug", "access_site", "recorded_by").prefetch_related("pauses")
    late_limit = checks.Limits.from_settings().late_entry
    for row in rows:
        row.drip_minutes = administration_minutes(row)
        row.late_minutes = None if imported else row.late_entry_minutes(late_limit)
    return {str(row.pk): row for row in rows}


def _encounter_for_coder(request: HttpRequest, encounter_id) -> Encounter:
    encounter = get_object_or_404(
        encounters_for_coder(request.user).select_related("patient", "clinic", "signed_by", "review__finalised_by", "review__updated_by"), pk=encounter_id
    )
    subject(encounter, patient_id=encounter.patient_id)
    return encounter


def _review_of(encounter: Encounter) -> EncounterReview | None:
    try:
        return encounter.review
    except EncounterReview.DoesNotExist:
        return None


def _review_context(encounter: Encounter, **extra: Any) -> dict[str, Any]:
    """Everything the review page shows, in a constant number of queries (see
    REVIEW_QUERIES in tests/coding/test_views.py). `extra` holds bound forms
    with errors (`line_forms` by line id, `add_form`, `query_form`) or a `conflict`."""
    suggestion = (
        Suggestion.objects.current()
        .filter(encounter=encounter)
        .prefetch_related(Prefetch("lines", queryset=SuggestedLine.objects.select_related("accepted_by")))
        .first()
    )
    administrations = _administrations(encounter.pk, imported=encounter.external_id is not None)
    lines = list(suggestion.lines.all()) if suggestion else []
    _attach_sources(lines, administrations)
    decisions = list(FinalLine.objects.current().filter(suggestion=suggestion).select_related("reason", "decided_by")) if suggestion else []
    by_line = {d.suggested_line_id: d for d in decisions if d.suggested_line_id}
    line_forms = extra.pop("line_forms", {})
    for line in lines:
        line.decision = by_line.get(line.pk)
        line.bound_form = line_forms.get(line.pk)
    if suggestion is not None:
        for item in [*suggestion.warnings, *suggestion.not_billed]:
            item["rule_links"] = rule_links(item.get("rules") or [])
    review = _review_of(encounter)
    return {
        "encounter": encounter,
        "review": review,
        "version": review.version if review else 0,
        "is_final": bool(review and review.is_final),
        "suggestion": suggestion,
        "lines": lines,
        "added_lines": [d for d in decisions if d.suggested_line_id is None],
        "administrations": list(administrations.values()),
        "late_entries": [adm for adm in administrations.values() if adm.late_minutes is not None],
        "pending_count": sum(1 for line in lines if line.decision is None and not line.is_accepted),
        "undecided_count": sum(1 for line in lines if line.decision is None),
        "policy_changes": _policy_changes_since(suggestion, encounter.payer) if suggestion is not None else (),
        "reasons": list(OverrideReason.objects.filter(is_active=True)),
        "queries": list(
            DocumentationQuery.objects.filter(encounter=encounter).select_related("asked_by", "answered_by", "administration__drug").order_by("asked_at", "pk")
        ),
        "amendments": list(Amendment.objects.filter(encounter=encounter).select_related("author", "reason", "administration__drug")),
        "suggestion_change": services.suggestion_change(encounter, suggestion),
        **extra,
    }


def _render_review(request: HttpRequest, encounter: Encounter, *, status: int = 200, **extra: Any) -> HttpResponse:
    return render(request, "coding/review.html", _review_context(encounter, **extra), status=status)


@require_GET
@phi("coding.encounter.viewed", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def review(request: HttpRequest, encounter_id) -> HttpResponse:
    encounter = _encounter_for_coder(request, encounter_id)
    # Reading a chart is audited (DESIGN §8), page by page.
    record("coding.encounter.viewed", actor=request.user, obj=encounter, patient_id=encounter.patient_id)
    return _render_review(request, encounter)


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


def _posted_version(request: HttpRequest) -> int | None:
    """The version the page posted; None when absent (pages rendered before
    versions were posted: accept and accept-all only)."""
    value = request.POST.get("version", "")
    return int(value) if value.isdigit() and len(value) < 10 else None


def _to_review(encounter_id) -> HttpResponse:
    return redirect("coding:review", encounter_id=encounter_id)


def _conflict(request: HttpRequest, encounter_id, exc: services.ReviewConflict) -> HttpResponse:
    """409 with the page as it is now, the message and what changed (nothing was saved)."""
    encounter = _encounter_for_coder(request, encounter_id)
    if request.htmx:
        # htmx does not swap error responses: reload the page, which shows the message.
        messages.error(request, " ".join([str(exc), *exc.changes]))
        response = HttpResponse(str(exc), status=409)
        response["HX-Refresh"] = "true"
        return response
    return _render_review(request, encounter, status=409, conflict=exc)


def _save(request: HttpRequest, encounter_id, form, write, *, done: str, form_key: str, line_id: int | None = None) -> HttpResponse:
    """Validate `form`, call `write(cleaned_data)` (one service), then redirect
    to the review page. Field errors re-render the page (400) with the typed
    form; a refusal about the record goes in a message; a stale version is 409."""
    if form.is_valid():
        try:
            write(form.cleaned_data)
        except services.ReviewConflict as exc:
            return _conflict(request, encounter_id, exc)
        except services.CodingError as exc:
            if exc.field not in form.fields:
                messages.error(request, str(exc))
                return _to_review(encounter_id)
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, done)
            return _to_review(encounter_id)
    encounter = _encounter_for_coder(request, encounter_id)
    extra = {"line_forms": {line_id: form}} if line_id is not None else {form_key: form}
    return _render_review(request, encounter, status=400, **extra)


@require_POST
@phi("coding.line.accept", category=Category.CODING, object_type="coding.suggestedline", id_kwarg="line_id")
@role_required(CODER)
@vary_on_headers("HX-Request")
def accept_line(request: HttpRequest, line_id: int) -> HttpResponse:
    """Accept one line; htmx gets the line's partial back (and the new version
    in X-Review-Version for the page's other forms), a plain POST a redirect."""
    line = _line_for_coder(request, line_id)
    encounter = line.suggestion.encounter
    try:
        accepted = services.accept_line(line, actor=request.user, version=_posted_version(request))
    except services.ReviewConflict as exc:
        return _conflict(request, encounter.pk, exc)
    except services.CodingError as exc:
        messages.error(request, str(exc))
        if request.htmx:
            return HttpResponseClientRedirect(reverse("coding:review", kwargs={"encounter_id": encounter.pk}))
        return _to_review(encounter.pk)
    if not request.htmx:
        return _to_review(encounter.pk)
    _attach_sources([accepted], _administrations(encounter.pk))
    accepted.decision = FinalLine.objects.current().filter(suggested_line=accepted).select_related("reason", "decided_by").first()
    review = EncounterReview.objects.get(encounter=encounter)
    context = {"line": accepted, "encounter": encounter, "version": review.version, "reasons": list(OverrideReason.objects.filter(is_active=True)), "is_final": review.is_final}
    response = render(request, "coding/review.html#line", context)
    response["X-Review-Version"] = str(review.version)
    return response


@require_POST
@phi("coding.suggestion.accept_all", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def accept_all(request: HttpRequest, encounter_id) -> HttpResponse:
    """Accept every undecided line of the suggestion the coder's page showed.

    The page posts that suggestion's id: when the encounter has been re-coded
    since, accept_all_lines refuses instead of accepting lines nobody has seen.
    """
    encounter = _encounter_for_coder(request, encounter_id)
    shown = request.POST.get("suggestion")
    suggestions = Suggestion.objects.filter(encounter=encounter)
    if shown is None:  # a page rendered before the id was posted
        suggestion = suggestions.current().first()
    else:
        suggestion = suggestions.filter(pk=int(shown)).first() if shown.isdigit() and len(shown) < 18 else None
    if suggestion is None:
        messages.error(request, "There is no suggestion to accept: reload the encounter.")
        return _to_review(encounter.pk)
    try:
        accepted = services.accept_all_lines(suggestion, actor=request.user, version=_posted_version(request))
    except services.ReviewConflict as exc:
        return _conflict(request, encounter.pk, exc)
    except services.CodingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{len(accepted)} line(s) accepted.")
    return _to_review(encounter.pk)


@require_POST
@phi("coding.line.change", category=Category.CODING, object_type="coding.suggestedline", id_kwarg="line_id")
@role_required(CODER)
def change_line(request: HttpRequest, line_id: int) -> HttpResponse:
    """Bill a suggested line with another code, units or modifiers (reason required)."""
    line = _line_for_coder(request, line_id)
    form = ChangeLineForm(request.POST)
    return _save(
        request,
        line.suggestion.encounter_id,
        form,
        lambda data: services.change_line(line, actor=request.user, **data),
        done=f"{line.code} changed.",
        form_key="change",
        line_id=line.pk,
    )


@require_POST
@phi("coding.line.delete", category=Category.CODING, object_type="coding.suggestedline", id_kwarg="line_id")
@role_required(CODER)
def delete_line(request: HttpRequest, line_id: int) -> HttpResponse:
    """Drop a suggested line from the bill (reason required); the suggestion keeps it."""
    line = _line_for_coder(request, line_id)
    form = DeleteLineForm(request.POST)
    return _save(
        request,
        line.suggestion.encounter_id,
        form,
        lambda data: services.delete_line(line, actor=request.user, **data),
        done=f"{line.code} deleted from the bill.",
        form_key="delete",
        line_id=line.pk,
    )


@require_POST
@phi("coding.line.add", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def add_line(request: HttpRequest, encounter_id) -> HttpResponse:
    """Add a line the suggestion lacks (reason required)."""
    encounter = _encounter_for_coder(request, encounter_id)
    form = AddLineForm(request.POST)
    return _save(request, encounter.pk, form, lambda data: services.add_line(encounter, actor=request.user, **data), done="Line added.", form_key="add_form")


@require_POST
@phi("coding.line.withdraw", category=Category.CODING, object_type="coding.finalline", id_kwarg="final_id")
@role_required(CODER)
def withdraw_line(request: HttpRequest, final_id: int) -> HttpResponse:
    """Take back a line the coder added."""
    finals = FinalLine.objects.filter(review__encounter__in=encounters_for_coder(request.user))
    final = get_object_or_404(finals.select_related("review__encounter"), pk=final_id)
    subject(final, patient_id=final.review.encounter.patient_id)
    form = VersionForm(request.POST)
    return _save(request, final.review.encounter_id, form, lambda data: services.withdraw_added_line(final, actor=request.user, **data), done="Added line withdrawn.", form_key="withdraw")


@require_POST
@phi("coding.query.open", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def open_query(request: HttpRequest, encounter_id) -> HttpResponse:
    """Ask the nurse about the encounter or one administration."""
    encounter = _encounter_for_coder(request, encounter_id)
    form = QueryForm(request.POST, encounter=encounter)
    return _save(
        request, encounter.pk, form, lambda data: services.open_query(encounter, actor=request.user, **data), done="Query sent to the nurse.", form_key="query_form"
    )


@require_POST
@phi("coding.query.close", category=Category.CODING, object_type="coding.documentationquery", id_kwarg="query_id")
@role_required(CODER)
def close_query(request: HttpRequest, query_id: int) -> HttpResponse:
    queries = DocumentationQuery.objects.filter(encounter__in=encounters_for_coder(request.user))
    query = get_object_or_404(queries.select_related("encounter"), pk=query_id)
    subject(query, patient_id=query.encounter.patient_id)
    form = VersionForm(request.POST)
    return _save(request, query.encounter_id, form, lambda data: services.close_query(query, actor=request.user, **data), done="Query closed.", form_key="close")


@require_POST
@phi("coding.encounter.finalise", category=Category.CODING, object_type="charting.encounter", id_kwarg="encounter_id")
@role_required(CODER)
def finalise(request: HttpRequest, encounter_id) -> HttpResponse:
    """Lock the final lines; a second submit is harmless."""
    encounter = _encounter_for_coder(request, encounter_id)
    form = VersionForm(request.POST)
    return _save(request, encounter.pk, form, lambda data: services.finalise_encounter(encounter, actor=request.user, **data), done="Encounter finalised.", form_key="finalise")


# --- exports ----------------------------------------------------------------------


@require_GET
@phi("coding.export.form_viewed", category=Category.CODING)
@role_required(CODER)
def export(request: HttpRequest) -> HttpResponse:
    """The export form (the download itself is a POST: it writes the export log)."""
    return render(request, "coding/export.html", {"form": ExportForm(user=request.user)})


@require_POST
@phi("coding.export.downloaded", category=Category.CODING)
@role_required(CODER)
def export_download(request: HttpRequest) -> HttpResponse:
    """Final lines of the coder's clinics (one clinic, or all of theirs) for a
    date range, as a CSV (streamed) or a FHIR R4 Bundle. Logged per export
    and per encounter (AUD-9) before anything is sent."""
    form = ExportForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, "coding/export.html", {"form": form}, status=400)
    data = form.cleaned_data
    clinics = [data["clinic"]] if data["clinic"] else list(form.fields["clinic"].queryset)
    started = exports.start_export(date_from=data["date_from"], date_to=data["date_to"], clinics=clinics, format=data["format"], actor=request.user, source="web")
    name = f"chairside-final-lines-{data['date_from'].isoformat()}-{data['date_to'].isoformat()}"
    if data["format"] == "csv":
        response = StreamingHttpResponse(exports.csv_chunks(started.lines), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    else:
        response = HttpResponse(exports.fhir_json(started.lines, log=started.log), content_type="application/fhir+json")
        response["Content-Disposition"] = f'attachment; filename="{name}.fhir.json"'
    response["Cache-Control"] = "no-store"
    return response


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
