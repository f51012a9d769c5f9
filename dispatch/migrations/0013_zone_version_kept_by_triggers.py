"""The zones' version: one row whose token the database itself replaces on every insert,
change or delete of a zone (dispatch.models.ZoneVersion), so every process's zone index sees
an edit made anywhere at its next lookup.

Triggers rather than Django signals: a queryset .update(), a bulk_create, another service or
a hand-written UPDATE never send signals. PostgreSQL: row triggers (an UPDATE that changes
nothing keeps the token) and a statement trigger for TRUNCATE, which row triggers never see;
gen_random_uuid() is core from PostgreSQL 13. SQLite, the embedded default: row triggers.
"""

import uuid

from django.db import migrations, models

POSTGRESQL_INSTALL = """
CREATE OR REPLACE FUNCTION dispatch_zone_version_bump() RETURNS trigger AS $$
BEGIN
    INSERT INTO dispatch_zoneversion (id, token) VALUES (1, gen_random_uuid())
        ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER dispatch_zone_version_on_insert_delete AFTER INSERT OR DELETE ON dispatch_zone
    FOR EACH ROW EXECUTE FUNCTION dispatch_zone_version_bump();
CREATE TRIGGER dispatch_zone_version_on_update AFTER UPDATE ON dispatch_zone
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION dispatch_zone_version_bump();
CREATE TRIGGER dispatch_zone_version_on_truncate AFTER TRUNCATE ON dispatch_zone
    FOR EACH STATEMENT EXECUTE FUNCTION dispatch_zone_version_bump();
"""

POSTGRESQL_UNINSTALL = """
DROP TRIGGER IF EXISTS dispatch_zone_version_on_truncate ON dispatch_zone;
DROP TRIGGER IF EXISTS dispatch_zone_version_on_update ON dispatch_zone;
DROP TRIGGER IF EXISTS dispatch_zone_version_on_insert_delete ON dispatch_zone;
DROP FUNCTION IF EXISTS dispatch_zone_version_bump();
"""

SQLITE_BUMP = "INSERT OR REPLACE INTO dispatch_zoneversion (id, token) VALUES (1, lower(hex(randomblob(16))))"
SQLITE_INSTALL = [
    f"CREATE TRIGGER dispatch_zone_version_on_{event.lower()} AFTER {event} ON dispatch_zone FOR EACH ROW BEGIN {SQLITE_BUMP}; END"
    for event in ("INSERT", "UPDATE", "DELETE")
]
SQLITE_UNINSTALL = [f"DROP TRIGGER IF EXISTS dispatch_zone_version_on_{event}" for event in ("insert", "update", "delete")]


def install(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_INSTALL, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_INSTALL:
            schema_editor.execute(statement, params=None)
    else:
        raise NotImplementedError(f"the zone version triggers exist for PostgreSQL and SQLite, not {vendor}")
    apps.get_model("dispatch", "ZoneVersion").objects.using(schema_editor.connection.alias).create(id=1, token=uuid.uuid4())


def uninstall(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_UNINSTALL, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_UNINSTALL:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0012_driver_available_position_index")]

    operations = [
        migrations.CreateModel(
            name="ZoneVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token", models.UUIDField()),
            ],
            options={"constraints": [models.CheckConstraint(condition=models.Q(("id", 1)), name="zone_version_single_row")]},
        ),
        migrations.RunPython(install, uninstall),
    ]
