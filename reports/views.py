"""The admin's audit report pages and their exports.

Every view requires the admin role and reads only the admin's clinics: the
clinic filter offers those alone, and naming another clinic is a 404. Each
page writes one audit row; each export writes an ExportLog and an audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.models import Category
from audit.phi import phi
from infusion_site.roles import ADMIN, role_required

from . import exports, plots, reports, services
from .forms import ReportFilterForm
from .models import ExportFormat, ExportLog
from .reports import TABLES, Filters, Table

# The administrations export (COPY) is a table of its own "report".
ADMINISTRATIONS = Table("administrations", "all", "Administrations", exports.ADMINISTRATION_COLUMNS, exports.administration_rows, is_list=True)
EXPORTABLE = {**TABLES, ("administrations", "all"): ADMINISTRATIONS}

REPORTS = (
    ("completeness", "Documentation completeness", "Signed on time, flags opened, resolved and open, by nurse, clinic and kind."),
    ("coding", "Coding", "Code mix over time, units per code, what was documented but not billed, by rule; the coders' override rate and reasons."),
    ("timing", "Timing audit", "Infusion minutes against the 16/31/91/151-minute thresholds; infusions just above one."),
    ("vials", "Vial reconciliation", "Containers opened against units billed and wasted, per drug, NDC and lot."),
    ("access", "Chart access log", "Who opened or changed which patient's records, when and from where."),
)


def _filters(request: HttpRequest, *, access_log: bool = False) -> tuple[ReportFilterForm, Filters | None]:
    form = ReportFilterForm(request.GET, user=request.user, access_log=access_log)
    if form.is_valid():
        return form, form.filters()
    if "clinic" in form.errors:
        raise Http404("No such clinic among yours.")  # another clinic's id is not found, not forbidden
    return form, None


def _page(request: HttpRequest, report: str, build: Callable[[Filters], dict[str, Any]], *, access_log: bool = False, plot=None) -> HttpResponse:
    title = dict((r[0], r[1]) for r in REPORTS)[report]
    if not access_log and connection.vendor != "postgresql":
        # The SQLite demo: say so instead of failing on PostgreSQL's SQL.
        return render(request, "reports/needs_postgresql.html", {"report": report, "reports": REPORTS, "title": title}, status=501)
    form, filters = _filters(request, access_log=access_log)
    context: dict[str, Any] = {"form": form, "report": report, "reports": REPORTS, "title": title}
    if filters is None:
        return render(request, f"reports/{report}.html", context, status=400)
    services.record_view(report, actor=request.user, filters=filters, remote_addr=request.META.get("REMOTE_ADDR"))
    data = build(filters)
    context |= {"data": data, "filters": filters, "tables": {name: t for (r, name), t in EXPORTABLE.items() if r == report}, "query": request.GET.urlencode(), "administrations_table": ADMINISTRATIONS}
    without_patient = request.GET.copy()
    without_patient.pop("patient", None)
    context["query_without_patient"] = without_patient.urlencode()
    if plot is not None:
        context["plot"] = plot(data)
    return render(request, f"reports/{report}.html", context)


@require_GET
@phi("reports.index.viewed", category=Category.SYSTEM)
@role_required(ADMIN)
def index(request: HttpRequest) -> HttpResponse:
    # The export log of the admin's clinics, newest first (2 queries: logs JOIN actor, their clinics).
    recent = ExportLog.objects.visible_to(request.user).select_related("actor").prefetch_related("clinics")[:20]
    return render(request, "reports/index.html", {"reports": REPORTS, "recent": recent})


@require_GET
@phi("reports.completeness.viewed")
@role_required(ADMIN)
def completeness(request: HttpRequest) -> HttpResponse:
    return _page(request, "completeness", reports.completeness, plot=lambda d: plots.signing_bars(d["by_nurse"]) if d["by_nurse"] else "")


@require_GET
@phi("reports.coding.viewed", category=Category.CODING)
@role_required(ADMIN)
def coding(request: HttpRequest) -> HttpResponse:
    return _page(request, "coding", reports.coding, plot=_coding_plots)


def _coding_plots(data: dict[str, Any]) -> dict[str, str]:
    """The code mix, and the overrides per reason when a coder overrode a line."""
    return {
        "code_mix": plots.code_mix_bars(data["code_mix"]) if data["code_mix"] else "",
        "overrides": plots.override_reason_bars(data["overrides"]["by_reason_action"]) if data["overrides"]["by_reason_action"] else "",
    }


@require_GET
@phi("reports.timing.viewed")
@role_required(ADMIN)
def timing(request: HttpRequest) -> HttpResponse:
    return _page(request, "timing", reports.timing, plot=lambda d: plots.minutes_histogram(d["distribution"], d["thresholds"], reports.NEAR_MINUTES))


@require_GET
@phi("reports.vials.viewed")
@role_required(ADMIN)
def vials(request: HttpRequest) -> HttpResponse:
    return _page(request, "vials", reports.vials)


@require_GET
@phi("reports.access.viewed", category=Category.SYSTEM)
@role_required(ADMIN)
def access_log(request: HttpRequest) -> HttpResponse:
    return _page(request, "access", reports.access_log, access_log=True)


@require_GET
@phi("reports.{report}.exported")
@role_required(ADMIN)
def export(request: HttpRequest, report: str, table: str, fmt: str) -> HttpResponse:
    """One report table as CSV (streamed) or XLSX, for the filters in the query
    string; the administrations CSV comes straight from PostgreSQL COPY."""
    spec = EXPORTABLE.get((report, table))
    if spec is None or fmt not in ExportFormat.values:
        raise Http404("No such export.")
    if report != "access" and connection.vendor != "postgresql":
        return HttpResponse("This export is computed by PostgreSQL; the demo runs on SQLite.", status=501, content_type="text/plain")
    form, filters = _filters(request, access_log=report == "access")
    if filters is None:
        return HttpResponse("Invalid filters: " + "; ".join(m for errors in form.errors.values() for m in errors), status=400, content_type="text/plain")
    log = services.start_export(report, table, fmt, actor=request.user, filters=filters, remote_addr=request.META.get("REMOTE_ADDR"))
    filename = f"chairside-{report}-{table}-{filters.date_from}-{filters.date_to}.{fmt}"

    def done(rows: int) -> None:
        services.finish_export(log, row_count=rows)

    if fmt == ExportFormat.CSV:
        if spec is ADMINISTRATIONS:
            chunks = exports.administrations_copy_chunks(filters, done)
        else:
            chunks = exports.csv_chunks(spec.columns, spec.rows(filters), done)
        response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    else:
        file, rows = exports.xlsx_file(spec.title, spec.columns, spec.rows(filters))
        done(rows)
        response = FileResponse(file, as_attachment=True, filename=filename, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Cache-Control"] = "no-store"  # patient data: never kept by a browser or proxy
    return response
