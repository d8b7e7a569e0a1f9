"""Roles (Django groups nurse / coder / admin) scoped to clinics.

Permissions are decided here, in Python, never by hiding links in templates:
htmx can request any fragment directly.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied

NURSE = "nurse"
CODER = "coder"
ADMIN = "admin"


def has_role(user, role: str) -> bool:
    return user.is_authenticated and user.groups.filter(name=role).exists()


def role_required(role: str):
    """View decorator: 403 unless the user is in group `role`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page is for the {role} role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def needs_two_factor(user) -> bool:
    """True when `user` must pass the TOTP step before any page (AC-9).

    Required for the coder and admin roles and for staff (the Django admin);
    a nurse is offered it, and once she has enrolled a device it is required of
    her too (a second factor that can be skipped protects nothing).
    """
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    # One query per request (this runs on every request of an unverified user).
    return get_user_model().objects.filter(pk=user.pk).filter(Q(groups__name__in=[CODER, ADMIN]) | Q(totpdevice__confirmed=True)).exists()
