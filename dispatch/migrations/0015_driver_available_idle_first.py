"""The candidate search's drivers without a position, idle longest first (never idle first):
an index in that order, so the search reads the first few of a fleet of thousands and stops.

PostgreSQL only, by hand rather than in the model's Meta: SQLite cannot write NULLS FIRST in
an index, and rebuilding the drivers' table there (as its schema editor does for most
changes) would try to. The embedded SQLite serves small fleets.
"""

from django.db import migrations

INDEX = "driver_available_idle_first"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON dispatch_driver (idle_since ASC NULLS FIRST, id ASC) WHERE availability = 'available'")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0014_reassignment_reasons_by_ops")]

    operations = [migrations.RunPython(create, drop)]
