"""Exports of the report tables: CSV streamed in constant memory, XLSX with
openpyxl (write-only), and the administrations export as PostgreSQL COPY.

Cells that a spreadsheet would run as a formula (text starting with = + - @,
tab or CR: a patient's name is typed by a person) are neutralised: a leading
apostrophe in CSV (OWASP "CSV injection"), a plain string cell in XLSX.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import IO, Any

from django.db import connection
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from psycopg import sql

from .reports import MINUTES_SQL, Filters

# Bytes gathered before a chunk is sent: big enough that the WSGI server's
# per-chunk cost vanishes, small enough to keep memory flat.
CHUNK_BYTES = 256 * 1024
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def csv_chunks(columns: Iterable[str], rows: Iterable[tuple], done: Callable[[int], None]) -> Iterator[bytes]:
    """The CSV (header, then `rows`) as UTF-8 chunks of about CHUNK_BYTES.
    Calls `done(row_count)` after the last row, not when the client leaves early."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(list(columns))
    count = 0
    for row in rows:
        writer.writerow([_csv_safe(v) for v in row])
        count += 1
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
    done(count)


def _xlsx_cell(sheet, value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # openpyxl would store "=..." as a formula
        return cell
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def xlsx_file(title: str, columns: Iterable[str], rows: Iterable[tuple]) -> tuple[IO[bytes], int]:
    """An XLSX workbook of one sheet (`title`, header row, `rows`) in a temporary
    file, rewound, and the number of data rows. openpyxl's write-only mode writes
    rows to disk as they come, so memory stays flat however many there are."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append(list(columns))
    count = 0
    for row in rows:
        sheet.append([_xlsx_cell(sheet, v) for v in row])
        count += 1
    out = tempfile.TemporaryFile()
    book.save(out)
    out.seek(0)
    return out, count


# --- all administrations, as PostgreSQL COPY -------------------------------------------------

ADMINISTRATION_COLUMNS = (
    "administration_id",
    "encounter_id",
    "date_of_service",
    "clinic",
    "mrn",
    "drug",
    "hcpcs",
    "admin_class",
    "route",
    "purpose",
    "dose_value",
    "dose_unit",
    "started_at_utc",
    "stopped_at_utc",
    "minutes",
)


def _text(expression: str) -> str:
    # Text a person typed (clinic, MRN, drug) cannot start a spreadsheet formula.
    return f"CASE WHEN left({expression}, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '''' || {expression} ELSE {expression} END"


def administrations_select(filters: Filters) -> sql.Composed:
    """The SELECT of the administrations export, with the filters as literals, so
    the same text runs in the view (COPY … TO STDOUT) and in `psql \\copy`
    (benchmarks/export_bench.py). Every value is formatted by SQL itself
    (to_char for dates and times in UTC), so no session setting (TimeZone,
    DateStyle) changes a byte. Minutes are drip to drip (reports.MINUTES_SQL);
    empty while a drug has no stop. Drugs struck as entered in error (REC-4)
    are left out, as everywhere administrations are counted. Ordered by date
    of service, start and id."""
    adm = "charting_administration"
    return sql.SQL(
        f"""SELECT {adm}.id AS administration_id, e.id AS encounter_id, to_char(e.date_of_service, 'YYYY-MM-DD') AS date_of_service,
  {_text("c.name")} AS clinic, {_text("p.mrn")} AS mrn, {_text("d.name")} AS drug,
  COALESCE(NULLIF({adm}.hcpcs_override, ''), d.hcpcs) AS hcpcs, {adm}.admin_class, {adm}.route, {adm}.purpose,
  {adm}.dose_value, {adm}.dose_unit,
  to_char({adm}.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at_utc,
  to_char({adm}.stopped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS stopped_at_utc,
  CASE WHEN {adm}.stopped_at IS NOT NULL THEN {MINUTES_SQL} END AS minutes
FROM {adm}
JOIN charting_encounter e ON e.id = {adm}.encounter_id
JOIN charting_clinic c ON c.id = e.clinic_id
JOIN charting_patient p ON p.id = e.patient_id
JOIN charting_drug d ON d.id = {adm}.drug_id
WHERE e.clinic_id = ANY({{clinics}}) AND e.date_of_service BETWEEN {{date_from}} AND {{date_to}}
  AND {adm}.entered_in_error_at IS NULL
ORDER BY e.date_of_service, {adm}.started_at NULLS LAST, {adm}.id"""
    ).format(
        clinics=sql.SQL("ARRAY[{}]::bigint[]").format(sql.SQL(", ").join(sql.Literal(i) for i in filters.clinic_ids)) if filters.clinic_ids else sql.SQL("ARRAY[]::bigint[]"),
        date_from=sql.Literal(filters.date_from),
        date_to=sql.Literal(filters.date_to),
    )


def administrations_copy_chunks(filters: Filters, done: Callable[[int], None]) -> Iterator[bytes]:
    """The administrations export as CSV with a header, straight from
    `COPY (SELECT …) TO STDOUT WITH (FORMAT csv, HEADER)` on Django's own
    connection, in chunks of about CHUNK_BYTES: byte for byte what
    `psql \\copy (same SELECT) TO STDOUT WITH (FORMAT csv, HEADER)` prints, at
    COPY's speed, in constant memory. Calls `done(rows)` (COPY's row count)
    after the last chunk."""
    query = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(administrations_select(filters))
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        buffer = bytearray()
        with raw.copy(query) as copy:
            for data in copy:
                buffer += data
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
        if buffer:
            yield bytes(buffer)
        done(raw.rowcount)


def administration_rows(filters: Filters) -> Iterator[tuple]:
    """The same rows as Python values (for the XLSX export), from a server-side cursor."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(administrations_select(filters).as_string(cursor.cursor.connection))
        while rows := cursor.fetchmany(2000):
            for row in rows:
                yield tuple(str(v) if not isinstance(v, str | int | Decimal | type(None)) else v for v in row)
