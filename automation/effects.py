"""Applied-effect keys: the record, in the effect's own transaction, that an event's effect happened.

A key is ``<event id>:<effect>``; its unique constraint makes a second
attempt at the same effect (a replayed or redelivered event, a racing
handler) fail inside its transaction, so effects happen exactly once.
"""

from __future__ import annotations

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import AppliedEffect

EFFECTS = Counter("frontdesk_automation_effects_total", "Automation effects applied", ["kind"])


async def already_applied(session: AsyncSession, keys: list[str]) -> set[str]:
    """Which of ``keys`` were applied already."""
    if not keys:
        return set()
    return set((await session.scalars(select(AppliedEffect.key).where(AppliedEffect.key.in_(keys)))).all())


def record_effect(session: AsyncSession, key: str, kind: str, ticket_id: int) -> None:
    session.add(AppliedEffect(key=key, kind=kind, ticket_id=ticket_id))
    EFFECTS.labels(kind).inc()
