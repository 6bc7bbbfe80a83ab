"""Pipeline and status invariants, shared by the admin API and ``frontdesk config apply``.

A pipeline always has at least one open and one closed status; internal
names are generated once and unique within their scope; a pipeline or
status holding tickets is not deleted out from under them; the number of
pipelines is capped.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Pipeline, Status, Ticket
from frontdesk.tickets.errors import Conflict, DomainError, NotFound

MAX_INTERNAL_NAME = 80


def slugify(label: str, fallback: str) -> str:
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_label.lower()).strip("_")
    return slug[:MAX_INTERNAL_NAME].rstrip("_") or fallback


def unique_internal_name(label: str, taken: Iterable[str], *, fallback: str) -> str:
    """``label`` as a slug, suffixed ``_2``, ``_3``... until it is not in ``taken``."""
    taken = set(taken)
    base = slugify(label, fallback)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base[: MAX_INTERNAL_NAME - len(str(n)) - 1]}_{n}"
    return candidate


def valid_internal_name(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9][a-z0-9_]{0,79}", name))


async def check_status_balance(session: AsyncSession, pipeline_id: int) -> None:
    """``Conflict`` unless the pipeline (as flushed) has at least one open and one closed status."""
    await session.flush()
    rows = (await session.execute(
        select(Status.is_closed, func.count()).where(Status.pipeline_id == pipeline_id).group_by(Status.is_closed)
    )).all()
    counts = {bool(closed): n for closed, n in rows}
    if not counts.get(False) or not counts.get(True):
        lacking = "open" if not counts.get(False) else "closed"
        raise Conflict(
            "pipeline_needs_open_and_closed_status",
            f"a pipeline must keep at least one open and one closed status; this change leaves no {lacking} status",
            pipeline_id=pipeline_id,
        )


async def ticket_count(session: AsyncSession, *, pipeline_id: int | None = None, status_id: int | None = None) -> int:
    query = select(func.count()).select_from(Ticket)
    if pipeline_id is not None:
        query = query.where(Ticket.pipeline_id == pipeline_id)
    if status_id is not None:
        query = query.where(Ticket.status_id == status_id)
    return int(await session.scalar(query) or 0)


async def refuse_pipeline_with_tickets(session: AsyncSession, pipeline: Pipeline) -> None:
    count = await ticket_count(session, pipeline_id=pipeline.id)
    if count:
        raise Conflict(
            "pipeline_has_tickets",
            f"pipeline {pipeline.name!r} still holds {count} ticket(s); move or delete them first",
            ticket_count=count,
        )


async def enforce_pipeline_cap(session: AsyncSession, limit: int) -> None:
    count = int(await session.scalar(select(func.count()).select_from(Pipeline)) or 0)
    if count >= limit:
        raise Conflict("pipeline_limit_reached",
                       f"this installation allows at most {limit} pipelines", limit=limit)


async def next_position(session: AsyncSession, column, *where) -> int:  # type: ignore[no-untyped-def]
    current = await session.scalar(select(func.max(column)).where(*where))
    return 0 if current is None else int(current) + 1


def reorder_visible(pipelines: list[Pipeline], visible_ids: set[int], order: list[int]) -> None:
    """Set positions so the pipelines the caller sees follow ``order``; the others keep their places.

    ``order`` lists every visible pipeline id exactly once.  An id the caller
    cannot see is refused as if it did not exist (``NotFound``), so neither
    the refusal nor the answer reveals hidden pipelines.  The visible ones
    take the slots visible ones held; positions are then renumbered 0..n-1.
    """
    if any(pipeline_id not in visible_ids for pipeline_id in order):
        raise NotFound("pipeline")
    if len(order) != len(set(order)) or set(order) != visible_ids:
        raise DomainError("order_incomplete", "'order' must list every pipeline id exactly once", field="order")
    by_id = {p.id: p for p in pipelines}
    current = sorted(pipelines, key=lambda p: (p.position, p.id))
    wanted = iter(order)
    arranged = [by_id[next(wanted)] if p.id in visible_ids else p for p in current]
    for position, pipeline in enumerate(arranged):
        pipeline.position = position
