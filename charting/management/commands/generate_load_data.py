"""`python manage.py generate_load_data --clinics N --encounters N --seed S`

Invented encounters at clinic-network scale for the benchmarks (issue #9):
see charting/loadgen.py for the visit mix and the documentation gaps. Prints
one line of row counts. PostgreSQL only (COPY).
"""

import time

from django.core.management.base import BaseCommand, CommandError

from charting import loadgen


class Command(BaseCommand):
    help = "Write invented clinics, patients and encounters (PostgreSQL COPY) for benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--clinics", type=int, default=5)
        parser.add_argument("--encounters", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--days", type=int, default=365, help="Dates of service spread over this many days up to today.")

    def handle(self, *args, clinics, encounters, seed, days, **options):
        started = time.perf_counter()
        try:
            counts = loadgen.generate(clinics=clinics, encounters=encounters, seed=seed, days=days,
                                      progress=(lambda text: self.stderr.write(text)) if options["verbosity"] > 1 else None)
        except (RuntimeError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{counts.line()} seconds={time.perf_counter() - started:.1f}")
