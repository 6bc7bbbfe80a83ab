"""Reading SLA clocks: a ticket's clocks as shown, the ticket list's SLA filter and sort, the met/missed report.

The SQL clauses live here so the ticket list (``api.ticket_queries``) only
hooks them in.  Callers pass the visibility clause: the report counts only
tickets the caller may see.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import SlaClock, Ticket
from frontdesk.model.sla import CLOCK_STATES, MET, MISSED, RUNNING_STATES
from frontdesk.tickets.sla.settings import TARGET_KINDS

REPORT_GROUPS = {"team": Ticket.team_id, "priority": Ticket.priority, "pipeline": Ticket.pipeline_id}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def clock_json(clock: SlaClock) -> dict[str, Any]:
    return {
        "id": clock.id, "target": clock.kind, "target_minutes": clock.target_minutes, "state": clock.state,
        "started_at": _time(clock.started_at), "due_at": _time(clock.due_at),
        "due_soon_at": _time(clock.due_soon_at), "paused": bool(clock.pauses) and clock.pauses[-1][1] is None,
        "stopped_at": _time(clock.stopped_at), "business_seconds": clock.business_seconds,
    }


async def ticket_clocks(session: AsyncSession, ticket_id: int) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(SlaClock).where(SlaClock.ticket_id == ticket_id)
                                  .order_by(SlaClock.started_at, SlaClock.id))).all()
    return [clock_json(c) for c in rows]


def state_filter(state: str) -> ColumnElement[bool]:
    """Tickets with a clock in ``state`` (running states: a running clock; met / missed: any clock)."""
    assert state in CLOCK_STATES
    return exists().where(SlaClock.ticket_id == Ticket.id, SlaClock.state == state)


def next_due() -> Any:
    """The earliest due time among a ticket's running clocks (NULL when none runs), for ``sort=sla_due``."""
    return (select(func.min(SlaClock.due_at))
            .where(SlaClock.ticket_id == Ticket.id, SlaClock.stopped_at.is_(None),
                   SlaClock.state.in_(RUNNING_STATES))
            .correlate(Ticket).scalar_subquery())


def _percentile(values: list[int], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return float(ordered[int(rank) - 1])


async def sla_report(session: AsyncSession, visibility: ColumnElement[bool], start: datetime, end: datetime,
                     group_by: str | None) -> list[dict[str, Any]]:
    """Per target (and group value): clocks stopped in ``[start, end)``, met and missed, % met, median and p90."""
    group = REPORT_GROUPS[group_by] if group_by else None
    columns = [SlaClock.kind, SlaClock.state, SlaClock.business_seconds]
    statement = (select(*columns, *([group] if group is not None else []))
                 .join(Ticket, Ticket.id == SlaClock.ticket_id)
                 .where(visibility, SlaClock.state.in_((MET, MISSED)),
                        and_(SlaClock.stopped_at >= start, SlaClock.stopped_at < end)))
    found: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in (await session.execute(statement)).all():
        key = (row[0], row[3] if group is not None else None)
        entry = found.setdefault(key, {"met": 0, "missed": 0, "seconds": []})
        entry[row[1]] += 1
        entry["seconds"].append(row[2] or 0)
    report = []
    for (kind, value), entry in sorted(found.items(), key=lambda item: (TARGET_KINDS.index(item[0][0]),
                                                                          str(item[0][1]))):
        total = entry["met"] + entry["missed"]
        line: dict[str, Any] = {"target": kind, "met": entry["met"], "missed": entry["missed"],
                                "percent_met": round(100 * entry["met"] / total, 1),
                                "median_business_seconds": float(statistics.median(entry["seconds"])),
                                "p90_business_seconds": _percentile(entry["seconds"], 0.9)}
        if group_by:
            line[group_by] = value
        report.append(line)
    return report
