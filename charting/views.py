"""Nurse pages: the worklist and the encounter chart.

Every view fetches through a QuerySet limited to the user's clinics (another
clinic's record is a 404, not a 403, so ids leak nothing). Writes are POST
only and call one service. htmx requests get the swapped partial of the same
template (`template.html#name`); plain POSTs redirect back to the page, so
the chart works without JavaScript.
"""

import hashlib
import uuid

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from audit.models import Category
from audit.phi import phi
from audit.services import record, subject
from coding.engine.codes import RANK
from coding.engine.thresholds import INITIAL, SEQUENTIAL, TIMED_ROUTES, upcoming_thresholds
from infusion_site.roles import NURSE, role_required

from . import checks, services
from .forms import (
    AccessSiteForm,
    AdministrationForm,
    AmendForm,
    AnswerForm,
    CorrectTimeForm,
    EditAccessSiteForm,
    EditAdministrationForm,
    EmNoteForm,
    EnteredInErrorForm,
    OpenEncounterForm,
    PauseForm,
    SiteCheckForm,
    VialForm,
    WasteForm,
)
from .models import AMEND_FORM_FIELDS, AccessSite, Administration, AmendmentReason, Encounter, OtherService, TapKey
from .services import ChartingError, SignedEncounterError
from .templatetags.taps import FIELD as TAP_KEY_FIELD

PAGE = "charting/encounter.html"


