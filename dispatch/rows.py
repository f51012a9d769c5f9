"""Inserting a row that a unique constraint may refuse, in one statement.

`INSERT ... ON CONFLICT DO NOTHING RETURNING id` says whether the row went in without a
savepoint around it: the usual way (a savepoint, the INSERT, catching IntegrityError) costs
three statements and leaves the caller's transaction usable only thanks to the savepoint.
Used where a conflict is the expected answer to a race or a retry (a webhook delivered twice,
an order sent twice, a driver who already holds an offer, a shop report already scheduled).
"""

from typing import Any

from django.db.models import Model
from django.db.models.constants import OnConflict


def row_insert_unless_conflict(instance: Model) -> bool:
    """Insert the instance unless a unique constraint or index already holds its like; True
    (and its primary key set) when it went in. Runs in the caller's transaction."""
    meta = instance._meta
    pk_field = meta.pk
    assert pk_field is not None
    fields = [f for f in meta.local_concrete_fields if f is not pk_field and not getattr(f, "generated", False)]
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            setattr(instance, field.attname, field.pre_save(instance, True))
    manager: Any = type(instance)._base_manager
    rows = manager._insert([instance], fields=fields, returning_fields=[pk_field], on_conflict=OnConflict.IGNORE)
    if not rows or rows[0] is None:
        return False
    setattr(instance, pk_field.attname, rows[0][0])
    instance._state.adding = False
    instance._state.db = manager.db
    return True
