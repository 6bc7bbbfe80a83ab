"""Reading and changing the stored SLA settings; a change recomputes every running clock in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
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
    return check_settings(document, team_key=team_id_key({int(k) for k in document.get("team_hours", {})}))


async def pause_status_ids(session: AsyncSession, settings: SlaSettings) -> set[int]:
    """The statuses that stop the clocks: the configured ones, by default every "Waiting on contact"."""
    if settings.pause_status_ids is not None:
        return set(settings.pause_status_ids)
    return set((await session.scalars(select(Status.id).where(Status.internal_name == WAITING_ON_CONTACT))).all())


def ticket_values(ticket: Ticket) -> dict[str, Any]:
    """The properties a target may vary by."""
    return {"priority": ticket.priority, "team": ticket.team_id, "source": ticket.source_channel,
            "pipeline": ticket.pipeline_id}


async def reschedule_running(session: AsyncSession, settings: SlaSettings, now: datetime) -> int:
    """Give every running clock its current target and due times; drop those no target applies to any more."""
    rows = (await session.execute(select(SlaClock, Ticket).join(Ticket, Ticket.id == SlaClock.ticket_id)
                                  .where(SlaClock.stopped_at.is_(None)))).all()
    dropped = []
    for clock, ticket in rows:
        target = settings.target_for(clock.kind, ticket_values(ticket))
        if target is None:
            dropped.append(clock.id)
            continue
        clocks.retarget(clock, target)
        clocks.reschedule(clock, settings.schedule_for(ticket.team_id), now)
    if dropped:
        await session.execute(delete(SlaClock).where(SlaClock.id.in_(dropped)))
    return len(rows) - len(dropped)


async def save_settings(session: AsyncSession, principal: Principal, document: Any,
                        *, now: datetime | None = None) -> SlaSettings:
    """Check and store new settings, audited, recompute the running clocks and record ``sla.settings_changed``."""
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
    record_audit(session, principal, "sla.settings_updated", "sla_settings", SETTINGS_ID,
                 before=dict(before), after=dict(settings.document))
    recomputed = await reschedule_running(session, settings, now or utcnow())
    await record_events(session, SlaSettingsChanged(ticket_id=None, actor=Actor.agent(principal.user_id),
                                                    enabled=settings.enabled, clocks_recomputed=recomputed))
    return settings
