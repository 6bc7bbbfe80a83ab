"""Reading and changing the stored SLA settings, and bringing running clocks up to date with them.

A change only bumps the settings' version: recomputing every running clock
in the PUT's transaction took minutes and held their locks at 200,000
clocks (docs/sla.md).  Clocks behind the current version are recomputed in
batches by :func:`recompute_stale_clocks`, which the timer scanner runs.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, SlaSettingsChanged
from frontdesk.model import SlaClock, SlaSettingsRow, Status, Team, Ticket, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.access import Principal
from frontdesk.tickets.audit import record_audit
from frontdesk.tickets.sla import clocks
from frontdesk.tickets.sla.settings import SlaSettings, check_settings, settings_invalid, team_id_key

SETTINGS_ID = 1
WAITING_ON_CONTACT = "waiting_on_contact"


async def load_settings(session: AsyncSession) -> SlaSettings:
    row = await session.get(SlaSettingsRow, SETTINGS_ID)
    document: dict[str, Any] = dict(row.document) if row is not None else {}
    # Stored settings were checked when saved; a team deleted since keeps its entry harmlessly.
    settings = check_settings(document, team_key=team_id_key({int(k) for k in document.get("team_hours", {})}))
    return dataclasses.replace(settings, version=row.version if row is not None else 0)


async def transaction_settings(session: AsyncSession) -> SlaSettings:
    """:func:`load_settings`, read once per session: the automation handler tracks a batch of events in one.

    The handler's session is one transaction that never saves settings, so
    what it read first stays what it sees.
    """
    cached = session.info.get("sla_settings")
    if cached is None:
        cached = session.info["sla_settings"] = await load_settings(session)
    return cached


def current_version() -> Any:
    """The stored settings' version as a SQL expression (0 before any are saved), for clock queries."""
    stored = select(SlaSettingsRow.version).where(SlaSettingsRow.id == SETTINGS_ID).scalar_subquery()
    return func.coalesce(stored, 0)


async def pause_status_ids(session: AsyncSession, settings: SlaSettings) -> set[int]:
    """The statuses that stop the clocks: the configured ones, by default every "Waiting on contact"."""
    if settings.pause_status_ids is not None:
        return set(settings.pause_status_ids)
    return set((await session.scalars(select(Status.id).where(Status.internal_name == WAITING_ON_CONTACT))).all())


def ticket_values(ticket: Ticket) -> dict[str, Any]:
    """The properties a target may vary by."""
    return {"priority": ticket.priority, "team": ticket.team_id, "source": ticket.source_channel,
            "pipeline": ticket.pipeline_id}


async def recompute_stale_clocks(session: AsyncSession, limit: int, *, now: datetime | None = None) -> int:
    """Give up to ``limit`` running clocks behind the settings' version their current target and due times.

    Soonest moment first; those no target applies to any more are dropped.
    Locked with SKIP LOCKED, so the timer scanner, ticket events and another
    recompute never wait on (or redo) the same clocks.  Returns how many it took.
    """
    rows = (await session.execute(
        select(SlaClock, Ticket).join(Ticket, Ticket.id == SlaClock.ticket_id)
        .where(SlaClock.stopped_at.is_(None), SlaClock.settings_version < current_version())
        .order_by(SlaClock.settings_version, SlaClock.next_timer_at.asc().nulls_last())
        .limit(limit).with_for_update(of=SlaClock, skip_locked=True))).all()
    if not rows:  # the common case, through the partial index: parse no settings
        return 0
    # Read after the clocks: settings saved in between are newer, and the clocks are stamped with what was used.
    settings = await load_settings(session)
    dropped = []
    for clock, ticket in rows:
        target = settings.target_for(clock.kind, ticket_values(ticket))
        if target is None:
            dropped.append(clock.id)
            continue
        clocks.retarget(clock, target)
        clocks.reschedule(clock, settings.schedule_for(ticket.team_id), now or utcnow())
        clock.settings_version = settings.version
    if dropped:
        await session.execute(delete(SlaClock).where(SlaClock.id.in_(dropped)))
    return len(rows)


async def save_settings(session: AsyncSession, principal: Principal, document: Any) -> SlaSettings:
    """Check and store new settings, audited, as a new version, and record ``sla.settings_changed``.

    The running clocks are recomputed afterwards, in the background.
    """
    team_ids = set((await session.scalars(select(Team.id))).all())
    settings = check_settings(document, team_key=team_id_key(team_ids))
    if settings.pause_status_ids:
        known = set((await session.scalars(select(Status.id).where(Status.id.in_(settings.pause_status_ids)))).all())
        if missing := sorted(set(settings.pause_status_ids) - known):
            raise settings_invalid("pause_status_ids", f"pause_status_ids: no status {', '.join(map(str, missing))}")
    row = await session.get(SlaSettingsRow, SETTINGS_ID)
    before = (await load_settings(session)).document
    if row is None:
        row = SlaSettingsRow(id=SETTINGS_ID)
        session.add(row)
    row.document = dict(settings.document)
    row.version = (row.version or 0) + 1
    record_audit(session, principal, "sla.settings_updated", "sla_settings", SETTINGS_ID,
                 before=dict(before), after=dict(settings.document))
    running = await session.scalar(select(func.count()).select_from(SlaClock).where(SlaClock.stopped_at.is_(None)))
    await record_events(session, SlaSettingsChanged(ticket_id=None, actor=Actor.agent(principal.user_id),
                                                    enabled=settings.enabled, settings_version=row.version,
                                                    clocks_to_recompute=running or 0))
    return dataclasses.replace(settings, version=row.version)
