"""Exports: CSV streamed, XLSX that opens, formulas neutralised, every export
logged (ExportLog + audit row), the administrations CSV straight from COPY."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from openpyxl import load_workbook

from audit.chain import append_many
from audit.models import AuditEvent
from charting.models import Patient
from reports.models import ExportLog
from reports.views import EXPORTABLE

from .seed import seed, seed_reviews

pytestmark = pytest.mark.django_db

JUNE = {"date_from": "2025-06-01", "date_to": "2025-06-30"}


@pytest.fixture
def data(clinic, other_clinic):
    return seed(clinic, other_clinic)


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def _csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_streams_the_table_and_logs_who_when_what(admin_client, admin, clinic, data):
    response = admin_client.get(reverse("reports:export", args=["vials", "mismatches", "csv"]), JUNE)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="chairside-vials-mismatches-2025-06-01-2025-06-30.csv"'
    assert "no-store" in response["Cache-Control"].split(", ")  # SES-6 (the site-wide middleware adds its own directives)
    log = ExportLog.objects.get()
    assert log.completed_at is None  # nothing sent yet: the body streams
    rows = _csv(response)
    assert rows[0][:4] == ["Date of service", "Clinic", "MRN", "Drug"]
    assert rows[1:] == [["2025-06-03", "Riverside Infusion", "RPT-0002", "infliximab", "J1745", "57894-030-01", "B2", "4", "400", "mg", "300", "0", "40", "30", "0", "10"]]
    log.refresh_from_db()
    assert (log.actor, log.report, log.table, log.format, log.row_count) == (admin, "vials", "mismatches", "csv", 1)
    assert log.filters == {"clinics": [clinic.pk], "date_from": "2025-06-01", "date_to": "2025-06-30", "user": None, "patient": None}
    assert list(log.clinics.all()) == [clinic]
    event = AuditEvent.objects.get(action="reports.vials.exported")
    assert (event.actor, event.object_id, event.detail["table"], event.detail["format"]) == (admin, str(log.pk), "mismatches", "csv")


def test_xlsx_export_opens_with_the_same_rows(admin_client, data):
    response = admin_client.get(reverse("reports:export", args=["vials", "lots", "xlsx"]), JUNE)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][:4] == ["Drug", "HCPCS", "NDC", "Lot"]
    assert values[1:] == [
        ["infliximab", "J1745", "57894-030-01", "A1", "10 mg", 1, 5, 500, 50, 45, 5, 0, 0],
        ["infliximab", "J1745", "57894-030-01", "B2", "10 mg", 1, 4, 400, 40, 30, 0, 10, 1],
    ]
    log = ExportLog.objects.get()
    assert (log.format, log.row_count) == ("xlsx", 2) and log.completed_at is not None


def test_the_override_table_exports_as_csv_and_xlsx(admin_client, clinic, other_clinic, coder, data):
    seed_reviews(clinic, other_clinic, coder)
    july = {"date_from": "2025-07-01", "date_to": "2025-07-31"}
    expected = [
        ["Group", "Item", "Lines", "% of decisions"],
        ["Lines", "Suggested", "10", ""],
        ["Lines", "Suggested and decided", "8", ""],
        ["Lines", "Suggested, not yet decided", "2", ""],
        ["Lines", "Decisions (decided + added)", "9", "100.0"],
        ["Lines", "Overridden (changed, deleted or added)", "4", "44.4"],
        ["Action", "Accepted", "5", "55.6"],
        ["Action", "Changed", "2", "22.2"],
        ["Action", "Deleted", "1", "11.1"],
        ["Action", "Added", "1", "11.1"],
        ["Reason", "Units do not match the documented time or dose", "2", "22.2"],
        ["Reason", "Service not documented", "1", "11.1"],
        ["Reason", "Documented service missing from the suggestion", "1", "11.1"],
    ]
    response = admin_client.get(reverse("reports:export", args=["coding", "overrides", "csv"]), july)
    assert response["Content-Disposition"] == 'attachment; filename="chairside-coding-overrides-2025-07-01-2025-07-31.csv"'
    assert _csv(response) == expected
    response = admin_client.get(reverse("reports:export", args=["coding", "overrides", "xlsx"]), july)
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    assert sheet.title == "Override rate and reasons"
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0] == expected[0]
    assert values[1:] == [[g, i, int(n), float(p) if p else None] for g, i, n, p in expected[1:]]
    logs = list(ExportLog.objects.order_by("pk").values_list("report", "table", "format", "row_count"))
    assert logs == [("coding", "overrides", "csv", 12), ("coding", "overrides", "xlsx", 12)]


@pytest.mark.parametrize("key", sorted(EXPORTABLE))
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_every_table_exports_in_both_formats(admin_client, data, key, fmt):
    response = admin_client.get(reverse("reports:export", args=[*key, fmt]), JUNE)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    if fmt == "csv":
        header = next(csv.reader(io.StringIO(body.decode())))
        assert tuple(header) == EXPORTABLE[key].columns
    else:
        assert tuple(next(load_workbook(io.BytesIO(body)).active.iter_rows(values_only=True))) == EXPORTABLE[key].columns
    log = ExportLog.objects.get()
    assert log.row_count is not None and log.row_count >= (0 if key == ("access", "events") else 1)


def test_spreadsheet_formulas_typed_into_a_chart_are_neutralised(admin_client, data):
    Patient.objects.filter(mrn="RPT-0002").update(mrn="=HYPERLINK(1)", family_name="+Beta", given_name="@Ben")
    rows = _csv(admin_client.get(reverse("reports:export", args=["vials", "mismatches", "csv"]), JUNE))
    assert rows[1][2] == "'=HYPERLINK(1)"
    response = admin_client.get(reverse("reports:export", args=["timing", "near_threshold", "xlsx"]), JUNE)
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    cell = sheet["C3"]
    assert (cell.value, cell.data_type) == ("=HYPERLINK(1)", "s")  # text, not a formula
    admin_rows = _csv(admin_client.get(reverse("reports:export", args=["administrations", "all", "csv"]), JUNE))
    assert "'=HYPERLINK(1)" in [r[4] for r in admin_rows]


def test_administrations_csv_comes_from_copy_with_minutes(admin_client, clinic, data):
    response = admin_client.get(reverse("reports:export", args=["administrations", "all", "csv"]), JUNE)
    rows = _csv(response)
    assert rows[0] == ["administration_id", "encounter_id", "date_of_service", "clinic", "mrn", "drug", "hcpcs", "admin_class", "route", "purpose", "dose_value", "dose_unit", "started_at_utc", "stopped_at_utc", "minutes"]
    body = {r[4] + "/" + r[5] + "/" + r[12]: r for r in rows[1:]}
    assert len(rows) == 1 + 6  # Riverside's 6 administrations (KVO and a running one too); Hilltop's is not there
    inf2 = body["RPT-0002/infliximab/2025-06-03T13:00:00Z"]
    assert (inf2[2], inf2[6], inf2[10], inf2[11], inf2[13], inf2[14]) == ("2025-06-03", "J1745", "300.000", "mg", "2025-06-03T14:42:00Z", "92")
    running = body["RPT-0003/rituximab/2025-06-05T17:00:00Z"]
    assert (running[13], running[14]) == ("", "")
    log = ExportLog.objects.get()
    assert (log.report, log.table, log.row_count) == ("administrations", "all", 6)


def test_the_administrations_export_leaves_out_drugs_entered_in_error(admin_client, clinic, data):
    from charting.models import Administration
    from tests.factories import amending

    with amending():  # a signed encounter's drug, struck as an amendment would
        Administration.objects.filter(label="inf2").update(entered_in_error_at=dt.datetime(2025, 6, 3, 18, 0, tzinfo=dt.UTC), entered_in_error_reason="Wrong patient")
    rows = _csv(admin_client.get(reverse("reports:export", args=["administrations", "all", "csv"]), JUNE))
    assert len(rows) == 1 + 5 and not any(r[12] == "2025-06-03T13:00:00Z" for r in rows[1:])
    assert ExportLog.objects.get().row_count == 5


def test_an_unknown_export_is_404_and_logs_nothing(admin_client, data):
    for args in (["vials", "nope", "csv"], ["vials", "lots", "pdf"], ["nope", "lots", "csv"]):
        assert admin_client.get(reverse("reports:export", args=args), JUNE).status_code == 404
    assert not ExportLog.objects.exists()
    response = admin_client.get(reverse("reports:export", args=["vials", "lots", "csv"]), {"date_from": "nonsense"})
    assert response.status_code == 400
    assert not ExportLog.objects.exists()


def _peak_while_streaming(client) -> tuple[int, int]:
    import tracemalloc

    response = client.get(reverse("reports:export", args=["access", "events", "csv"]), JUNE)
    tracemalloc.start()
    size = sum(len(chunk) for chunk in response.streaming_content)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return size, peak


def test_csv_export_memory_does_not_grow_with_rows(admin_client, clinic, data):
    """The access log export holds one chunk at a time: three times the rows
    make a file three times the size, not a peak three times as high."""
    patient = Patient.objects.get(mrn="RPT-0001")

    def add(n):
        # Audit rows are append-only (AUD-4): made with their time, on the chain.
        append_many([
            AuditEvent(action="charting.encounter.viewed", object_type="charting.encounter", object_id="y" * 36, patient_id=patient.pk, remote_addr="10.9.9.9",
                       at=dt.datetime(2025, 6, 10, 12, tzinfo=dt.UTC))
            for _ in range(n)
        ])

    add(4000)
    small_size, small_peak = _peak_while_streaming(admin_client)
    add(8000)
    big_size, big_peak = _peak_while_streaming(admin_client)
    assert big_size > 2.9 * small_size
    assert big_peak < 1.3 * small_peak, (small_peak, big_peak)
    assert [log.row_count for log in ExportLog.objects.order_by("pk")] == [4000, 12000]
