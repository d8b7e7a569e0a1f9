"""Audit rows for authentication (RELIABILITY AUD-3) and privilege changes (AUD-7).

Authentication, from Django's auth signals:
    auth.login.succeeded, auth.login.failed (the username as typed, never the
    password: Django's credentials dict is not copied), auth.logout.
Lockout and MFA failures are written by their own code with
`record("auth....", outcome=Outcome.FAILURE/DENIED, category=Category.AUTHENTICATION)`.

Privileges, from model and m2m signals (so the admin, the shell and
commands are all covered):
    privileges.user.created, privileges.user.changed (is_active / is_staff /
    is_superuser, old and new), privileges.user.groups_added / _removed,
    privileges.user.permissions_granted / _revoked,
    privileges.group.created, privileges.group.permissions_granted / _revoked,
    privileges.clinic.staff_added / _removed.
The actor is the signed-in user of the current request (None from a command).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.dispatch import receiver

from . import context
from .models import Category, Outcome
from .services import record

User = get_user_model()

WATCHED_USER_FIELDS = ("is_active", "is_staff", "is_superuser")


def _actor():
    info = context.current_request()
    return info.user if info is not None else None


# --- AUD-3 -------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="audit.login_succeeded")
def _login_succeeded(sender, request, user, **kwargs):
    record("auth.login.succeeded", actor=user, obj=user, category=Category.AUTHENTICATION)


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")[:150]
    record("auth.login.failed", actor=None, username=username, outcome=Outcome.FAILURE, category=Category.AUTHENTICATION)


@receiver(user_logged_out, dispatch_uid="audit.logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        record("auth.logout", actor=user, obj=user, category=Category.AUTHENTICATION)


# --- AUD-7 -------------------------------------------------------------------


@receiver(pre_save, sender=User, dispatch_uid="audit.user_pre_save")
def _remember_user_flags(sender, instance, update_fields=None, **kwargs):
    # A log-in saves last_login only: no query for that.
    if instance.pk is None or (update_fields is not None and not set(update_fields) & set(WATCHED_USER_FIELDS)):
        instance._audit_flags = None
        return
    instance._audit_flags = sender.objects.filter(pk=instance.pk).values(*WATCHED_USER_FIELDS).first()


@receiver(post_save, sender=User, dispatch_uid="audit.user_post_save")
def _user_saved(sender, instance, created, **kwargs):
    if created:
        record("privileges.user.created", actor=_actor(), obj=instance, detail={"username": instance.get_username(), **{f: getattr(instance, f) for f in WATCHED_USER_FIELDS}})
        return
    before = getattr(instance, "_audit_flags", None)
    if before:
        changes = {f: [before[f], getattr(instance, f)] for f in WATCHED_USER_FIELDS if before[f] != getattr(instance, f)}
        if changes:
            record("privileges.user.changed", actor=_actor(), obj=instance, detail={"username": instance.get_username(), "changes": changes})


@receiver(post_save, sender=Group, dispatch_uid="audit.group_created")
def _group_saved(sender, instance, created, **kwargs):
    if created:
        record("privileges.group.created", actor=_actor(), obj=instance, detail={"group": instance.name})


def _names(model, pks) -> list[str]:
    if model is Permission:
        return sorted(f"{app}.{code}" for app, code in Permission.objects.filter(pk__in=pks).values_list("content_type__app_label", "codename"))
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    return sorted(model.objects.filter(pk__in=pks).values_list(User.USERNAME_FIELD, flat=True))


def _m2m(noun: str, added: str, removed: str):
    """A receiver auditing one m2m relation: `noun` names the row's owner kind
    (user, group, clinic); one audit row per owner per change."""

    def receiver_(sender, instance, action, reverse, model, pk_set, **kwargs):
        if action == "pre_clear":
            # clear() sends no pk_set: remember what is about to go.
            instance._audit_cleared = _related_pks(sender, instance)
            return
        if action == "post_clear":
            pk_set = set(getattr(instance, "_audit_cleared", ()) or ())
        elif action not in ("post_add", "post_remove"):
            return
        if not pk_set:
            return
        verb = added if action in ("post_add",) else removed
        if not reverse:
            record(f"privileges.{noun}.{verb}", actor=_actor(), obj=instance, detail={"members": _names(model, pk_set), "of": str(instance)})
        else:
            # group.user_set.add(user), clinic added from the user's side...: one row per owner.
            for owner in model.objects.filter(pk__in=pk_set):
                record(f"privileges.{noun}.{verb}", actor=_actor(), obj=owner, detail={"members": [str(instance)], "of": str(owner)})

    return receiver_


def _related_pks(through, instance) -> list:
    """Primary keys on the other side of `through` from `instance`."""
    fks = [f for f in through._meta.fields if f.is_relation]
    mine = next(f for f in fks if isinstance(instance, f.related_model))
    other = next(f for f in fks if f is not mine)
    return list(through.objects.filter(**{mine.name: instance}).values_list(other.attname, flat=True))


def connect() -> None:
    from charting.models import Clinic

    m2m_changed.connect(_m2m("user", "groups_added", "groups_removed"), sender=User.groups.through, dispatch_uid="audit.user_groups", weak=False)
    m2m_changed.connect(_m2m("user", "permissions_granted", "permissions_revoked"), sender=User.user_permissions.through, dispatch_uid="audit.user_permissions", weak=False)
    m2m_changed.connect(_m2m("group", "permissions_granted", "permissions_revoked"), sender=Group.permissions.through, dispatch_uid="audit.group_permissions", weak=False)
    m2m_changed.connect(_m2m("clinic", "staff_added", "staff_removed"), sender=Clinic.staff.through, dispatch_uid="audit.clinic_staff", weak=False)


connect()
