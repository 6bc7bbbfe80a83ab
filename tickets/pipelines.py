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

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor
from frontdesk.model import Channel, Pipeline, Status, Ticket
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


async def refuse_pipeline_with_channels(session: AsyncSession, pipeline: Pipeline) -> None:
    if await session.scalar(select(Channel.id).where(Channel.pipeline_id == pipeline.id).limit(1)):
        raise Conflict("pipeline_has_channels",
                       "connected channels still feed this pipeline; point them at another pipeline first")


async def status_deletion_target(session: AsyncSession, status: Status, target_id: int | None) -> tuple[int, Status | None]:
    """How many tickets ``status`` holds, and the status they move to when it is deleted.

    With tickets, ``target_id`` must name another status of the same pipeline:
    ``Conflict`` (``status_has_tickets``, with ``ticket_count``) without one,
    ``DomainError`` (``target_status_invalid``) for one that is not.
    """
    count = await ticket_count(session, status_id=status.id)
    if not count:
        return 0, None
    if target_id is None:
        raise Conflict("status_has_tickets",
                       f"status {status.label!r} holds {count} ticket(s): give target_status_id to move them",
                       ticket_count=count)
    target = await session.get(Status, target_id)
    if target is None or target.id == status.id or target.pipeline_id != status.pipeline_id:
        raise DomainError("target_status_invalid", "target_status_id must name another status of the same pipeline")
    return count, target


async def remove_status(session: AsyncSession, status: Status, target_id: int | None, *, actor: Actor) -> int:
    """Delete a status, moving its tickets to the target first (one event each); returns how many moved."""
    # Imported here: tickets.status -> stage_properties -> properties imports this module.
    from frontdesk.tickets.status import move_ticket

    count, target = await status_deletion_target(session, status, target_id)
    if target is not None:
        tickets = (await session.scalars(select(Ticket).where(Ticket.status_id == status.id))).all()
        for ticket in tickets:
            # Like a bulk move, which is what this is: the target's required properties apply.
            await move_ticket(session, ticket, target, actor=actor, reason="status_deleted")
        await session.flush()
    await session.execute(delete(Status).where(Status.id == status.id))
    await check_status_balance(session, status.pipeline_id)
    return count


def refuse_internal_name_change(fields: Iterable[str]) -> None:
    """A status's internal name is generated once; a change naming it is refused."""
    if "internal_name" in fields:
        raise DomainError("internal_name_immutable", "a status's internal name never changes; rename its label")


def check_status_order(order: list[int], status_ids: Iterable[int]) -> None:
    """``order`` must list every status id of the pipeline exactly once."""
    if sorted(order) != sorted(status_ids):
        raise DomainError("order_incomplete", "'order' must list every status id of the pipeline exactly once")


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
