"""The zone version's triggers again on SQLite: 0017 added a column to the zones' table, which
SQLite does by building the table anew, and a rebuilt table has lost its triggers. Any later
migration that changes dispatch_zone on SQLite needs the same step after it (the embedded-
default test of the zone index catches a missing one). PostgreSQL alters in place: nothing."""

import importlib

from django.db import migrations

TRIGGERS = importlib.import_module("dispatch.migrations.0013_zone_version_kept_by_triggers")


def reinstall(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in [*TRIGGERS.SQLITE_UNINSTALL, *TRIGGERS.SQLITE_INSTALL]:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0017_requires_handover_code")]
    operations = [migrations.RunPython(reinstall, migrations.RunPython.noop)]
