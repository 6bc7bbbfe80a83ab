"""Counting a ticket query from ``ticket_counts`` when it only tests the columns that table keeps.

A default view's count (and a list's total filtered on pipeline, status,
owner or team only) is the same WHERE clause, on the pre-grouped counts the
database keeps (``frontdesk.model.tickets.TicketCount``), summed over a few
rows instead of counted over every ticket.  The clause is rewritten column
by column, so the access rule (``tickets.access.ticket_visibility``) and
the views' criteria are applied exactly as written, not restated.  A clause
that tests anything else (a custom property, a date, the search box) has no
rewrite and is counted on ``tickets``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Column, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, Null
from sqlalchemy.sql.visitors import replacement_traverse

from frontdesk.model import Ticket, TicketCount


class _Unkept(Exception):
    """The clause tests a ticket column ``ticket_counts`` does not keep."""


def _kept_columns() -> dict[str, Any]:
    tickets, counts = Ticket.__table__.c, TicketCount.__table__.c
    return {
        tickets.pipeline_id.key: counts.pipeline_id,
        tickets.status_id.key: counts.status_id,
        # Stored as 0 for "none" (a key column cannot be NULL): NULL again here.
        tickets.owner_id.key: func.nullif(counts.owner_id, 0),
        tickets.team_id.key: func.nullif(counts.team_id, 0),
        tickets.is_spam.key: counts.is_spam,
        tickets.last_message_outbound.key: counts.last_message_outbound,
    }


def _is_live(element: Any) -> bool:
    """``tickets.deleted_at IS NULL``: true of every counted ticket (only live ones are)."""
    return (isinstance(element, BinaryExpression) and element.operator is operators.is_
            and isinstance(element.left, Column) and element.left.table is Ticket.__table__
            and element.left.key == "deleted_at" and isinstance(element.right, Null))


def counts_clause(clause: ColumnElement[bool]) -> ColumnElement[bool] | None:
    """``clause`` (a WHERE clause on ``tickets``) as a WHERE clause on ``ticket_counts``, or None if it has none."""
    kept = _kept_columns()
    table = Ticket.__table__

    def replace(element: Any) -> Any:
        if _is_live(element):
            return true()
        if isinstance(element, Column) and element.table is table:
            if element.key not in kept:
                raise _Unkept(element.key)
            return kept[element.key]
        return None

    try:
        return replacement_traverse(clause, {}, replace)
    except _Unkept:
        return None


async def kept_count(session: AsyncSession, clause: ColumnElement[bool]) -> int | None:
    """How many live tickets match ``clause``, from ``ticket_counts``; None when it must be counted on tickets."""
    counted = counts_clause(clause)
    if counted is None:
        return None
    return int(await session.scalar(select(func.coalesce(func.sum(TicketCount.n), 0)).where(counted)) or 0)
