"""Hot ORM queries compiled once per process: the SQL the ORM makes for them, without making it per call.

Compiling a query (its lookups, joins, column list and SQL) costs more CPU than PostgreSQL
spends answering a primary-key read: a paper market order made five such reads, and compiling
them was about a fifth of its server time. ``compiled`` takes a function that builds the
queryset from its arguments and runs the statement the ORM compiled for it the first time,
with each call's values where the first call's were.

How the places are found: the first call of each shape (a ``None``, which makes ``IS NULL``,
a boolean, and the length of a list are part of the shape) builds the queryset with stand-in
values of the same types, compiles it, and finds each stand-in among the statement's
parameters. A value the ORM would transform on its way in (a date, a decimal to quantize) is
refused when the query is first compiled, not run wrong: arguments are ints and strings
(besides ``None`` and booleans). Rows come back as the ORM makes them: model instances through
``Model.from_db`` (``post_init`` receivers run) with the backend's converters applied (SQLite's
decimals, dates and booleans), or ``values_list`` rows. Only plain querysets of one model's own
columns, or ``values_list`` of its fields, are accepted.

The statement goes through the connection's execute wrappers like any other; rows lock as
``select_for_update`` asks (inside the caller's transaction, as the ORM requires). One database
(the project has one); a schema change means a new process.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesListIterable

_STAND_INS = itertools.count(1)


def _stand_in(value: Any) -> Any:
    """A value of ``value``'s type that no statement holds by chance (``None`` and booleans: themselves)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return 2_000_000_000 + next(_STAND_INS)  # (in range of a 32-bit column: the ORM drops what is not)
    if isinstance(value, str):
        return f"\x01stand-in {next(_STAND_INS)}\x01"
    raise TypeError(f"compiled queries take ints, strings, booleans and None, not {type(value).__name__}")


def _shape(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_shape(item) for item in value)
    if value is None or isinstance(value, bool):
        return value
    return type(value)


def _flat(args: tuple | list) -> list:
    return [item for arg in args for item in (arg if isinstance(arg, list | tuple) else [arg])]


class _Statement:
    """One compiled query: its SQL, where each parameter comes from, and how its rows are read."""

    def __init__(self, queryset: QuerySet, stand_ins: list[Any]):
        query = queryset.query
        if query.annotations or query.extra or query.select_related or queryset._prefetch_related_lookups:
            raise TypeError(
                "compiled queries read one model's own columns (no annotations, joins, prefetches)"
            )
        if queryset._iterable_class not in (ModelIterable, FlatValuesListIterable, ValuesListIterable):
            raise TypeError("compiled queries make model instances or values_list rows")
        self.model, self.db = queryset.model, queryset.db
        self.flat = queryset._iterable_class is FlatValuesListIterable
        compiler = query.get_compiler(using=self.db)
        self.sql, params = compiler.as_sql()
        columns = [column for column, _sql, _alias in compiler.select]
        self.fields = None
        if queryset._iterable_class is ModelIterable:
            self.fields = [field.attname for field in self.model._meta.concrete_fields]
            if [
                getattr(getattr(column, "target", None), "attname", None) for column in columns
            ] != self.fields:
                raise TypeError("compiled queries read every column of their model, in its order")
        self.converters = [
            (index, functions, expression)
            for index, (functions, expression) in compiler.get_converters(columns).items()
        ]
        # The stand-ins (ints and strings; ``None`` and booleans are part of the shape, not arguments).
        wanted = {value: index for index, value in enumerate(stand_ins) if type(value) in (int, str)}
        # Each parameter: ("arg", index of the argument it stands for) or ("const", the value it is).
        # (An int may come back wrapped, psycopg's ``Int8`` for a bigint column: an int still.)
        self.params = [
            ("arg", wanted[param]) if isinstance(param, int | str) and param in wanted else ("const", param)
            for param in params
        ]
        found = {index for kind, index in self.params if kind == "arg"}
        if found != set(wanted.values()):
            raise TypeError("compiled query: an argument is not among its statement's parameters as given")

    def run(self, values: list[Any]) -> list:
        connection = connections[self.db]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [values[ref] if kind == "arg" else ref for kind, ref in self.params])
            rows = cursor.fetchall()
        if self.converters:
            rows = [self._converted(list(row), connection) for row in rows]
        if self.fields is None:
            return [row[0] for row in rows] if self.flat else [tuple(row) for row in rows]
        return [self.model.from_db(self.db, self.fields, row) for row in rows]

    def _converted(self, row: list, connection) -> list:
        for index, functions, expression in self.converters:
            value = row[index]
            for convert in functions:
                value = convert(value, expression, connection)
            row[index] = value
        return row


def compiled(build: Callable[..., QuerySet]) -> Callable[..., list]:
    """``build(*args)`` returns a queryset; the decorated function runs its statement, compiled once per shape.

    Arguments: ints, strings, booleans, ``None``, or lists of those. Returns a list: model
    instances, ``values_list`` rows, or (``flat=True``) values.
    """
    statements: dict[tuple, _Statement] = {}

    @functools.wraps(build)
    def run(*args: Any) -> list:
        shape = tuple(_shape(arg) for arg in args)
        statement = statements.get(shape)
        if statement is None:
            stand_ins = [
                [_stand_in(i) for i in arg] if isinstance(arg, list | tuple) else _stand_in(arg)
                for arg in args
            ]
            try:
                statement = _Statement(build(*stand_ins), _flat(stand_ins))
            except (ValueError, ValidationError, EmptyResultSet) as exc:  # a field that parses its value
                raise TypeError(
                    f"compiled query {build.__qualname__}: a stand-in was refused: {exc}"
                ) from exc
            statements[shape] = statement
        return statement.run(_flat(args))

    return run
