"""Changes and runs are never deleted, in the database itself: records, signatures and runs
hold them with PROTECT, but a run with no entry yet is held by nothing, and SQL goes around
the ORM. A trigger refuses DELETE and TRUNCATE on both tables (UPDATE stays: statuses move).
Reversing the migration drops the triggers and their function."""

from django.db import migrations

TABLES = ("netbox_runbooks_change", "netbox_runbooks_run")

FUNCTION = """
CREATE FUNCTION netbox_runbooks_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: runbook changes and runs are never deleted', TG_OP,
        TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def _create(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_never_deleted BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION netbox_runbooks_never_deleted();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION netbox_runbooks_never_deleted();
"""


def _drop(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {table}_never_deleted ON {table};
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
"""


class Migration(migrations.Migration):
    dependencies = [("netbox_runbooks", "0002_append_only")]

    operations = [
        migrations.RunSQL(
            sql=FUNCTION + "".join(_create(t) for t in TABLES),
            reverse_sql="".join(_drop(t) for t in TABLES)
            + "DROP FUNCTION IF EXISTS netbox_runbooks_never_deleted();",
        ),
    ]
