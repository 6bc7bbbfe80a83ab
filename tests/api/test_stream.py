"""The SSE stream: what a team-only agent receives (and never receives), Last-Event-ID resume, heartbeats,
and a clean end on shutdown, against a real listening app on both databases."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from sqlalchemy import select

from api_harness import OPERATOR, create_user_token, listen
from frontdesk.api.app import create_app
from frontdesk.api.stream import GAP_WAIT, STREAM_TIMING, StreamTiming, passable
from frontdesk.model import OutboxEvent, Pipeline, Status, Team, Ticket, utcnow
from frontdesk.model.access import ACCESS_TEAM


async def _world(sessions) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        team, other = Team(name="Tier 1"), Team(name="Tier 2")
        session.add_all([team, other])
        await session.flush()
        return team.id, other.id


async def _ticket(sessions, owner_id: int, name: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == "support"))
        status = await session.scalar(select(Status).where(Status.pipeline_id == pipeline.id,
                                                           Status.internal_name == "new"))
        ticket = Ticket(name=name, pipeline_id=pipeline.id, status_id=status.id, source_channel="email",
                        owner_id=owner_id)
        session.add(ticket)
        await session.flush()
        return ticket.id


async def _next_block(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """The next SSE block as {"id", "event", "data"} or {"comment"}; None at the end of the stream."""
    block: dict[str, Any] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode()
        if line == "":
            return None
        line = line.rstrip("\n")
        if line == "":
            if block:
                return block
            continue
        if line.startswith(":"):
            block.setdefault("comment", line[1:].strip())
            continue
        name, _, value = line.partition(": ")
        block[name] = json.loads(value) if name == "data" else value


async def _events_until(response: aiohttp.ClientResponse, last_ticket_event: str) -> list[dict[str, Any]]:
    events = []
    while True:
        block = await _next_block(response)
        assert block is not None, "the stream ended early"
        if "event" in block:
            events.append(block)
            if block["event"] == last_ticket_event:
                return events


async def test_a_team_only_agent_streams_only_their_tickets_and_resumes(settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    team, other = await _world(sessions)
    tia, tia_h = await create_user_token(sessions, email="tia@acme.test", ticket_access=ACCESS_TEAM, team_id=team)
    tom, tom_h = await create_user_token(sessions, email="tom@acme.test", team_id=team)
    xavier, xavier_h = await create_user_token(sessions, email="xavier@acme.test", team_id=other)
    mine = await _ticket(sessions, tom, "Visible to Tia")
    hidden = await _ticket(sessions, xavier, "Not for Tia")

    app = create_app(settings, sessions, blobs)
    app[STREAM_TIMING] = StreamTiming(poll=0.05, heartbeat=0.3, max_seconds=30)
    runner, url = await listen(app)
    try:
        async with aiohttp.ClientSession(base_url=url) as client:
            assert (await client.get("/api/v1/stream")).status == 401
            bad = await client.get("/api/v1/stream", headers={**tia_h, "Last-Event-ID": "not-a-number"})
            assert (bad.status, (await bad.json())["error"]["code"]) == (400, "invalid_parameter")

            stream = await client.get("/api/v1/stream", headers=tia_h)
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            assert (await _next_block(stream))["comment"] == "stream open"

            # Changes on both tickets, interleaved; the last one is on Tia's ticket.
            await client.patch(f"/api/v1/tickets/{hidden}", json={"priority": "high"}, headers=OPERATOR)
            await client.patch(f"/api/v1/tickets/{mine}", json={"priority": "high"}, headers=OPERATOR)
            await client.post(f"/api/v1/tickets/{hidden}/comments", json={"body": "secret"}, headers=xavier_h)
            await client.post(f"/api/v1/tickets/{mine}/comments", json={"body": "on it"}, headers=tom_h)
            await client.patch(f"/api/v1/tickets/{hidden}", json={"status": "closed"}, headers=OPERATOR)
            await client.patch(f"/api/v1/tickets/{mine}", json={"status": "closed", "owner_id": tia},
                               headers=OPERATOR)

            events = await _events_until(stream, "ticket.status_changed")
            assert [e["event"] for e in events] == [
                "ticket.property_changed", "comment.created", "ticket.property_changed", "ticket.status_changed"]
            assert {e["data"]["ticket_id"] for e in events} == {mine}
            assert events[2]["data"]["payload"]["changes"]["owner_id"] == {"from": tom, "to": tia}
            assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)
            # Idle: heartbeats.
            assert (await _next_block(stream))["comment"] == "heartbeat"
            stream.close()

            # Reconnecting after the first event resumes right after it.
            resumed = await client.get("/api/v1/stream", headers={**tia_h, "Last-Event-ID": events[0]["id"]})
            again = await _events_until(resumed, "ticket.status_changed")
            assert [e["id"] for e in again] == [e["id"] for e in events[1:]]

            # Shutting the application down ends an open stream cleanly.
            await runner.cleanup()
            while (block := await _next_block(resumed)) is not None:
                assert "event" not in block
    finally:
        await runner.cleanup()


def test_the_stream_waits_before_a_gap_in_outbox_ids_until_it_is_old() -> None:
    """Row 12 is visible while 11 may still be committing (PostgreSQL): hold at 10 until 12 is GAP_WAIT old."""
    now = utcnow()
    fresh = [OutboxEvent(id=n, created_at=now) for n in (11, 12, 14, 15)]
    assert [r.id for r in passable(10, fresh, now)] == [11, 12]
    assert passable(12, fresh[2:], now) == []
    # A gap still open after GAP_WAIT was a rolled-back transaction: move on.
    assert [r.id for r in passable(12, fresh[2:], now + GAP_WAIT)] == [14, 15]
