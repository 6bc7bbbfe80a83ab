"""SLA timers: due soon and overdue fire once each, across a scanner restart and with two scanners at once,
after a settings change only at the recomputed moments, and the owner / the owner's team get one internal
email each, however often the event is handled."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from _automation_world import make_team, make_ticket
from frontdesk.automation.handlers import handle_event
from frontdesk.automation.sla_timers import SlaTimerLoop, fire_due_timers
from frontdesk.events import DomainEvent
from frontdesk.model import Delivery, OutboxEvent, SlaClock, utcnow
from frontdesk.tickets.access import Principal
from frontdesk.tickets.sla.business_time import ALWAYS
from frontdesk.tickets.sla.clocks import new_clock, reschedule
from frontdesk.tickets.sla.settings import Target
from frontdesk.tickets.sla.store import save_settings

ROOT = Principal(user_id=None, role="super_admin", label="test")


async def running_clocks(sessions, ticket_ids: list[int], *, started_ago: timedelta, minutes: int = 60,  # type: ignore[no-untyped-def]
                         due_soon: int = 30) -> list[int]:
    """A first-response clock per ticket, started ``started_ago``, on a 24/7 schedule."""
    now = utcnow()
    async with sessions.begin() as session:
        saved = await save_settings(session, ROOT, {"enabled": True, "targets": {
            "first_response": {"minutes": minutes, "due_soon_minutes": due_soon}}})
        made = []
        for ticket_id in ticket_ids:
            clock = new_clock(ticket_id, "first_response", Target(minutes, due_soon), now - started_ago, paused=False)
            reschedule(clock, ALWAYS, now)
            clock.settings_version = saved.version  # computed here, as the settings say
            session.add(clock)
            made.append(clock)
        await session.flush()
        return [c.id for c in made]


async def fired_events(sessions) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxEvent.body).where(OutboxEvent.type.like("sla.%"))
                                      .where(OutboxEvent.type != "sla.settings_changed"))).all()
    return sorted((body["type"], body["payload"]["clock_id"]) for body in rows)


async def scan_until_something_fired(sessions) -> None:  # type: ignore[no-untyped-def]
    """Run a scanner loop until an SLA event is in the outbox (or four seconds pass)."""
    loop = SlaTimerLoop(sessions, poll_interval=0.05)
    await loop.start()
    for _ in range(200):
        if await fired_events(sessions):
            break
        await asyncio.sleep(0.02)
    await loop.stop()


async def test_due_soon_then_overdue_fire_once_each_across_a_restart(sessions) -> None:  # type: ignore[no-untyped-def]
    ticket_id = await make_ticket(sessions)
    [clock_id] = await running_clocks(sessions, [ticket_id], started_ago=timedelta(minutes=31))

    # A scanner that starts late catches up on what passed while it was down, once.
    await scan_until_something_fired(sessions)
    assert await fired_events(sessions) == [("sla.due_soon", clock_id)]
    second = SlaTimerLoop(sessions, poll_interval=0.05)
    await second.start()
    await asyncio.sleep(0.2)
    await second.stop()
    assert await fired_events(sessions) == [("sla.due_soon", clock_id)]

    # Past the due time: overdue, once, however many scans.
    later = utcnow() + timedelta(minutes=30)
    assert await fire_due_timers(sessions, now=later) == 1
    assert await fire_due_timers(sessions, now=later + timedelta(hours=1)) == 0
    assert await fired_events(sessions) == [("sla.due_soon", clock_id), ("sla.overdue", clock_id)]
    async with sessions() as session:
        clock = await session.get(SlaClock, clock_id)
    assert clock.state == "overdue" and clock.next_timer_at is None


async def test_two_scanners_never_fire_a_clock_twice(sessions) -> None:  # type: ignore[no-untyped-def]
    tickets = [await make_ticket(sessions, message_id=f"m{n}@example.com") for n in range(12)]
    clock_ids = await running_clocks(sessions, tickets, started_ago=timedelta(minutes=45))
    counts = await asyncio.gather(*(fire_due_timers(sessions, batch=3) for _ in range(2)))
    assert sum(counts) == 12
    assert await fired_events(sessions) == sorted(("sla.due_soon", c) for c in clock_ids)


async def test_the_owner_hears_of_due_soon_and_the_owners_team_of_overdue_once(services, sessions) -> None:  # type: ignore[no-untyped-def]
    _, (alice, bob) = await make_team(sessions, "Tier 1", [("Alice", "alice@acme.test"), ("Bob", "bob@acme.test")])
    ticket_id = await make_ticket(sessions, owner_id=alice)
    await running_clocks(sessions, [ticket_id], started_ago=timedelta(minutes=31))
    await fire_due_timers(sessions)
    await fire_due_timers(sessions, now=utcnow() + timedelta(hours=1))
    async with sessions() as session:
        bodies = (await session.scalars(select(OutboxEvent.body).where(OutboxEvent.type.in_(
            ["sla.due_soon", "sla.overdue"])).order_by(OutboxEvent.id))).all()
    for _ in range(2):  # a redelivered event sends nothing again
        for body in bodies:
            await handle_event(services, DomainEvent.from_dict(body))
    async with sessions() as session:
        sent = (await session.execute(select(Delivery.recipient, func.count()).where(Delivery.kind == "notification")
                                      .group_by(Delivery.recipient))).all()
    # Alice (the owner) twice: due soon, and overdue as a member of her team; Bob only for overdue.
    assert sorted(sent) == [("alice@acme.test", 2), ("bob@acme.test", 1)]


async def test_a_settings_change_is_recomputed_by_the_scanner_and_fires_at_the_new_moment(sessions) -> None:  # type: ignore[no-untyped-def]
    ticket_id = await make_ticket(sessions)
    [clock_id] = await running_clocks(sessions, [ticket_id], started_ago=timedelta(minutes=20))
    async with sessions() as session:
        before = await session.get(SlaClock, clock_id)
    assert await fire_due_timers(sessions) == 0  # due soon in 10 minutes, due in 40

    async with sessions.begin() as session:
        saved = await save_settings(session, ROOT, {"enabled": True, "targets": {
            "first_response": {"minutes": 15, "due_soon_minutes": 5}}})
    async with sessions() as session:
        clock = await session.get(SlaClock, clock_id)
        [changed] = (await session.scalars(select(OutboxEvent.body).where(OutboxEvent.type == "sla.settings_changed")
                                           .order_by(OutboxEvent.id.desc()).limit(1))).all()
    # The change recomputes nothing in its own transaction, and says what is left to do.
    assert (clock.due_at, clock.settings_version) == (before.due_at, saved.version - 1)
    assert changed["payload"] == {"enabled": True, "settings_version": saved.version, "clocks_to_recompute": 1}
    # A clock behind the settings never fires at its old moment (due soon, ten minutes from now).
    assert await fire_due_timers(sessions, now=utcnow() + timedelta(minutes=12)) == 0

    await scan_until_something_fired(sessions)
    # The scanner recomputed it: 15 minutes from its start passed five minutes ago, so overdue, at once, once.
    assert await fired_events(sessions) == [("sla.overdue", clock_id)]
    async with sessions() as session:
        clock = await session.get(SlaClock, clock_id)
    assert clock.due_at == clock.started_at + timedelta(minutes=15)
    assert (clock.state, clock.target_minutes, clock.settings_version) == ("overdue", 15, saved.version)
