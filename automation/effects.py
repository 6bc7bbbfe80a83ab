"""Applied-effect keys: the record, in the effect's own transaction, that an event's effect happened.

A key is ``<event id>:<effect>``; its unique constraint makes a second
attempt at the same effect (a replayed or redelivered event, a racing
handler) fail inside its transaction, so effects happen exactly once.
An :class:`EffectLedger` holds the keys a batch of events already applied,
read in one query, and learns each key recorded while the batch runs, so an
event delivered twice in one batch is applied once.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import AppliedEffect

EFFECTS = Counter("frontdesk_automation_effects_total", "Automation effects applied", ["kind"])


def _event_part(key: str) -> str:
    return key.partition(":")[0]


class EffectLedger:
    """The applied effect keys of some events, as of now in this transaction."""

    def __init__(self, applied: Iterable[str] = ()) -> None:
        self._applied = set(applied)

    @classmethod
    async def load(cls, session: AsyncSession, event_ids: Iterable[str]) -> EffectLedger:
        """Every key already applied for ``event_ids``, in one query."""
        ids = sorted(set(event_ids))
        if not ids:
            return cls()
        return cls((await session.scalars(select(AppliedEffect.key).where(AppliedEffect.event_id.in_(ids)))).all())

    def applied(self, key: str) -> bool:
        return key in self._applied

    def record(self, session: AsyncSession, key: str, kind: str, ticket_id: int) -> None:
        """Add the key to the caller's transaction, with the effect it guards."""
        session.add(AppliedEffect(key=key, event_id=_event_part(key), kind=kind, ticket_id=ticket_id))
        self._applied.add(key)
        EFFECTS.labels(kind).inc()
