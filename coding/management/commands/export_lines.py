"""``python manage.py export_lines --from DATE --to DATE [--clinic ID] --format csv|fhir``

Writes the final lines of final encounters with a date of service in the range
to standard output, for billing systems: CSV (one row per line) or a FHIR R4
Bundle of ChargeItem (JSON). The same code as the coders' download
(coding/exports.py), logged the same way (ExportLog with source "command",
one audit row per encounter). Without --clinic every clinic is exported.

Exit status 2 with a message on stderr for a bad date, an unknown clinic or
dates out of order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from charting.models import Clinic
from coding import exports


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).", returncode=2) from None


class Command(BaseCommand):
    help = "Export final lines (CSV or FHIR R4 Bundle of ChargeItem) to standard output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="date_from", required=True, metavar="DATE", help="first date of service, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, metavar="DATE", help="last date of service, YYYY-MM-DD (inclusive)")
        parser.add_argument("--clinic", type=int, metavar="ID", help="only this clinic (its id)")
        parser.add_argument("--format", required=True, choices=["csv", "fhir"])

    def handle(self, *args: Any, date_from: str, date_to: str, clinic: int | None, format: str, **options: Any) -> None:
        clinics = Clinic.objects.all() if clinic is None else Clinic.objects.filter(pk=clinic)
        if clinic is not None and not clinics.exists():
            raise CommandError(f"No clinic with id {clinic}.", returncode=2)
        try:
            export = exports.start_export(date_from=_date(date_from), date_to=_date(date_to), clinics=clinics, format=format, actor=None, source="command")
        except exports.ExportError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if format == "csv":
            # csv.writer ends rows with \r\n itself; the command adds nothing.
            for chunk in exports.csv_chunks(export.lines):
                self.stdout.write(chunk, ending="")
        else:
            self.stdout.write(exports.fhir_json(export.lines, log=export.log))
