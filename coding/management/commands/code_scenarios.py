"""``python manage.py code_scenarios FILE...`` (DESIGN §6).

Codes every scenario of every file with the engine and prints one JSON object
per scenario per line on stdout.  Needs no database: it never touches the ORM
and skips system checks.  All files are parsed before anything is printed, so a
bad file (missing, not JSON, bad field) fails cleanly with exit status 2 and a
message on stderr naming the file and the dotted field.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from coding.engine import ScenarioError, evaluate, load_scenario_file, result_to_json


class Command(BaseCommand):
    help = "Code scenario files with the engine; one JSON result per scenario per line (no database)."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="scenario JSON files (scenarios/README.md)")

    def handle(self, *args: Any, **options: Any) -> None:
        docs = []
        for path in options["files"]:
            try:
                docs.extend(load_scenario_file(path))
            except ScenarioError as exc:
                where = f"{exc.file}: field {exc.field}" if exc.field else exc.file
                raise CommandError(f"{where}: {exc.message}", returncode=2) from None
        for _raw, doc in docs:
            result = evaluate(doc)
            self.stdout.write(json.dumps(result_to_json(doc.id, result), sort_keys=False))
