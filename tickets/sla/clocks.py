"""One SLA clock's transitions: start, pause, resume, stop, reschedule, and the timer moments it fires.

Pure: each function changes the given ``SlaClock`` row in memory and does no
I/O; ``tickets.sla.tracking`` decides which clocks an event touches.  The
timer scanner applies :func:`timer_transition`, the same rule as SQL, to
many clocks in one statement.  All due times are business
time after the start, minus the clock's pauses, on the schedule given.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, null

from frontdesk.model.sla import DUE_SOON, MET, MISSED, ON_TRACK, OVERDUE, SlaClock
from frontdesk.tickets.sla.business_time import Pause, Schedule, add_business_time, business_time_between
from frontdesk.tickets.sla.settings import Target


def pauses_of(clock: SlaClock) -> list[Pause]:
    return [(datetime.fromisoformat(low), None if high is None else datetime.fromisoformat(high))
            for low, high in clock.pauses or []]


def is_paused(clock: SlaClock) -> bool:
    return bool(clock.pauses) and clock.pauses[-1][1] is None


def new_clock(ticket_id: int, kind: str, target: Target, at: datetime, *, paused: bool) -> SlaClock:
    """A clock of ``kind`` started at ``at``; paused from the start when the ticket is in a pause status."""
    return SlaClock(ticket_id=ticket_id, kind=kind, state=ON_TRACK, started_at=at, target_minutes=target.minutes,
                    due_soon_minutes=target.due_soon_minutes, pauses=[[at.isoformat(), None]] if paused else [])


def pause(clock: SlaClock, at: datetime) -> None:
    if not is_paused(clock):
        clock.pauses = [*(clock.pauses or []), [at.isoformat(), None]]


def resume(clock: SlaClock, at: datetime) -> None:
    if is_paused(clock):
        # A pause cannot end before it began (events of one ticket arrive in order; this is a guard).
        low = clock.pauses[-1][0]
        clock.pauses = [*clock.pauses[:-1], [low, max(at, datetime.fromisoformat(low)).isoformat()]]


def retarget(clock: SlaClock, target: Target) -> None:
    clock.target_minutes, clock.due_soon_minutes = target.minutes, target.due_soon_minutes


def reschedule(clock: SlaClock, schedule: Schedule, now: datetime) -> None:
    """Recompute a running clock's due times, and its state for ``now``.

    A state already reached stays only while it still holds (a later due
    time takes an overdue clock back); what became due is left for the timer
    scanner to fire, through ``next_timer_at``.
    """
    pauses = pauses_of(clock)
    target = timedelta(minutes=clock.target_minutes)
    clock.due_at = add_business_time(schedule, clock.started_at, target, pauses)
    soon = timedelta(minutes=clock.due_soon_minutes)
    clock.due_soon_at = None
    if clock.due_at is not None and clock.due_soon_minutes > 0:
        clock.due_soon_at = add_business_time(schedule, clock.started_at, max(target - soon, timedelta()), pauses)
    if clock.due_at is None:  # paused: nothing can fire until it resumes
        clock.next_timer_at = None
        return
    if clock.state == OVERDUE and now < clock.due_at:
        clock.state = DUE_SOON
    if clock.state == DUE_SOON and (clock.due_soon_at is None or now < clock.due_soon_at):
        clock.state = ON_TRACK
    clock.next_timer_at = _next_timer(clock)


def _next_timer(clock: SlaClock) -> datetime | None:
    if clock.state == ON_TRACK and clock.due_soon_at is not None:
        return clock.due_soon_at
    if clock.state in (ON_TRACK, DUE_SOON):
        return clock.due_at
    return None


def stop(clock: SlaClock, schedule: Schedule, at: datetime) -> None:
    """Stop the clock at ``at``: met when the business time it took is within its target, else missed."""
    resume(clock, at)
    taken = business_time_between(schedule, clock.started_at, at, pauses_of(clock))
    clock.stopped_at = at
    clock.business_seconds = int(taken.total_seconds())
    clock.state = MET if taken <= timedelta(minutes=clock.target_minutes) else MISSED
    clock.next_timer_at = None


def timer_transition(now: datetime) -> dict[str, Any]:
    """The column changes of a clock whose timer moment passed at ``now``, as SQL, for a set-based scan.

    Only running, unpaused clocks that have not fired their next moment
    carry ``next_timer_at``: past the due time such a clock becomes overdue
    (also when the due-soon moment passed unseen: only overdue fires) and
    has no next moment; otherwise it becomes due soon and waits for its due time.
    """
    overdue = SlaClock.due_at <= now
    return {"state": case((overdue, OVERDUE), else_=DUE_SOON),
            "next_timer_at": case((overdue, null()), else_=SlaClock.due_at)}
