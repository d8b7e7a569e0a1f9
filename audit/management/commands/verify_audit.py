"""`python manage.py verify_audit`: recompute the audit hash chain (RELIABILITY AUD-5).

Exit 0 and "audit chain OK: N rows" when every row verifies; otherwise exit 1
and name the first bad row (seq and id) and what is wrong with it on stderr.
Reads the table in seq order with a server-side cursor (constant memory).
"""

from django.core.management.base import BaseCommand

from audit.chain import verify


class Command(BaseCommand):
    help = "Verify the audit trail's SHA-256 hash chain; exit 1 naming the first bad row."

    def handle(self, *args, **options):
        checked, problem = verify()
        if problem is not None:
            self.stderr.write(f"audit chain BROKEN after {checked} good rows: {problem}")
            raise SystemExit(1)
        self.stdout.write(f"audit chain OK: {checked} rows")
