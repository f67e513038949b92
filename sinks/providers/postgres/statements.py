"""The ``postgres`` provider's SQL, built from identifiers and placeholders only, with ``xmin``."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from psycopg import sql

__all__ = [
    "VERSION_ALIAS",
    "delete_row_sql",
    "find_sql",
    "get_sql",
    "insert_row_sql",
    "page_sql",
    "update_row_sql",
    "version_sql",
]

#: The name the row version (``xmin::text``) is selected as; never a column of the record.
VERSION_ALIAS = "_cdcsync_xmin"


def _target(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _row() -> sql.Composed:
    """The select list of a record: every column and the row version."""
    return sql.SQL("*, xmin::text AS {}").format(sql.Identifier(VERSION_ALIAS))


def _by_id(id_column: str, *, check_version: bool) -> sql.Composed:
    where = sql.SQL("{} = %s").format(sql.Identifier(id_column))
    if check_version:
        return sql.SQL("{} AND xmin::text = %s").format(where)
    return where


def get_sql(schema: str, table: str, id_column: str) -> sql.Composed:
    """``SELECT *, xmin::text AS _cdcsync_xmin FROM … WHERE id = %s``."""
    return sql.SQL("SELECT {} FROM {} WHERE {}").format(
        _row(), _target(schema, table), _by_id(id_column, check_version=False)
    )


def version_sql(schema: str, table: str, id_column: str) -> sql.Composed:
    """``SELECT xmin::text AS _cdcsync_xmin FROM … WHERE id = %s``: does it exist, which version."""
    return sql.SQL("SELECT xmin::text AS {} FROM {} WHERE {}").format(
        sql.Identifier(VERSION_ALIAS),
        _target(schema, table),
        _by_id(id_column, check_version=False),
    )


def find_sql(
    schema: str, table: str, id_column: str, keys: Sequence[str], nulls: Collection[str] = ()
) -> sql.Composed:
    """Rows whose ``keys`` equal ``%s`` each (``IS NULL`` for ``nulls``), at most two."""
    if not keys:
        raise ValueError("find needs at least one key column")
    conditions = [
        sql.SQL("{} IS NULL" if key in nulls else "{} = %s").format(sql.Identifier(key))
        for key in keys
    ]
    return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 2").format(
        _row(), _target(schema, table), sql.SQL(" AND ").join(conditions), sql.Identifier(id_column)
    )


def insert_row_sql(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    """``INSERT … (cols) VALUES (%s, …) RETURNING *, xmin`` (``DEFAULT VALUES`` for none)."""
    if not columns:
        return sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}").format(
            _target(schema, table), _row()
        )
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        _target(schema, table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.Placeholder() for _ in columns),
        _row(),
    )


def update_row_sql(
    schema: str, table: str, id_column: str, columns: Sequence[str], *, check_version: bool
) -> sql.Composed:
    """``UPDATE … SET c = %s, … WHERE id = %s [AND xmin::text = %s] RETURNING *, xmin``."""
    if not columns:
        raise ValueError("an UPDATE needs at least one column")
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("UPDATE {} SET {} WHERE {} RETURNING {}").format(
        _target(schema, table), assignments, _by_id(id_column, check_version=check_version), _row()
    )


def delete_row_sql(schema: str, table: str, id_column: str, *, check_version: bool) -> sql.Composed:
    """``DELETE FROM … WHERE id = %s [AND xmin::text = %s]``."""
    return sql.SQL("DELETE FROM {} WHERE {}").format(
        _target(schema, table), _by_id(id_column, check_version=check_version)
    )


def page_sql(schema: str, table: str, id_column: str, *, after: bool) -> sql.Composed:
    """One page in id order: ``[WHERE id > %s] ORDER BY id LIMIT %s`` (keyset pagination)."""
    where = sql.SQL("WHERE {} > %s ").format(sql.Identifier(id_column)) if after else sql.SQL("")
    return sql.SQL("SELECT {} FROM {} {}ORDER BY {} LIMIT %s").format(
        _row(), _target(schema, table), where, sql.Identifier(id_column)
    )
