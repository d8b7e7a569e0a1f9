"""`manage.py sweep_flags`: the documentation-flag sweep, once, now, in this process.

Prints one line: opened=N resolved=N open=N. Not tied to a period: it runs even
when the periodic sweep already ran this period (it waits for one in progress).
"""

from django.core.management.base import BaseCommand
from django.utils import timezone

from charting import services


class Command(BaseCommand):
    help = "Run the documentation-flag sweep once, synchronously; prints opened=N resolved=N open=N."

    def handle(self, *args, **options) -> None:
        result = services.sweep_flags(now=timezone.now())
        self.stdout.write(f"opened={result['opened']} resolved={result['resolved']} open={result['open']}")
