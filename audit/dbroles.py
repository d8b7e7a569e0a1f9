"""The database side of append-only audit and no-delete clinical records
(RELIABILITY AUD-4, REC-4). PostgreSQL only; the SQLite demo has no roles.

- `chairside_app` is a NOLOGIN role holding what the running application may
  do: SELECT/INSERT/UPDATE/DELETE on the project's tables, EXCEPT
  * the audit table (`audit_auditevent`) and the clinical history tables
    (`APPEND_ONLY_TABLES`): SELECT and INSERT only;
  * the clinical tables (`NO_DELETE_TABLES`): no DELETE ("entered in error"
    marks them instead);
  and no TRUNCATE anywhere. Production connects with a LOGIN role that is a
  member of it and switches to it (README "Database roles"); migrations run
  as the tables' owner.
- `audit_append_only` is a trigger refusing UPDATE and DELETE on the audit
  table for everyone, the owner included (a superuser can only get past it by
  disabling the trigger, which is itself visible in the catalog). TRUNCATE
  is not trapped: test databases are flushed with it, and the role has no
  TRUNCATE privilege.

`apply_grants()` runs after every `migrate` (post_migrate, audit/apps.py), so
tables added by later migrations get the same grants.
"""

from __future__ import annotations

APP_ROLE = "chairside_app"

APPEND_ONLY_TABLES = ("audit_auditevent",)

NO_DELETE_TABLES = (
    "charting_patient",
    "charting_encounter",
    "charting_accesssite",
    "charting_administration",
    "charting_vialuse",
    "charting_pause",
    "charting_timecorrection",
    "charting_otherservice",
    "charting_documentationflag",
    "coding_suggestion",
    "coding_suggestedline",
    # The coder's review (issue 4): decisions are superseded, never deleted;
    # amendments keep the original value; exports are disclosures.
    "charting_amendment",
    "coding_encounterreview",
    "coding_finalline",
    "coding_documentationquery",
    "coding_exportlog",
    "reports_exportlog",
    # Wristband checks at the chair (issue 8), failed ones included.
    "charting_patientscan",
    # Vitals and infusion reactions (issue #8): struck as entered in error.
    "charting_vitalsigns",
    "charting_reaction",
    "charting_reactionadministration",
)

CREATE_ROLE = f"""
DO $$
BEGIN
    CREATE ROLE {APP_ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;  -- roles are per cluster: another database made it
END
$$;
"""

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'Audit rows are never changed or deleted (RELIABILITY AUD-4).';
END
$$;
"""


def append_only_trigger(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS audit_append_only ON {table};
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
"""


def apply_grants(connection) -> None:
    """(Re)grant `chairside_app` its privileges on every table of the current schema."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(CREATE_ROLE)
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        cursor.execute(f"REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        existing = {row[0] for row in cursor.fetchall()}
        for table in APPEND_ONLY_TABLES + history_tables(existing):
            cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}")
        for table in NO_DELETE_TABLES:
            if table in existing:
                cursor.execute(f"REVOKE DELETE, TRUNCATE ON {table} FROM {APP_ROLE}")


def history_tables(existing: set[str]) -> tuple[str, ...]:
    """The django-pghistory event tables of the clinical models (charting_*event)."""
    return tuple(sorted(t for t in existing if t.startswith("charting_") and t.endswith("event")))
