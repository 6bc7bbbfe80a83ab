"""A stand-in automation handler for the Kafka transport tests.

It does what the real handler promises, in miniature: one effect per
(event, action), recorded under an idempotency key in the same transaction,
so a redelivered event changes nothing.  Tickets created from
the ``poison`` source always fail, to exercise retries and dead letters.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.events import DomainEvent, TicketCreated
from frontdesk.model import AppliedEffect
from frontdesk.settings import Settings

EFFECT = "standin_ticket_received"
HANDLED_BY = "standin_handled_by"  # its ticket_id column holds the worker's pid


POISON = "poison"  # a TicketCreated from this source always fails


class PoisonEvent(RuntimeError):
    pass


def standin_handler(settings: Settings, sessions: async_sessionmaker[AsyncSession], *, cured: bool = False):
    async def handle(event: DomainEvent) -> None:
        if isinstance(event, TicketCreated) and event.source == POISON and not cured:
            raise PoisonEvent(f"event {event.id} always fails")
        async with sessions() as session, session.begin():
            key = f"{event.id}:{EFFECT}"
            if await session.get(AppliedEffect, key) is None:
                session.add(AppliedEffect(key=key, kind=EFFECT, ticket_id=event.ticket_id))
                session.add(AppliedEffect(key=f"{event.id}:{HANDLED_BY}", kind=HANDLED_BY, ticket_id=os.getpid()))

    return handle


async def effects_by_ticket(sessions: async_sessionmaker[AsyncSession]) -> dict[int, int]:
    async with sessions() as session:
        rows = (await session.execute(
            select(AppliedEffect.ticket_id).where(AppliedEffect.kind == EFFECT))).scalars().all()
    counts: dict[int, int] = {}
    for ticket_id in rows:
        counts[ticket_id] = counts.get(ticket_id, 0) + 1
    return counts


async def handling_workers(sessions: async_sessionmaker[AsyncSession]) -> set[int]:
    async with sessions() as session:
        return set((await session.execute(
            select(AppliedEffect.ticket_id).where(AppliedEffect.kind == HANDLED_BY))).scalars())


if __name__ == "__main__":
    # python tests/kafka/_kafka_standin.py: the worker process, with this handler.
    from frontdesk.background import Backoff, RetryPolicy
    from frontdesk.settings import load_settings
    from frontdesk.runtime.worker import run_worker

    sys.exit(run_worker(load_settings(), handler_factory=lambda s, db: (standin_handler(s, db), ()),
                        policy=RetryPolicy(max_attempts=3, backoff=Backoff(base=0.05, cap=0.5))))

