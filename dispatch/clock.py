"""The database's clock: every sweep compares deadlines with it, never with a worker's clock."""

from datetime import UTC, datetime

from django.db import connection
from django.utils.dateparse import parse_datetime


def database_now() -> datetime:
    """`now()` of the database, as an aware datetime (the embedded SQLite answers in UTC)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        value = cursor.fetchone()[0]
    if isinstance(value, str):
        value = parse_datetime(value)
        assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
