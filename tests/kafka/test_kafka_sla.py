"""Kafka mode: the worker process scans the SLA timers, fires due soon and overdue once each across a
SIGKILL and restart, and notifies the owner and the owner's team through the event stream."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from _kafka_support import WorkerProcess, wait_for, worker_environment
from frontdesk.automation.relay import OutboxRelay
from frontdesk.model import (
    Contact,
    Delivery,
    OutboxEvent,
    Pipeline,
    SlaClock,
    Status,
    Team,
    TeamMembership,
    Ticket,
    User,
    utcnow,
)
from frontdesk.tickets.access import Principal
from frontdesk.tickets.sla.business_time import ALWAYS
from frontdesk.tickets.sla.clocks import new_clock, reschedule
from frontdesk.tickets.sla.settings import Target
from frontdesk.tickets.sla.store import save_settings

pytestmark = pytest.mark.kafka


async def fired(sessions) -> list[str]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return list((await session.scalars(select(OutboxEvent.type).where(
            OutboxEvent.type.in_(["sla.due_soon", "sla.overdue"])).order_by(OutboxEvent.id))).all())


async def notified(sessions) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return sorted((await session.execute(select(Delivery.recipient, func.count()).where(
            Delivery.kind == "notification").group_by(Delivery.recipient))).all())


async def test_the_worker_fires_sla_timers_once_across_a_kill(settings, sessions, topics, tmp_path):  # type: ignore[no-untyped-def]
    if settings.is_sqlite:
        pytest.skip("two processes on one SQLite file: the embedded tests cover the scanner there (suite time)")
    now = utcnow()
    async with sessions.begin() as session:
        saved = await save_settings(session, Principal(user_id=None, role="super_admin"), {"enabled": True})
        team = Team(name="Tier 1")
        session.add(team)
        await session.flush()
        alice = User(name="Alice", email="alice@acme.test", primary_team_id=team.id)
        bob = User(name="Bob", email="bob@acme.test", primary_team_id=team.id)
        contact = Contact(email="ada@example.com")
        session.add_all([alice, bob, contact])
        await session.flush()
        session.add_all([TeamMembership(user_id=alice.id, team_id=team.id),
                         TeamMembership(user_id=bob.id, team_id=team.id)])
        status = await session.scalar(select(Status).join(Pipeline).where(Status.internal_name == "new"))
        ticket = Ticket(name="Printer", pipeline_id=status.pipeline_id, status_id=status.id, source_channel="email",
                        contact_id=contact.id, owner_id=alice.id)
        session.add(ticket)
        await session.flush()
        # Due soon already passed; due in ten minutes.
        clock = new_clock(ticket.id, "first_response", Target(60, 30), now - timedelta(minutes=50), paused=False)
        reschedule(clock, ALWAYS, now)
        clock.settings_version = saved.version  # computed here, not by the background recompute
        session.add(clock)

    worker = WorkerProcess([sys.executable, "-m", "frontdesk.runtime.worker"], worker_environment(settings, topics),
                           tmp_path / "worker.log")
    relay = OutboxRelay(sessions, topics.bootstrap, topic=topics.events)
    relay.start()
    worker.start()
    try:
        await wait_for(lambda: _equals(fired(sessions), ["sla.due_soon"]), timeout=120,
                       what="the worker to fire due soon")
        worker.kill()
        # The due time passes while the worker is down (as if ten minutes went by).
        async with sessions.begin() as session:
            await session.execute(update(SlaClock).where(SlaClock.id == clock.id).values(
                due_at=utcnow() - timedelta(seconds=1), next_timer_at=utcnow() - timedelta(seconds=1)))
        await asyncio.sleep(0.5)
        assert await fired(sessions) == ["sla.due_soon"]
        worker.start()
        await wait_for(lambda: _equals(fired(sessions), ["sla.due_soon", "sla.overdue"]), timeout=120,
                       what="the restarted worker to catch up on overdue")
        await wait_for(lambda: _equals(notified(sessions), [("alice@acme.test", 2), ("bob@acme.test", 1)]),
                       timeout=120, what="the owner and the owner's team to be notified")
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
        await relay.stop()
    assert await fired(sessions) == ["sla.due_soon", "sla.overdue"]


async def _equals(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return (await value) == expected