def _fail(form, exc: ChartingError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _errors(form) -> str:
    """A bound form's errors as one sentence, for the page a plain POST goes back to."""
    return " ".join(message for messages_ in form.errors.values() for message in messages_)


def _vary(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
@never_cache
@phi("charting.worklist.viewed")
@role_required(NURSE)
def worklist(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    from coding.models import DocumentationQuery  # the coder's questions live in the coding app

    context = {
        "encounters": Encounter.objects.for_worklist(request.user, now),
        "open_queries": DocumentationQuery.objects.for_nurse_worklist(request.user)[:50],
        "flagged_earlier": Encounter.objects.with_flags_from_earlier_days(request.user, now)[:50],
        "open_form": OpenEncounterForm(user=request.user),
    }
    return render(request, "charting/worklist.html", context)


@require_POST
@phi("charting.encounter.open", category=Category.DEMOGRAPHICS)
@role_required(NURSE)
def open_encounter(request: HttpRequest) -> HttpResponse:
    form = OpenEncounterForm(request.POST, user=request.user)
    if form.is_valid():
        patient = form.cleaned_data["patient"]
        try:
            encounter = services.open_encounter(patient, clinic=patient.clinic, setting=form.cleaned_data["setting"], actor=request.user)
        except ChartingError as exc:
            _fail(form, exc)
        else:
            return redirect("charting:encounter", pk=encounter.pk)
    encounters = Encounter.objects.for_worklist(request.user, timezone.now())
    return render(request, "charting/worklist.html", {"encounters": encounters, "open_form": form}, status=400)


# --- the encounter page ---------------------------------------------------------


def _ready_context(encounter: Encounter, administrations: list, now) -> dict:
    """The "Ready to bill?" panel's context: the same checks as the flag
    sweep, live, as at signing (the items "Sign" would ask about: the digest
    must match). `administrations`: the encounter's, pauses prefetched."""
    issues = checks.check_encounter(encounter, now=now, signing=True)
    blocking = [i for i in issues if i.blocking]
    return {
        "encounter": encounter,
        "patient": encounter.patient,
        "blocking_issues": blocking,
        "advisory_issues": [i for i in issues if not i.blocking],
        "blocking_digest": checks.digest(blocking),
        # sign_encounter refuses while a drug runs, so "Sign anyway" is not offered then.
        "drugs_running": [adm for adm in administrations if adm.state in ("running", "paused") and not adm.is_entered_in_error],
    }


def _chart_context(request, encounter: Encounter, **forms) -> dict:
    """Context of the whole page; `forms` replaces the blank forms (bound, with errors)."""
    now = timezone.now()
    correction_forms = forms.pop("correction_forms", {})
    card_forms = forms.pop("card_forms", {})
    administrations = list(encounter.administrations.all())
    access_sites = list(encounter.access_sites.all())
    # Loaded once for every card's "entered in error" form on a signed chart.
    reasons = list(AmendmentReason.objects.filter(is_active=True)) if encounter.is_signed else None
    for adm in administrations:
        _decorate(adm, now, correction_forms.get(adm.pk), sites=access_sites, siblings=administrations, amendment_reasons=reasons, **card_forms.get(("adm", adm.pk), {}))
    for site in access_sites:
        _decorate_site(site, **card_forms.get(("site", site.pk), {}), clinic=encounter.clinic, now=now)
    from .views_clinical import clinical_context  # vitals, reactions, dosing help (issue #8); it imports this module

    return clinical_context(encounter, administrations, **forms.pop("clinical_forms", {})) | _ready_context(encounter, administrations, now) | {
        "access_sites": access_sites,
        "em_services": _em_services(encounter, **card_forms.get("em", {})),
        "administrations": administrations,
        "site_form": forms.get("site_form") or AccessSiteForm(),
        "administration_form": forms.get("administration_form") or AdministrationForm(encounter=encounter),
        "pause_reasons": PAUSE_REASONS,
        "queries": (queries := _queries(encounter) if encounter.is_signed else []),
        "amendment_reasons": list(AmendmentReason.objects.filter(is_active=True)) if any(q.status == "open" for q in queries) else [],
        "amendable_fields": AMEND_FORM_FIELDS,
        "answer_form": forms.get("answer_form"),
        "answer_query_id": forms.get("answer_query_id"),
    }


def _queries(encounter: Encounter) -> list:
    """The coders' queries about this encounter, open first (one query)."""
    from coding.models import DocumentationQuery

    rows = DocumentationQuery.objects.filter(encounter=encounter).select_related("asked_by", "answered_by", "administration__drug")
    return sorted(rows, key=lambda q: (q.status != "open", q.asked_at))


PAUSE_REASONS = ["Infusion reaction", "Pump alarm", "Patient to restroom", "Line occluded", "Patient request"]


def _decorate(
    adm: Administration,
    now,
    correction_form=None,
    pause_form=None,
    notice: str = "",
    vial_form=None,
    waste_form=None,
    amend_form=None,
    edit_form=None,
    eie_form=None,
    sites=(),
    siblings=(),
    amendment_reasons=None,
) -> Administration:
    """The card's forms: blank ones, or `*_form` bound with what was typed.
    `sites`/`siblings` (the encounter's, loaded once) are the Edit form's
    choices; `amendment_reasons` is given on a signed chart."""
    adm.minutes = adm.minutes_so_far(now)
    _decorate_timer(adm, now, siblings)
    adm.edit_form = edit_form or EditAdministrationForm(administration=adm, sites=sites, siblings=siblings)
    adm.eie_form = eie_form or EnteredInErrorForm(administration=adm, amendment_reasons=amendment_reasons)
    adm.amend_form = amend_form or AmendForm(administration=adm)
    adm.correction_form = correction_form or CorrectTimeForm(administration=adm)
    adm.pause_form = pause_form or PauseForm()
    adm.vial_form = vial_form or VialForm(administration=adm)
    adm.waste_form = waste_form or WasteForm(administration=adm)
    adm.notice = notice
    return adm


def _ms(value) -> int | str:
    """An aware datetime as epoch milliseconds (what chart.js reads), "" for None."""
    return int(value.timestamp() * 1000) if value is not None else ""


def _assumed_position(adm: Administration, siblings) -> str:
    """INITIAL or SEQUENTIAL for the threshold hint, from the facility
    hierarchy (R6, coding.engine.codes.RANK) over the encounter's charted IV
    drugs of the same visit: a drug outranked by another one (chemo over
    therapeutic over hydration) will not be the initial service; otherwise it
    may be (the coding decides, R4-R8), and the card says "if initial"."""
    mine = RANK.get((adm.admin_class, "infusion"))
    others = [
        RANK.get((s.admin_class, "infusion"))
        for s in siblings
        if s.pk != adm.pk and s.visit == adm.visit and s.route in TIMED_ROUTES and not s.is_entered_in_error
    ]
    best = min((r for r in others if r is not None), default=None)
    return SEQUENTIAL if mine is not None and best is not None and best < mine else INITIAL


def _decorate_timer(adm: Administration, now, siblings=()) -> None:
    """What the card's live timer and "Undo" read (data-* attributes for
    static/js/chart.js; the server's times are the truth, the script only
    counts on from them). From the prefetched pauses: no query.

    `next_thresholds`: the coming billing boundaries of this drug
    (coding.engine.thresholds, R18-R22) as the initial or a sequential
    service (`threshold_position`, see `_assumed_position`);
    `undo_event`: the last tap when it is still inside CHAIRSIDE_UNDO_SECONDS."""
    pauses = list(adm.pauses.all())
    end = adm.stopped_at or now
    adm.timer_server_now = _ms(now)
    adm.timer_started = _ms(adm.started_at)
    adm.timer_stopped = _ms(adm.stopped_at)
    adm.timer_paused_ms = int(sum(((p.resumed_at - p.paused_at).total_seconds() for p in pauses if p.resumed_at is not None), 0.0) * 1000)
    open_pause = next((p for p in pauses if p.resumed_at is None), None)
    adm.timer_paused_since = _ms(open_pause.paused_at if open_pause and adm.stopped_at is None else None)
    if adm.stopped_at is not None and open_pause is not None:  # an open pause runs to the stop (R17)
        adm.timer_paused_ms += int((end - open_pause.paused_at).total_seconds() * 1000)
    adm.threshold_position = _assumed_position(adm, siblings)
    running = adm.stopped_at is None and not adm.is_entered_in_error
    upcoming = upcoming_thresholds(adm.admin_class, adm.route, adm.minutes or 0, position=adm.threshold_position, count=8) if running else []
    adm.next_thresholds = " ".join(f"{t.code}:{t.minute}" for t in upcoming)
    adm.next_threshold = upcoming[0] if upcoming else None
    if adm.next_threshold is not None:
        adm.next_threshold_to_go = adm.next_threshold.minute - (adm.minutes or 0)
    adm.undo_event = adm.undo_until = ""
    last = adm.last_event()
    window = settings.CHAIRSIDE_UNDO_SECONDS
    if last is not None and not adm.is_entered_in_error and (now - last[1]).total_seconds() <= window:
        adm.undo_event = last[0]
        adm.undo_until = int(last[1].timestamp() * 1000) + window * 1000


def _card_choices(encounter: Encounter) -> dict:
    """What one drug card's forms choose from, for a card rendered on its own
    (two queries on a draft: the sites, the drugs; one on a signed chart)."""
    if encounter.is_signed:
        return {"amendment_reasons": list(AmendmentReason.objects.filter(is_active=True))}
    return {
        "sites": list(AccessSite.objects.filter(encounter=encounter)),
        "siblings": list(Administration.objects.filter(encounter=encounter).select_related("drug")),
    }


def _decorate_site(site: AccessSite, edit_form=None, notice: str = "", check_form=None, *, clinic=None, now=None) -> AccessSite:
    """The site card's forms, and its check line: "checked N min ago" and
    "check due" when the last check (else the placement) is older than the
    clinic's `site_check_minutes` (reads the site's prefetched checks)."""
    site.edit_form = edit_form or EditAccessSiteForm(site=site)
    site.check_form = check_form or SiteCheckForm()
    site.notice = notice
    now = now or timezone.now()
    every = (clinic or site.encounter.clinic).site_check_minutes
    site.check_every = every
    site.last_checked = site.last_check
    reference = site.last_checked_or_placed
    site.checked_ago = max(0, int((now - reference).total_seconds() // 60))
    site.check_reference = _ms(reference)
    site.check_due_now = site.check_due(now, every)
    site.server_now = _ms(now)
    return site


def _em_services(encounter: Encounter, form=None, service_pk=None, notice: str = "") -> list:
    """The encounter's E/M visits with their note forms (from the prefetched
    `other_services`). The first one without the note is the one the check
    names: its inputs get the ids the fix link points at ("em-note")."""
    services_ = sorted((s for s in encounter.other_services.all() if s.kind == OtherService.Kind.EM_VISIT), key=lambda s: s.pk)
    first = next((s.pk for s in services_ if not s.significant_separately_identifiable), None)
    for svc in services_:
        bound = form if svc.pk == service_pk else None
        svc.em_form = bound or EmNoteForm(service=svc, first=svc.pk == first)
        svc.notice = notice if svc.pk == service_pk else ""
    return services_


def _encounter_for(request, pk) -> Encounter:
    encounter = get_object_or_404(Encounter.objects.visible_to(request.user).for_chart().with_site_checks(), pk=pk)
    subject(encounter, patient_id=encounter.patient_id)
    return encounter


def _render_page(request, encounter: Encounter, status: int = 200, **forms) -> HttpResponse:
    with timezone.override(encounter.clinic.tz):
        return _vary(render(request, PAGE, _chart_context(request, encounter, **forms), status=status))


@require_GET
@never_cache
@phi("charting.encounter.viewed", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def encounter(request: HttpRequest, pk) -> HttpResponse:
    enc = _encounter_for(request, pk)
    # Every read of a chart is an access-log row (DESIGN §8).
    record("charting.encounter.viewed", actor=request.user, obj=enc, patient_id=enc.patient_id)
    return _render_page(request, enc)


@require_GET
@never_cache
@phi("charting.encounter.ready_panel_refreshed", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def ready_panel(request: HttpRequest, pk) -> HttpResponse:
    """`GET …/ready/`: the "Ready to bill?" panel alone, which the encounter
    page re-fetches after every change (htmx, `chart-changed`). It used to GET
    the whole page: twice the server's work per tap (the page is ~170 ms of
    CPU, the panel a fraction), and every tap logged as the nurse viewing the
    chart again. Still a PHI read with its own audit row, under its own
    action, so the access log tells views from refreshes."""
    enc = _encounter_for(request, pk)
    with timezone.override(enc.clinic.tz):
        return _vary(render(request, "charting/_ready_to_bill.html", _ready_context(enc, list(enc.administrations.all()), timezone.now())))


# --- idempotent taps (RELIABILITY CON-2) -----------------------------------------


class KeyReused(ChartingError):
    """The idempotency key was used for another action or by another user."""


def _tap_key(request) -> uuid.UUID | None:
    """The request's idempotency key: the form's hidden field, else the
    Idempotency-Key header (chart.js sends both); None without one (an old page:
    the write then runs without the replay protection)."""
    raw = request.POST.get(TAP_KEY_FIELD) or request.headers.get("Idempotency-Key", "")
    try:
        return uuid.UUID(raw.strip()) if raw else None
    except (ValueError, AttributeError):
        return None


def _once(request, action: str, write) -> tuple[str, bool]:
    """Run `write()` (which returns the id of the record it wrote) at most once
    per idempotency key: (that id, False) the first time; (the stored id,
    True) for a retry of the same tap, which writes nothing.

    The key row is inserted first, in the write's transaction: a second
    request with the same key waits on the unique index until the first
    commits, then finds its row and replays; if the first failed (a
    ChartingError rolls it back) the key is free and the retry runs.
    Raises KeyReused for a key another user, another action or another
    record used: the key is stored with the action and a short digest of the
    record the tap names (the URL's id and a POSTed site), so a key sent again
    for another drug is refused with a message, never taken for a replay."""
    key = _tap_key(request)
    if key is None:
        return str(write()), False
    kwargs = request.resolver_match.kwargs if request.resolver_match else {}
    target = f"{kwargs.get('pk', '')}/{request.POST.get('site', '')}"
    action = f"{action}@{hashlib.sha256(target.encode()).hexdigest()[:16]}"
    with transaction.atomic():
        try:
            with transaction.atomic():
                TapKey.objects.create(key=key, user=request.user, action=action)
        except IntegrityError:
            done = TapKey.objects.get(key=key)
            if done.user_id != request.user.pk or done.action != action:
                raise KeyReused("This form was already used for something else: reload the page and tap again.") from None
            return done.object_id, True
        object_id = str(write())
        TapKey.objects.filter(key=key).update(object_id=object_id)
    return object_id, False


def _after_write(request, encounter: Encounter) -> HttpResponse:
    url = reverse("charting:encounter", kwargs={"pk": encounter.pk})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _refused(request, encounter: Encounter, exc: ChartingError) -> HttpResponse:
    """A refusal about the record, not about what was typed (e.g. the encounter
    was signed in the meantime): the forms are no longer shown, so the message
    goes on the reloaded page."""
    if isinstance(exc, SignedEncounterError):
        return _signed_conflict(request, encounter.pk, exc)
    messages.error(request, exc.message)
    return _after_write(request, encounter)


def _signed_conflict(request, encounter_pk, exc: SignedEncounterError) -> HttpResponse:
    """409 Conflict for a change to a signed encounter (REC-1): the message says
    to amend. A plain POST gets the chart with the message; htmx is sent to
    the chart (HX-Redirect), which shows it."""
    messages.error(request, exc.message)
    url = reverse("charting:encounter", kwargs={"pk": encounter_pk})
    if request.htmx:
        response = HttpResponse(exc.message, status=409, content_type="text/plain; charset=utf-8")
        response["HX-Redirect"] = url
        return _vary(response)
    return _render_page(request, _encounter_for(request, encounter_pk), status=409)


def _refuse_if_signed(request, adm: Administration) -> HttpResponse | None:
    """The 409 "amend instead" for a drug card's form posted to a SIGNED
    encounter, before the form is read: a form that does not validate must
    not hide the refusal (the signed card shows no such form to put errors
    on). None on a draft (no query: the encounter is loaded)."""
    if not adm.encounter.is_signed:
        return None
    encounter = Encounter.objects.select_related("clinic").get(pk=adm.encounter_id)
    return _signed_conflict(request, adm.encounter_id, services.signed_encounter_error(encounter))


@require_POST
@phi("charting.access_site.add", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def add_access_site(request: HttpRequest, pk) -> HttpResponse:
    enc = _encounter_for(request, pk)
    with timezone.override(enc.clinic.tz):
        form = AccessSiteForm(request.POST)
        if form.is_valid():
            try:
                _once(request, "add_access_site", lambda: services.add_access_site(enc, **{k: form.cleaned_data[k] for k in AccessSiteForm.Meta.fields}, actor=request.user).pk)
                return _after_write(request, enc)
            except ChartingError as exc:
                if exc.field not in form.fields:
                    return _refused(request, enc, exc)
                _fail(form, exc)
        if request.htmx:
            return _vary(render(request, f"{PAGE}#site-form", {"encounter": enc, "site_form": form}))
    return _render_page(request, enc, status=400, site_form=form)


@require_POST
@phi("charting.administration.add", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def add_administration(request: HttpRequest, pk) -> HttpResponse:
    enc = _encounter_for(request, pk)
    form = AdministrationForm(request.POST, encounter=enc)
    if form.is_valid():
        try:
            _once(request, "add_administration", lambda: services.add_administration(enc, **form.cleaned_data | {"admin_class": form.cleaned_data["admin_class"] or None}, actor=request.user).pk)
            return _after_write(request, enc)
        except ChartingError as exc:
            if exc.field not in form.fields:
                return _refused(request, enc, exc)
            _fail(form, exc)
    if request.htmx:
        return _vary(render(request, f"{PAGE}#administration-form", {"encounter": enc, "administration_form": form}))
    return _render_page(request, enc, status=400, administration_form=form)


# --- one administration: start / pause / resume / stop / correct -----------------


def _administration_response(request, adm_pk, *, status=200, error: str = "", notice: str = "", allow_undo: bool = True, **forms) -> HttpResponse:
    """The administration's partial (htmx) or a redirect to the page (plain POST)."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif notice:
            messages.info(request, notice)
        return redirect(reverse("charting:encounter", kwargs={"pk": request.encounter_pk}) + f"#adm-{adm_pk}")
    adm = Administration.objects.for_chart().get(pk=adm_pk)
    choices = _card_choices(adm.encounter)
    with timezone.override(adm.encounter.clinic.tz):
        _decorate(adm, timezone.now(), notice=notice, **choices, **forms)
        adm.error = error
        if not allow_undo:  # right after an undo: no "Undo" of the tap before it under the same finger
            adm.undo_event = ""
        response = _vary(render(request, f"{PAGE}#administration", {"adm": adm, "encounter": adm.encounter}, status=status))
    # The drug card changed: the "ready to bill" panel listens for this event
    # and reloads itself, so it never shows a stale answer.
    response["HX-Trigger"] = "chart-changed"
    return response


def _administration_for(request, pk) -> Administration:
    adm = get_object_or_404(Administration.objects.visible_to(request.user).select_related("drug", "encounter"), pk=pk)
    request.encounter_pk = adm.encounter_id
    subject(adm, patient_id=adm.encounter.patient_id)
    return adm


ACTIONS = {
    "start": services.start_administration,
    "resume": services.resume_administration,
    "stop": services.stop_administration,
}


@require_POST
@phi("charting.administration.{action}", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def administration_action(request: HttpRequest, pk, action: str) -> HttpResponse:
    """Start, resume or stop: one tap, server time."""
    adm = _administration_for(request, pk)
    written = {}

    def write():
        written["adm"] = ACTIONS[action](adm, actor=request.user)
        return adm.pk

    try:
        _, replayed = _once(request, action, write)
    except SignedEncounterError as exc:
        return _signed_conflict(request, adm.encounter_id, exc)
    except ChartingError as exc:
        return _administration_response(request, adm.pk, error=exc.message)
    return _administration_response(request, adm.pk, notice="" if replayed else written["adm"].notice)


@require_POST
@phi("charting.administration.undo", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def undo_administration(request: HttpRequest, pk) -> HttpResponse:
    """The card's "Undo" after a Start / Pause / Resume / Stop tap (POST
    `event`): within CHAIRSIDE_UNDO_SECONDS of the tap by the server's clock
    the tap is reverted (audited); later it is refused with a message that
    points at "Correct a time", which keeps the original."""
    adm = _administration_for(request, pk)
    event = request.POST.get("event", "")
    try:
        _, replayed = _once(request, "undo", lambda: services.undo_event(adm, event=event, actor=request.user).pk)
    except SignedEncounterError as exc:
        return _signed_conflict(request, adm.encounter_id, exc)
    except ChartingError as exc:
        return _administration_response(request, adm.pk, error=exc.message)
    return _administration_response(request, adm.pk, notice="" if replayed else f"{event.capitalize()} undone.", allow_undo=False)


@require_POST
@phi("charting.administration.pause", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def pause_administration(request: HttpRequest, pk) -> HttpResponse:
    adm = _administration_for(request, pk)
    if refused := _refuse_if_signed(request, adm):
        return refused
    form = PauseForm(request.POST)
    if form.is_valid():
        try:
            _once(request, "pause", lambda: services.pause_administration(adm, reason=form.cleaned_data["reason"], actor=request.user).pk)
            return _administration_response(request, adm.pk)
        except SignedEncounterError as exc:
            return _signed_conflict(request, adm.encounter_id, exc)
        except ChartingError as exc:
            _fail(form, exc)
    return _administration_response(request, adm.pk, error=" ".join(form.errors.get("reason", []) + form.non_field_errors()) or "Say why the drug is paused.", pause_form=form)


@require_POST
@phi("charting.administration.correct_time", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def correct_time(request: HttpRequest, pk) -> HttpResponse:
    adm = get_object_or_404(Administration.objects.visible_to(request.user).for_chart(), pk=pk)
    request.encounter_pk = adm.encounter_id
    subject(adm, patient_id=adm.encounter.patient_id)
    if refused := _refuse_if_signed(request, adm):
        return refused
    with timezone.override(adm.encounter.clinic.tz):
        form = CorrectTimeForm(request.POST, administration=adm)
        if form.is_valid():
            field, pause = form.cleaned_target()
            try:
                services.correct_time(adm, field=field, new_value=form.cleaned_data["new_value"], pause=pause, reason=form.cleaned_data["reason"], actor=request.user)
                return _administration_response(request, adm.pk, notice="Time corrected; the original is kept below.")
            except SignedEncounterError as exc:
                return _signed_conflict(request, adm.encounter_id, exc)
            except ChartingError as exc:
                if exc.field not in form.fields:
                    # The correction form is not shown on a signed encounter: say it on the drug.
                    return _administration_response(request, adm.pk, error=exc.message)
                _fail(form, exc)
    if request.htmx:
        return _administration_response(request, adm.pk, correction_form=form)
    enc = _encounter_for(request, adm.encounter_id)
    return _render_page(request, enc, status=400, correction_forms={adm.pk: form})


def _drug_card_form(request, pk, form_class, write, done: str, form_key: str) -> HttpResponse:
    """Bind one of the drug card's forms, call its service, answer with the card.

    `write(adm, cleaned_data)` calls the service; a ChartingError about a field
    goes on that field (nothing typed is lost), any other on the card. On a
    signed encounter: 409 "amend instead", whatever was posted."""
    adm = _administration_for(request, pk)
    if refused := _refuse_if_signed(request, adm):
        return refused
    form = form_class(request.POST, administration=adm)
    if form.is_valid():
        try:
            adm = write(adm, form.cleaned_data)
            return _administration_response(request, adm.pk, notice=adm.notice or done)
        except SignedEncounterError as exc:
            return _signed_conflict(request, adm.encounter_id, exc)
        except ChartingError as exc:
            if exc.field not in form.fields:
                return _administration_response(request, adm.pk, error=exc.message)
            _fail(form, exc)
    return _administration_response(request, adm.pk, error="" if request.htmx else _errors(form), **{form_key: form})


@require_POST
@phi("charting.administration.record_vials", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def record_vials(request: HttpRequest, pk) -> HttpResponse:
    """The drug card's Vials form: containers opened (NDC, lot, size, count)."""
    return _drug_card_form(
        request, pk, VialForm, lambda adm, data: services.record_vials(adm, **data, actor=request.user), "Vials charted.", "vial_form"
    )


@require_POST
@phi("charting.administration.confirm_waste", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def confirm_waste(request: HttpRequest, pk) -> HttpResponse:
    """The drug card's Waste form: "none wasted" or the amount discarded."""
    return _drug_card_form(
        request,
        pk,
        WasteForm,
        lambda adm, data: services.confirm_waste(adm, wasted_value=data["wasted_value"], wasted_unit=data["wasted_unit"], actor=request.user),
        "Waste confirmed.",
        "waste_form",
    )


@require_POST
@phi("charting.administration.remove_vials", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def remove_vials(request: HttpRequest, pk) -> HttpResponse:
    """A vial row's "entered in error" button (REC-4: struck, never deleted);
    POST `vial` = the row's id, `reason` (optional, default "Charted by mistake")."""
    adm = _administration_for(request, pk)
    vial_id = request.POST.get("vial", "")
    try:
        adm = services.remove_vials(adm, vial_id=int(vial_id) if vial_id.isdigit() else None, actor=request.user, reason=request.POST.get("reason", ""))
    except SignedEncounterError as exc:
        return _signed_conflict(request, adm.encounter_id, exc)
    except ChartingError as exc:
        return _administration_response(request, adm.pk, error=exc.message)
    return _administration_response(request, adm.pk, notice=adm.notice)


@require_POST
@phi("charting.encounter.sign", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def sign_encounter(request: HttpRequest, pk) -> HttpResponse:
    enc = _encounter_for(request, pk)
    try:
        enc = services.sign_encounter(enc, actor=request.user, confirmed=request.POST.get("confirmed", ""))
    except services.NeedsConfirmation as exc:
        # The panel lists the items and offers "Sign anyway" for exactly these.
        messages.warning(request, exc.message)
    except ChartingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, enc.notice or "Encounter signed. It goes to the coders' queue.")
    return _after_write(request, enc)


# --- signed documentation: amendments and the coders' queries -----------------------


@require_POST
@phi("charting.administration.amend", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def amend_administration(request: HttpRequest, pk) -> HttpResponse:
    """The drug card's Amend form on a signed encounter: one field, a reason
    from the list; the original is kept and shown marked "amended"."""
    adm = _administration_for(request, pk)
    form = AmendForm(request.POST, administration=adm)
    if form.is_valid():
        data = form.cleaned_data
        try:
            # A typed time is read in the clinic's zone by the service.
            services.amend_administration(adm, field=data["field"], new_value=data["new_value"], reason=data["reason"], reason_text=data["reason_text"], actor=request.user)
            return _administration_response(request, adm.pk, notice="Amended; the original value is kept below. The encounter goes back to coding.")
        except ChartingError as exc:
            if exc.field not in form.fields:
                return _administration_response(request, adm.pk, error=exc.message, status=200 if request.htmx else 400)
            _fail(form, exc)
    return _administration_response(request, adm.pk, error="" if request.htmx else _errors(form), amend_form=form)


@require_POST
@phi("charting.query.answer", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def answer_query(request: HttpRequest, pk) -> HttpResponse:
    """Answer a coder's query about this encounter (its id posted as `answer-query`),
    optionally amending one administration in the same transaction."""
    from coding import services as coding_services
    from coding.models import DocumentationQuery

    enc = _encounter_for(request, pk)
    form = AnswerForm(request.POST, encounter=enc)
    query_id = request.POST.get("answer-query", "")
    query = DocumentationQuery.objects.filter(encounter=enc, pk=int(query_id)).first() if query_id.isdigit() and len(query_id) < 18 else None
    if query is None:
        messages.error(request, "This query is not one of this encounter's: reload the page.")
        return _after_write(request, enc)
    if form.is_valid():
        try:
            coding_services.answer_query(query, answer=form.cleaned_data["answer"], actor=request.user, amendment=form.amendment())
        except (ChartingError, coding_services.CodingError) as exc:
            field = exc.field if exc.field in form.fields else None
            if field is None:
                messages.error(request, str(getattr(exc, "message", exc)))
                return _after_write(request, enc)
            form.add_error(field, str(getattr(exc, "message", exc)))
        else:
            messages.success(request, "Answer sent to the coder." + (" The amendment is recorded and the encounter is re-coded." if form.amendment() else ""))
            return _after_write(request, enc)
    # htmx swaps the queries section out of the page (it does not swap a 400).
    return _render_page(request, enc, status=200 if request.htmx else 400, answer_form=form, answer_query_id=query.pk)


# --- fixing a draft: what the flags point at (issue #5) ------------------------------
#
# Draft charts only: on a signed one each of these answers 409 "amend instead"
# before reading the form (the services refuse too). A bad value re-renders
# the form with what was typed: htmx gets the partial (200), a plain POST
# the page (400). After a fix the partial carries HX-Trigger "chart-changed",
# so the "ready to bill" panel reloads; the services have refreshed the
# encounter's flags already.


def _card_invalid(request, adm: Administration, **forms) -> HttpResponse:
    if request.htmx:
        return _administration_response(request, adm.pk, **forms)
    enc = _encounter_for(request, adm.encounter_id)
    return _render_page(request, enc, status=400, card_forms={("adm", adm.pk): forms})


@require_POST
@phi("charting.administration.edit", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def edit_administration(request: HttpRequest, pk) -> HttpResponse:
    """The drug card's Edit form: dose, unit, purpose, route, site, concurrent with / bag."""
    adm = _administration_for(request, pk)
    if refused := _refuse_if_signed(request, adm):
        return refused
    form = EditAdministrationForm(request.POST, administration=adm, **_card_choices(adm.encounter))
    if form.is_valid():
        try:
            adm = services.edit_administration(adm, **form.cleaned_data, actor=request.user)
            return _administration_response(request, adm.pk, notice=adm.notice)
        except SignedEncounterError as exc:
            return _signed_conflict(request, adm.encounter_id, exc)
        except ChartingError as exc:
            if exc.field not in form.fields:
                return _administration_response(request, adm.pk, error=exc.message)
            _fail(form, exc)
    return _card_invalid(request, adm, edit_form=form)


@require_POST
@phi("charting.administration.entered_in_error", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def enter_in_error(request: HttpRequest, pk) -> HttpResponse:
    """Strike a drug charted by mistake (REC-4): `reason`; on a signed
    encounter also `amendment_reason` (an amendment, the original kept)."""
    adm = _administration_for(request, pk)
    reasons = list(AmendmentReason.objects.filter(is_active=True)) if adm.encounter.is_signed else None
    form = EnteredInErrorForm(request.POST, administration=adm, amendment_reasons=reasons)
    if form.is_valid():
        try:
            adm = services.enter_administration_in_error(adm, reason=form.cleaned_data["reason"], amendment_reason=form.cleaned_data.get("amendment_reason"), actor=request.user)
            return _administration_response(request, adm.pk, notice=adm.notice)
        except ChartingError as exc:
            if exc.field not in form.fields:
                return _administration_response(request, adm.pk, error=exc.message)
            _fail(form, exc)
    return _card_invalid(request, adm, eie_form=form)


def _posted_id(request, name: str) -> int | None:
    value = request.POST.get(name, "")
    return int(value) if value.isdigit() and len(value) < 18 else None


def _not_in_encounter(request, encounter_pk, what: str) -> HttpResponse:
    """A posted id that is not one of this (visible) encounter's records: the
    page is stale; say so on the reloaded chart."""
    messages.error(request, f"This {what} is not one of this encounter's: reload the page.")
    url = reverse("charting:encounter", kwargs={"pk": encounter_pk})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _partial(request, name: str, context: dict, encounter: Encounter, anchor: str) -> HttpResponse:
    """htmx: the partial `name`, announcing the change to the ready panel;
    plain POST: back to the page at `anchor`."""
    if not request.htmx:
        return redirect(reverse("charting:encounter", kwargs={"pk": encounter.pk}) + f"#{anchor}")
    with timezone.override(encounter.clinic.tz):
        response = _vary(render(request, f"{PAGE}#{name}", {"encounter": encounter, **context}))
    response["HX-Trigger"] = "chart-changed"
    return response


@require_POST
@phi("charting.access_site.edit", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def edit_access_site(request: HttpRequest, pk) -> HttpResponse:
    """An access site's Edit form (POST `site` = its id): separate site
    medically required, and why (R10)."""
    encounter = get_object_or_404(Encounter.objects.visible_to(request.user).select_related("clinic"), pk=pk)
    subject(encounter, patient_id=encounter.patient_id)
    site = AccessSite.objects.filter(encounter=encounter, pk=_posted_id(request, "site")).first()
    if site is None:
        return _not_in_encounter(request, encounter.pk, "access site")
    site.encounter = encounter
    if encounter.is_signed:
        return _signed_conflict(request, encounter.pk, services.signed_encounter_error(encounter))
    form = EditAccessSiteForm(request.POST, site=site)
    if form.is_valid():
        try:
            site = services.edit_access_site(site, **form.cleaned_data, actor=request.user)
            return _partial(request, "site", {"site": _decorate_site(site, notice=site.notice)}, encounter, f"site-{site.pk}")
        except SignedEncounterError as exc:
            return _signed_conflict(request, encounter.pk, exc)
        except ChartingError as exc:
            _fail(form, exc)
    if request.htmx:
        return _vary(render(request, f"{PAGE}#site", {"encounter": encounter, "site": _decorate_site(site, edit_form=form)}))
    return _render_page(request, _encounter_for(request, encounter.pk), status=400, card_forms={("site", site.pk): {"edit_form": form}})


@require_POST
@phi("charting.other_service.em_note", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def document_em_service(request: HttpRequest, pk) -> HttpResponse:
    """An E/M visit's note of significant, separately identifiable work (R40);
    POST `service` = the E/M visit's id."""
    # The section reads only the encounter's services (not the whole chart).
    with_services = Encounter.objects.visible_to(request.user).select_related("clinic").prefetch_related("other_services")
    enc = get_object_or_404(with_services, pk=pk)
    subject(enc, patient_id=enc.patient_id)
    service = next((s for s in enc.other_services.all() if s.pk == _posted_id(request, "service") and s.kind == OtherService.Kind.EM_VISIT), None)
    if service is None:
        return _not_in_encounter(request, enc.pk, "E/M visit")
    if enc.is_signed:
        return _signed_conflict(request, enc.pk, services.signed_encounter_error(enc))
    form = EmNoteForm(request.POST, service=service)
    if form.is_valid():
        try:
            service = services.document_em_service(service, **form.cleaned_data, actor=request.user)
            enc = with_services.get(pk=enc.pk)
            return _partial(request, "em-services", {"em_services": _em_services(enc, service_pk=service.pk, notice=service.notice)}, enc, "em-services")
        except SignedEncounterError as exc:
            return _signed_conflict(request, enc.pk, exc)
        except ChartingError as exc:
            _fail(form, exc)
    if request.htmx:
        return _vary(render(request, f"{PAGE}#em-services", {"encounter": enc, "em_services": _em_services(enc, form=form, service_pk=service.pk)}))
    return _render_page(request, _encounter_for(request, enc.pk), status=400, card_forms={"em": {"form": form, "service_pk": service.pk}})


@require_POST
@phi("charting.access_site.check", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def check_access_site(request: HttpRequest, pk) -> HttpResponse:
    """An access site's check (POST `site` = its id, `finding`, `note`):
    stamped with the server's time; the site card shows "checked N min ago"."""
    encounter = get_object_or_404(Encounter.objects.visible_to(request.user).select_related("clinic"), pk=pk)
    subject(encounter, patient_id=encounter.patient_id)
    site = AccessSite.objects.filter(encounter=encounter, pk=_posted_id(request, "site")).first()
    if site is None:
        return _not_in_encounter(request, encounter.pk, "access site")
    site.encounter = encounter
    if encounter.is_signed:
        return _signed_conflict(request, encounter.pk, services.signed_encounter_error(encounter))
    form = SiteCheckForm(request.POST)
    if form.is_valid():
        try:
            _once(request, "check_access_site", lambda: services.record_site_check(site, **form.cleaned_data, actor=request.user).pk)
            return _partial(request, "site", {"site": _decorate_site(site, notice=f"Site {site.label} checked.")}, encounter, f"site-{site.pk}")
        except SignedEncounterError as exc:
            return _signed_conflict(request, encounter.pk, exc)
        except ChartingError as exc:
            _fail(form, exc)
    if request.htmx:
        return _vary(render(request, f"{PAGE}#site", {"encounter": encounter, "site": _decorate_site(site, check_form=form)}))
    return _render_page(request, _encounter_for(request, encounter.pk), status=400, card_forms={("site", site.pk): {"check_form": form}})
