from django.shortcuts import redirect, render

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
