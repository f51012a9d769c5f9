"""Rows written and read in one plain statement, for the paths every order takes.

The ORM costs 0.3 to 1 ms of CPU to build and compile a statement that PostgreSQL answers in
0.05 ms (`bench/lifecycle.py` profiles it): on the hot paths (locking an order, its
compare-and-set, the audit trail) that was most of a lifecycle's CPU. These helpers write
those statements as SQL text built once per process from the model's own fields, and still
go through the model's fields for every value (`get_db_prep_save` writing, the database's
and the field's converters reading), so a value reads and writes exactly as through the ORM.

`row_insert_unless_conflict` is for a row that a race or a retry may already have put there:
`INSERT ... ON CONFLICT DO NOTHING RETURNING id` says whether it went in without a savepoint
(the usual savepoint, INSERT and caught IntegrityError cost three statements).
"""

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)

_IS_NULL = -1

# Below both PostgreSQL's limit of parameters in one statement (65,535) and SQLite's (32,766).
_PARAMETERS_PER_STATEMENT = 30_000


def row_insert_unless_conflict(instance: Model) -> bool:
    """Insert the instance unless a unique constraint or index already holds its like; True
    (and its primary key set) when it went in. Runs in the caller's transaction."""
    fields = _insert_fields(type(instance))
    _stamp_auto_now(instance, fields)
    head, one_row, tail = _insert_sql(type(instance), connection.vendor)
    params = [field.get_db_prep_save(getattr(instance, field.attname), connection=connection) for field in fields]
    with connection.cursor() as cursor:
        # PostgreSQL and SQLite (3.24+) both skip a row a unique constraint refuses this way.
        cursor.execute(f"{head}{one_row} ON CONFLICT DO NOTHING{tail}", params)
        row = cursor.fetchone()
    if row is None:
        return False
    _saved(instance, row[0])
    return True


