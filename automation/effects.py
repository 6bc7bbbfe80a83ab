"""Applied-effect keys: the record, in the effect's own transaction, that an event's effect happened.

A key is ``<event id>:<effect>``; its unique constraint makes a second
attempt at the same effect (a replayed or redelivered event, a racing
handler) fail inside its transaction, so effects happen exactly once.
An :class:`EffectLedger` holds the keys a batch of events already applied,
read in one query, and learns each key recorded while the batch runs, so an
event delivered twice in one batch is applied once; the keys it records
are inserted in one statement by :meth:`EffectLedger.write`, before the
batch's transaction commits.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import AppliedEffect, utcnow

_INSERT = insert(AppliedEffect.__table__)
EFFECTS = Counter("frontdesk_automation_effects_total", "Automation effects applied", ["kind"])


def _event_part(key: str) -> str:
    return key.partition(":")[0]


class EffectLedger:
    """The applied effect keys of some events, as of now in this transaction."""

    def __init__(self, applied: Iterable[str] = ()) -> None:
        self._applied = set(applied)
        self._recorded: list[dict[str, object]] = []

    @classmethod
    async def load(cls, session: AsyncSession, event_ids: Iterable[str]) -> EffectLedger:
        """Every key already applied for ``event_ids``, in one query."""
        ids = sorted(set(event_ids))
        if not ids:
            return cls()
        return cls((await session.scalars(select(AppliedEffect.key).where(AppliedEffect.event_id.in_(ids)))).all())

    def applied(self, key: str) -> bool:
        return key in self._applied

    def record(self, key: str, kind: str, ticket_id: int) -> None:
        """Note the key, with the effect it guards; :meth:`write` adds it to the transaction."""
        self._recorded.append({"key": key, "event_id": _event_part(key), "kind": kind, "ticket_id": ticket_id,
                               "created_at": utcnow()})
        self._applied.add(key)
        EFFECTS.labels(kind).inc()

    async def write(self, session: AsyncSession) -> None:
        """Insert the keys recorded so far in the caller's transaction (a key applied before fails it there)."""
        if self._recorded:
            await session.execute(_INSERT, self._recorded)
            self._recorded = []
