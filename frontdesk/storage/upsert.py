"""``INSERT ... ON CONFLICT DO NOTHING`` for whichever backend a session uses.

The insert-or-get rule for rows that concurrent writers may both create
(a contact for a new address, a ticket's participant or association): the
unique constraint decides, the loser's insert does nothing, and it reads
the winner's row back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing`` for whichever backend the session uses."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