def row_upsert(instance: Model, *, unique_fields: Sequence[str], update_fields: Sequence[str]) -> None:
    """Insert the instance, or, where a unique constraint on `unique_fields` already holds its
    like, write `update_fields` (by name) into that row instead: one statement, in the
    caller's transaction (PostgreSQL and SQLite 3.24+ both do `ON CONFLICT ... DO UPDATE`)."""
    model = type(instance)
    fields = _insert_fields(model)
    _stamp_auto_now(instance, fields)
    params = [field.get_db_prep_save(getattr(instance, field.attname), connection=connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(model, tuple(unique_fields), tuple(update_fields), connection.vendor), params)
        _saved(instance, cursor.fetchone()[0])


@cache
def _upsert_sql(model: type[Model], unique_fields: tuple[str, ...], update_fields: tuple[str, ...], vendor: str) -> str:
    head, one_row, tail = _insert_sql(model, vendor)
    meta = model._meta
    conflict = ", ".join(_quoted(meta.get_field(name).column) for name in unique_fields)  # type: ignore[union-attr]
    columns = [_quoted(meta.get_field(name).column) for name in update_fields]  # type: ignore[union-attr]
    assignments = ", ".join(f"{column} = EXCLUDED.{column}" for column in columns)
    return f"{head}{one_row} ON CONFLICT ({conflict}) DO UPDATE SET {assignments}{tail}"


def rows_insert(instances: Sequence[Model]) -> None:
    """Insert instances of one model in one statement, their primary keys set from RETURNING.
    No `save()` and no signals: for append-only rows such as the audit trail."""
    if not instances:
        return
    model = type(instances[0])
    fields = _insert_fields(model)
    for instance in instances:
        _stamp_auto_now(instance, fields)
    head, one_row, tail = _insert_sql(model, connection.vendor)
    rows_per_statement = max(1, _PARAMETERS_PER_STATEMENT // len(fields))
    for start in range(0, len(instances), rows_per_statement):
        chunk = instances[start : start + rows_per_statement]
        params = [field.get_db_prep_save(getattr(instance, field.attname), connection=connection) for instance in chunk for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(head + ", ".join([one_row] * len(chunk)) + tail, params)
            ids = [row[0] for row in cursor.fetchall()]
        # PostgreSQL and SQLite return the rows of a multi-row VALUES in the order given.
        for instance, pk in zip(chunk, ids, strict=True):
            _saved(instance, pk)


def row_update(model: type[Model], pk: Any, changes: dict[str, Any], *, expected: dict[str, Any], later_than: dict[str, Any] | None = None) -> bool:
    """Compare-and-set one row: write `changes` (plain values, by field name) where the primary
    key is `pk`, each `expected` field still holds its value and each `later_than` field is
    greater than its value (a deadline not yet passed); True when the row changed."""
    later_than = later_than or {}
    if any(value is None for value in (*expected.values(), *later_than.values())):
        raise ValueError("row_update compares with '=' and '>', which NULL never satisfies: use the ORM's isnull")
    if integer_out_of_range(pk):
        return False  # no row has it
    sql, set_fields, check_fields = _update_sql(model, tuple(changes), tuple(expected), tuple(later_than), connection.vendor)
    params = [field.get_db_prep_save(value, connection=connection) for field, value in zip(set_fields, changes.values(), strict=True)]
    checks = [*expected.values(), *later_than.values()]
    params += [pk, *(field.get_db_prep_value(value, connection=connection) for field, value in zip(check_fields, checks, strict=True))]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.rowcount)


@cache
def _update_sql(
    model: type[Model], changed: tuple[str, ...], equal: tuple[str, ...], greater: tuple[str, ...], vendor: str
) -> tuple[str, list[Any], list[Any]]:
    """The compare-and-set UPDATE for these field names, and the fields in parameter order."""
    meta = model._meta
    set_fields = [meta.get_field(name) for name in changed]
    check_fields = [meta.get_field(name) for name in (*equal, *greater)]
    assignments = ", ".join(f"{_quoted(field.column)} = %s" for field in set_fields)  # type: ignore[union-attr]
    operators = ["="] * len(equal) + [">"] * len(greater)
    checks = (f"{_quoted(field.column)} {operator} %s" for field, operator in zip(check_fields, operators, strict=True))  # type: ignore[union-attr]
    conditions = " AND ".join([f"{_quoted(meta.pk.column)} = %s", *checks])  # type: ignore[union-attr]
    return f"UPDATE {_table(model)} SET {assignments} WHERE {conditions}", set_fields, check_fields  # noqa: S608 (names only)


def row_ids(model: type[Model], **conditions: Any) -> list[Any]:
    """Primary keys of the rows where each field (by name) equals its value, or is one of them
    for a list or tuple, in primary-key order: a question moves ask of rows that usually do
    not exist (open escalations, an earlier cancellation)."""
    return [row[0] for row in _select(model, conditions, whole_rows=False)]


def rows_read(model: type[M], **conditions: Any) -> list[M]:
    """The rows where each field (by name) equals its value, or is one of them for a list or
    tuple, as instances, in primary-key order."""
    return [instance_from_row(model, row) for row in _select(model, conditions, whole_rows=True)]


def _select(model: type[Model], conditions: dict[str, Any], *, whole_rows: bool) -> list[tuple[Any, ...]]:
    wanted = {name: list(value) if isinstance(value, list | tuple | set | frozenset) else value for name, value in conditions.items()}
    for name, value in wanted.items():
        if isinstance(value, list):
            wanted[name] = [v for v in value if not integer_out_of_range(v)]
        elif integer_out_of_range(value):
            return []  # no row can hold it
    # Per condition: how many values it lists, None for one value, _IS_NULL for None (as the ORM: IS NULL).
    shape = tuple((name, len(value) if isinstance(value, list) else _IS_NULL if value is None else None) for name, value in wanted.items())
    if any(size == 0 for _, size in shape):
        return []  # IN () holds for no row
    sql, fields = _select_sql(model, shape, whole_rows, connection.vendor)
    params: list[Any] = []
    for field, value in zip(fields, wanted.values(), strict=True):
        if value is not None:
            params += [field.get_db_prep_value(v, connection=connection) for v in (value if isinstance(value, list) else [value])]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@cache
def _select_sql(model: type[Model], shape: tuple[tuple[str, int | None], ...], whole_rows: bool, vendor: str) -> tuple[str, list[Any]]:
    meta = model._meta
    fields = [meta.get_field(name) for name, _ in shape]
    conditions = [
        f"{_quoted(field.column)} = %s"  # type: ignore[union-attr]
        if size is None
        else f"{_quoted(field.column)} IS NULL"  # type: ignore[union-attr]
        if size == _IS_NULL
        else f"{_quoted(field.column)} IN ({', '.join(['%s'] * size)})"  # type: ignore[union-attr]
        for field, (_, size) in zip(fields, shape, strict=True)
    ]
    pk_column = _quoted(meta.pk.column)  # type: ignore[union-attr]
    selected = _columns_sql(model, _table(model), vendor) if whole_rows else pk_column
    return f"SELECT {selected} FROM {_table(model)} WHERE {' AND '.join(conditions)} ORDER BY {pk_column}", fields  # noqa: S608 (names only)


def columns_sql(model: type[Model], alias: str) -> str:
    """The model's columns for a SELECT list, in the order `instance_from_row` reads them."""
    return _columns_sql(model, alias, connection.vendor)


@cache
def _columns_sql(model: type[Model], alias: str, vendor: str) -> str:
    return ", ".join(f"{alias}.{_quoted(field.column)}" for field in _read_fields(model))


@cache
def _insert_sql(model: type[Model], vendor: str) -> tuple[str, str, str]:
    """INSERT's head, one row's placeholders and the RETURNING tail, for the model's columns."""
    fields = _insert_fields(model)
    head = f"INSERT INTO {_table(model)} ({', '.join(_quoted(f.column) for f in fields)}) VALUES "  # noqa: S608 (names only)
    return head, "(" + ", ".join(["%s"] * len(fields)) + ")", f" RETURNING {_quoted(model._meta.pk.column)}"  # type: ignore[union-attr]


def columns_count(model: type[Model]) -> int:
    return len(_read_fields(model))


def instance_from_row(model: type[M], row: Sequence[Any], start: int = 0) -> M:
    """An instance of `model` from the columns `columns_sql` selected, from `start` in the row,
    each value converted as the ORM converts it (JSON decoded, SQLite's text to datetimes)."""
    fields = _read_fields(model)
    values = list(row[start : start + len(fields)])
    for index, converters in _converters(model, connection.vendor):
        value = values[index]
        for converter in converters:
            value = converter(value, fields[index].cached_col, connection)  # type: ignore[attr-defined]
        values[index] = value
    return model.from_db(connection.alias, [field.attname for field in fields], values)


def integer_out_of_range(value: Any) -> bool:
    """An integer no BIGINT column holds (an id from a URL or a socket frame, say): it matches
    no row. Said before the statement, as the ORM does: SQLite's driver refuses to send it."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    low, high = connection.ops.integer_field_range("BigIntegerField")
    return not low <= value <= high


def _stamp_auto_now(instance: Model, fields: "list[Field[Any, Any]]") -> None:
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            setattr(instance, field.attname, field.pre_save(instance, True))


def _saved(instance: Model, pk: Any) -> None:
    setattr(instance, instance._meta.pk.attname, pk)  # type: ignore[union-attr]
    instance._state.adding = False
    instance._state.db = connection.alias


def _table(model: type[Model]) -> str:
    return _quoted(model._meta.db_table)


def _quoted(name: str | None) -> str:
    assert name is not None  # every concrete field has a column
    return connection.ops.quote_name(name)


@cache
def _insert_fields(model: type[Model]) -> "list[Field[Any, Any]]":
    pk_field = model._meta.pk
    return [f for f in model._meta.local_concrete_fields if f is not pk_field and not getattr(f, "generated", False)]


@cache
def _read_fields(model: type[Model]) -> "list[Field[Any, Any]]":
    return list(model._meta.concrete_fields)


@cache
def _converters(model: type[Model], vendor: str) -> list[tuple[int, list[Callable[..., Any]]]]:
    """Per column, the database's converters and then the field's, as the ORM applies them;
    only columns that have any."""
    found = []
    for index, field in enumerate(_read_fields(model)):
        column = field.cached_col  # type: ignore[attr-defined]
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if converters:
            found.append((index, converters))
    return found
