"""Record entries and signatures are append-only in the database itself: a trigger refuses
UPDATE, DELETE and TRUNCATE on their tables, whoever asks (the API has no such operation;
this stops a script, a shell or a psql session too). Reversing the migration drops the
triggers and their function.

A PostgreSQL superuser can still switch triggers off (session_replication_role); what they
then change, `verify` finds: every entry is hashed and chained, and each run's head is kept.
"""

from django.db import migrations

TABLES = ("netbox_runbooks_recordentry", "netbox_runbooks_signature")

FUNCTION = """
CREATE FUNCTION netbox_runbooks_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: runbook records are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'record a new entry instead; a change to the record is itself recorded';
END
$$;
"""


def _create(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION netbox_runbooks_append_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION netbox_runbooks_append_only();
"""


def _drop(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
"""


class Migration(migrations.Migration):
    dependencies = [("netbox_runbooks", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=FUNCTION + "".join(_create(t) for t in TABLES),
            reverse_sql="".join(_drop(t) for t in TABLES)
            + "DROP FUNCTION IF EXISTS netbox_runbooks_append_only();",
        ),
    ]
