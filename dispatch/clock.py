"""The database's clock: every sweep compares deadlines with it, never with a worker's clock."""

from datetime import UTC, datetime

from django.db import connection
from django.utils.dateparse import parse_datetime


def database_now() -> datetime:
    """`now()` of the database, as an aware datetime (the embedded SQLite answers in UTC)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        return database_datetime(cursor.fetchone()[0])


def database_datetime(value: datetime | str) -> datetime:
    """A timestamp as raw SQL returns it, as an aware datetime: the embedded SQLite answers
    with text in UTC, PostgreSQL with a datetime."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        assert parsed is not None
        value = parsed
    return value if value.tzinfo else value.replace(tzinfo=UTC)
