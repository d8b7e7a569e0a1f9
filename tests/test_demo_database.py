"""The SQLite demo (`make run`): what has no PostgreSQL says so instead of failing.

The suite runs on PostgreSQL; these tests make the connection report another
vendor, which is what the demo's code paths branch on.
"""

import pytest
from django.db import connection
from django.urls import reverse

from charting.models import amendment_in_progress, in_amendment


def test_amendments_are_marked_in_python_where_there_are_no_triggers(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert not in_amendment()
    with amendment_in_progress(42):
        assert in_amendment()  # Administration.save() lets the amendment's write through
    assert not in_amendment()  # and nothing after it


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["reports:completeness", "reports:coding", "reports:timing", "reports:vials"])
def test_postgresql_reports_say_they_need_it_on_the_demo(client, admin, monkeypatch, name):
    client.force_login(admin)
    monkeypatch.setattr(connection, "vendor", "sqlite")
    response = client.get(reverse(name))
    assert response.status_code == 501
    assert 'data-testid="needs-postgresql"' in response.content.decode()
    export = client.get(reverse("reports:export", kwargs={"report": "timing", "table": "near_threshold", "fmt": "csv"}))
    assert export.status_code == 501 and b"PostgreSQL" in export.content
