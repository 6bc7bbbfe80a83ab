"""Primary keys reserved before the rows are written, so a batch can refer to rows it has not inserted yet.

A batch of mail decides, mail by mail, where each one goes; a reply may
thread onto a ticket that an earlier mail of the same batch created.  With
the ids known up front, every row of the batch can then be inserted at
the end, one statement per table.  PostgreSQL hands them out from the
table's sequence (safe with any number of writers; an id not used is a gap,
as after a rollback).  SQLite continues from the table's largest id, which
is what SQLite itself would assign: safe because the batch holds the
database's one write turn, and another process that wrote meanwhile makes
this transaction's first write fail instead of reuse an id.
"""

from __future__ import annotations

from collections import deque
from typing import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


class ReservedIds:
    """The ids reserved for one table, handed out in ascending order."""

    def __init__(self, table: str, ids: list[int], *, dialect: str, next_after: int | None = None) -> None:
        self.table, self.dialect = table, dialect
        self._ids = deque(ids)
        self._next_after = next_after  # SQLite: the counter goes on past the reserve

    async def take(self, session: AsyncSession) -> int:
        if self._ids:
            return self._ids.popleft()
        if self._next_after is not None:
            self._next_after += 1
            return self._next_after
        # More than reserved (should not happen): one more from the sequence,
        # on the connection, so pending rows are not flushed by it.
        connection = await session.connection()
        return int(await connection.scalar(text(f"SELECT nextval(pg_get_serial_sequence('{self.table}', 'id'))")))


async def reserve_ids(session: AsyncSession, wanted: Mapping[str, int]) -> dict[str, ReservedIds]:
    """``wanted[table]`` ids for each table (fixed table names, never user input), in one round trip."""
    tables = list(wanted)
    dialect = session.get_bind().dialect.name
    connection = await session.connection()  # not session.execute: nothing pending is flushed by this
    if dialect == "postgresql":
        columns = ", ".join(
            f"(SELECT coalesce(array_agg(nextval(pg_get_serial_sequence('{table}', 'id')) ORDER BY n), '{{}}') "
            f"FROM generate_series(1, {int(wanted[table])}) AS n)" for table in tables)
        row = (await connection.execute(text(f"SELECT {columns}"))).one()
        return {table: ReservedIds(table, list(ids), dialect=dialect) for table, ids in zip(tables, row)}
    columns = ", ".join(f"(SELECT coalesce(max(id), 0) FROM {table})" for table in tables)
    row = (await connection.execute(text(f"SELECT {columns}"))).one()
    return {table: ReservedIds(table, [], dialect=dialect, next_after=int(largest)) for table, largest in zip(tables, row)}
