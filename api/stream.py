"""``GET /api/v1/stream``: Server-Sent Events of changes to the tickets the caller may see.

Fed from the outbox, the same rows automation consumes: each SSE ``id`` is
the outbox row id, so a client that reconnects with ``Last-Event-ID`` (what
browsers' ``EventSource`` sends) resumes right after the last event it got.
Without one the stream starts at the present.  Every batch is checked
against :func:`tickets.access.ticket_visibility` as the ticket is *now*:
an event of a ticket outside the caller's access is never sent.  A comment
line goes out every ``heartbeat`` seconds so proxies keep the connection;
the stream ends when the application shuts down, and after ``max_seconds``
(the client reconnects and resumes).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.api.auth import principal_of
from frontdesk.api.keys import SESSIONS, SHUTTING_DOWN
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import MAX_ID, checked_int
from frontdesk.events import (
    COMMENT_CREATED,
    COMMENT_DELETED,
    COMMENT_EDITED,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    TICKET_CREATED,
    TICKET_PROPERTY_CHANGED,
    TICKET_STATUS_CHANGED,
)
from frontdesk.model import OutboxEvent, Ticket, utcnow
from frontdesk.tickets.access import Principal, ticket_visibility

routes = web.RouteTableDef()

# What an agent's screen shows; an owner change is a ticket.property_changed of owner_id.
STREAMED_TYPES = (TICKET_CREATED, TICKET_STATUS_CHANGED, TICKET_PROPERTY_CHANGED, MESSAGE_RECEIVED, MESSAGE_SENT,
                  COMMENT_CREATED, COMMENT_EDITED, COMMENT_DELETED)
BATCH = 200


@dataclass(frozen=True)
class StreamTiming:
    poll: float = 1.0  # seconds between looks at the outbox when idle
    heartbeat: float = 15.0
    max_seconds: float = 3600.0


STREAM_TIMING = web.AppKey("stream_timing", StreamTiming)


def _resume_point(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    return checked_int("Last-Event-ID", raw.strip(), minimum=0, maximum=MAX_ID)


GAP_WAIT = timedelta(seconds=5)


def passable(last: int, rows: list[OutboxEvent], now: datetime) -> list[OutboxEvent]:
    """The leading ``rows`` (ascending ids after ``last``) the stream may move past now.

    Outbox ids come from a sequence when a row is inserted, not when its
    transaction commits: on PostgreSQL row 11 can be visible while row 10 is
    still committing, and moving past 10 would lose it for good.  So the
    stream stops before a gap in the ids until the row after it is
    ``GAP_WAIT`` old; a gap still open then was a rolled-back transaction.
    """
    taken = []
    for row in rows:
        if row.id != last + 1 and now - row.created_at < GAP_WAIT:
            break
        taken.append(row)
        last = row.id
    return taken


async def _batch(sessions: async_sessionmaker[AsyncSession], principal: Principal,
                 after: int) -> tuple[int, list[OutboxEvent], bool]:
    """The next outbox rows after ``after``: (last id passed, the ones to send, whether more may follow)."""
    async with sessions() as session:
        found = list((await session.scalars(
            select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id).limit(BATCH))).all())
        rows = passable(after, found, utcnow())
        candidates = {r.ticket_id for r in rows if r.type in STREAMED_TYPES and r.ticket_id is not None}
        visible = set((await session.scalars(select(Ticket.id).where(
            Ticket.id.in_(candidates), ticket_visibility(principal))))) if candidates else set()
    last = rows[-1].id if rows else after
    return last, [r for r in rows if r.type in STREAMED_TYPES and r.ticket_id in visible], len(rows) == BATCH


def sse_event(row: OutboxEvent) -> bytes:
    body = row.body or {}
    data = {"type": row.type, "ticket_id": row.ticket_id, "occurred_at": body.get("occurred_at"),
            "actor": body.get("actor"), "payload": body.get("payload") or {}}
    return f"id: {row.id}\nevent: {row.type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _start_at(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await session.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)) or 0


@routes.get("/api/v1/stream")
async def event_stream(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    timing = request.app.get(STREAM_TIMING) or StreamTiming()
    sessions = request.app[SESSIONS]
    stop = request.app[SHUTTING_DOWN]
    resume = _resume_point(request)
    last = resume if resume is not None else await _start_at(sessions)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.max_seconds
    quiet_since = loop.time()
    try:
        await response.write(b": stream open\nretry: 3000\n\n")
        while not stop.is_set() and loop.time() < deadline:
            last, rows, more = await _batch(sessions, principal, last)
            for row in rows:
                await response.write(sse_event(row))
            if rows:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= timing.heartbeat:
                await response.write(b": heartbeat\n\n")
                quiet_since = loop.time()
            if more:
                continue
            try:
                await asyncio.wait_for(stop.wait(), timing.poll)
            except TimeoutError:
                pass
    except (ConnectionResetError, ConnectionError):
        return response  # the client went away
    await response.write_eof()
    return response


_EXAMPLE = ('id: 42\nevent: comment.created\ndata: {"type":"comment.created","ticket_id":7,'
            '"occurred_at":"2026-12-02T10:00:00+00:00","actor":{"kind":"agent","id":"3"},'
            '"payload":{"comment_id":5,"author_user_id":3,"new_mentions":[]}}\n\n')

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/stream": {
            "get": {
                "summary": "Server-Sent Events of changes to the tickets the caller may see",
                "operationId": "streamEvents", "tags": ["tickets"],
                "description": (
                    "Event types: " + ", ".join(STREAMED_TYPES) + " (an owner change is ticket.property_changed "
                    "with owner_id in changes). Each event's `id` is its outbox position: reconnect with "
                    "Last-Event-ID to resume after it; without it the stream starts now. Comment lines "
                    "(`: heartbeat`) keep idle connections open. The stream ends on server shutdown and after "
                    "an hour; reconnect to go on."),
                "parameters": [{"name": "Last-Event-ID", "in": "header", "required": False,
                                "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
                                "description": "The id of the last event received."}],
                "responses": {
                    "200": {"description": "An event stream; each `data` is one JSON object.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": _EXAMPLE}}},
                    "400": error_response("invalid_parameter: Last-Event-ID is not an event id."),
                    **AUTH_ERRORS,
                },
            }
        }
    }
}
