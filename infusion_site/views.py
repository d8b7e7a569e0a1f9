from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from .roles import ADMIN, CODER, NURSE, has_role


def home(request):
    """Send each person to their own start page."""
    if has_role(request.user, NURSE):
        return redirect("charting:worklist")
    if has_role(request.user, CODER):
        return redirect("coding:queue")
    if has_role(request.user, ADMIN) or request.user.is_staff:
        return redirect("admin:index")
    return render(request, "no_role.html", status=403)


@login_not_required
@require_GET
def healthz(request):
    """`GET /healthz/` -> 200 "ok": the load balancer's probe (no database, no
    session), and the bare view the request benchmarks divide by
    (benchmarks/http_bench.py)."""
    return HttpResponse("ok", content_type="text/plain")


@login_not_required
@require_GET
def favicon(request):
    """`GET /favicon.ico` -> a permanent redirect to the icon among the static
    files (browsers ask for this path on pages that name no icon, such as
    the admin's; it was a 404 in every log)."""
    from django.templatetags.static import static

    return redirect(static("img/favicon.svg"), permanent=True)


def server_error(request):
    """The 500 page (PHI-3): a generic message and the request's correlation
    id, nothing else (no traceback, SQL, settings or patient data). Rendered
    without context processors or the database, which may be what failed."""
    from django.http import HttpResponseServerError
    from django.template import loader

    return HttpResponseServerError(loader.get_template("500.html").render({"request_id": getattr(request, "request_id", "")}))
