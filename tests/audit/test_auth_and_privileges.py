"""AUD-3 (authentication events) and AUD-7 (privilege changes) are audited."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import RequestFactory
from django.urls import reverse

from audit.middleware import RequestIdMiddleware
from audit.models import AuditEvent, Category, Outcome
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

CANARY_PASSWORD = "ZZCANARY-4711-wrong-password"


def last(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def every_column(event: AuditEvent) -> str:
    return " ".join(str(getattr(event, f.attname)) for f in AuditEvent._meta.concrete_fields)


def test_aud3_log_in_ok_is_audited_with_the_request_id(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": PASSWORD})
    assert response.status_code == 302
    row = last("auth.login.succeeded")
    assert (row.actor, row.username, row.outcome, row.category) == (nurse, "nurse", Outcome.SUCCESS, Category.AUTHENTICATION)
    assert row.role == "nurse" and row.request_id == response["X-Request-ID"]


def test_aud3_failed_log_in_keeps_the_username_and_never_the_password(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": CANARY_PASSWORD})
    assert response.status_code == 200
    row = last("auth.login.failed")
    assert (row.actor, row.username, row.outcome, row.category) == (None, "nurse", Outcome.FAILURE, Category.AUTHENTICATION)
    assert row.request_id == response["X-Request-ID"]
    assert all(CANARY_PASSWORD not in every_column(e) for e in AuditEvent.objects.all())


def test_aud3_failed_log_in_of_an_unknown_user_is_audited(client, db):
    client.post(reverse("login"), {"username": "nobody-here", "password": CANARY_PASSWORD})
    assert last("auth.login.failed").username == "nobody-here"


def test_aud3_log_out_is_audited(client, nurse):
    client.force_login(nurse)
    response = client.post(reverse("logout"))
    row = last("auth.logout")
    assert (row.actor, row.outcome, row.request_id) == (nurse, Outcome.SUCCESS, response["X-Request-ID"])


# --- AUD-7 --------------------------------------------------------------------------


def test_aud7_user_created_and_groups_added_are_audited(clinic):
    user = UserFactory(username="newbie", roles=["nurse"], clinics=[clinic])
    created = last("privileges.user.created")
    assert (created.object_id, created.category, created.detail["username"]) == (str(user.pk), Category.PRIVILEGES, "newbie")
    assert last("privileges.user.groups_added").detail["members"] == ["nurse"]
    assert last("privileges.clinic.staff_added").detail["members"] == ["newbie"]


def test_aud7_disable_and_staff_flags_are_audited_with_old_and_new(nurse):
    nurse.is_active = False
    nurse.save()
    assert last("privileges.user.changed").detail["changes"] == {"is_active": [True, False]}
    nurse.is_staff = True
    nurse.save(update_fields=["is_staff"])
    assert last("privileges.user.changed").detail["changes"] == {"is_staff": [False, True]}


def test_aud7_saving_last_login_writes_no_privilege_row(nurse):
    before = AuditEvent.objects.filter(category=Category.PRIVILEGES).count()
    nurse.save(update_fields=["last_login"])
    nurse.first_name = "Nell"
    nurse.save()
    assert AuditEvent.objects.filter(category=Category.PRIVILEGES).count() == before


def test_aud7_group_removal_from_either_side_and_clear_are_audited(nurse, clinic):
    group = Group.objects.get(name="nurse")
    nurse.groups.remove(group)
    assert last("privileges.user.groups_removed").detail["members"] == ["nurse"]
    group.user_set.add(nurse)  # from the group's side
    row = last("privileges.user.groups_added")
    assert (row.object_id, row.detail["members"]) == (str(nurse.pk), ["nurse"])
    nurse.groups.clear()
    assert last("privileges.user.groups_removed").detail["members"] == ["nurse"]
    clinic.staff.remove(nurse)
    assert last("privileges.clinic.staff_removed").detail["members"] == ["nurse"]


def test_aud7_permission_grants_are_audited(nurse):
    perm = Permission.objects.get(codename="view_patient")
    nurse.user_permissions.add(perm)
    assert last("privileges.user.permissions_granted").detail["members"] == ["charting.view_patient"]
    group = Group.objects.create(name="auditors")
    assert last("privileges.group.created").detail["group"] == "auditors"
    group.permissions.add(perm)
    assert last("privileges.group.permissions_granted").detail["members"] == ["charting.view_patient"]
    group.permissions.remove(perm)
    assert last("privileges.group.permissions_revoked").detail["members"] == ["charting.view_patient"]


def test_aud7_the_actor_is_the_signed_in_user_of_the_request(admin, nurse):
    """A change made while serving a request (the Django admin) names who made it."""
    request = RequestFactory().post("/admin/auth/user/")
    request.user = admin

    def view(req):
        from django.http import HttpResponse

        get_user_model().objects.filter(pk=nurse.pk).first().groups.add(Group.objects.get_or_create(name="coder")[0])
        return HttpResponse()

    response = RequestIdMiddleware(view)(request)
    row = last("privileges.user.groups_added")
    assert (row.actor, row.object_id, row.request_id) == (admin, str(nurse.pk), response["X-Request-ID"])
