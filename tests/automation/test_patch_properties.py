"""``PATCH /api/v1/tickets/{id}`` with custom ``properties``: validated, counted for stage rules, one event each.

Runs the real app on an ephemeral port and talks to it over HTTP, on both
databases; what the ticket holds afterwards is read back from the database.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from frontdesk.api.app import create_app
from frontdesk.model import OutboxEvent, Status, Ticket

OPERATOR = "test-api-token"  # FRONTDESK_API_TOKEN in the shared settings fixture


class Client:
    """A thin JSON client: ``await client.call(method, path, body)`` returns (status, body)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def call(self, method: str, path: str, body: Any = None, *, token: str = OPERATOR) -> tuple[int, Any]:
        async with self.http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.json()

    async def ok(self, method: str, path: str, body: Any = None, *, expect: int = 200, **kw: Any) -> Any:
        status, payload = await self.call(method, path, body, **kw)
        assert status == expect, (method, path, status, payload)
        return payload


@pytest.fixture
async def client(settings, sessions, blobs) -> AsyncIterator[Client]:  # type: ignore[no-untyped-def]
    runner = web.AppRunner(create_app(settings, sessions, blobs), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession(base_url=f"http://{host}:{port}") as http:
            yield Client(http)
    finally:
        await runner.cleanup()


async def _closing_needs_a_resolution(client: Client) -> None:
    """Custom properties, and the support pipeline's Closed status requiring ``resolution``."""
    await client.ok("POST", "/api/v1/properties", {"name": "resolution", "label": "Resolution", "type": "enumeration",
                                                    "options": ["fixed", "wont_fix", "duplicate"]}, expect=201)
    await client.ok("POST", "/api/v1/properties", {"name": "visits", "type": "number"}, expect=201)
    pipelines = (await client.ok("GET", "/api/v1/pipelines"))["pipelines"]
    support = next(p for p in pipelines if p["internal_name"] == "support")
    closed = next(s for s in support["statuses"] if s["internal_name"] == "closed")
    await client.ok("PUT", f"/api/v1/statuses/{closed['id']}/properties",
                    {"properties": [{"property": "resolution", "required": True}]})


async def _new_ticket(client: Client, **extra: Any) -> str:
    ticket = await client.ok("POST", "/api/v1/tickets", {"name": "Printer on fire", "pipeline": "support",
                                                         "status": "new", "owner_id": None, **extra}, expect=201)
    return f"/api/v1/tickets/{ticket['id']}"


async def _stored(sessions, url: str) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The ticket's status (internal name) and custom values, as committed."""
    async with sessions() as session:
        ticket = await session.get(Ticket, int(url.rsplit("/", 1)[1]))
        status = await session.scalar(select(Status.internal_name).where(Status.id == ticket.status_id))
        return status, ticket.custom_properties


async def _events(sessions, url: str, type_: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.ticket_id == int(url.rsplit("/", 1)[1]),
                                                               OutboxEvent.type == type_).order_by(OutboxEvent.id))
        return [row.body["payload"] for row in rows]


async def test_a_required_property_can_come_with_the_move_that_needs_it(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await _closing_needs_a_resolution(client)
    url = await _new_ticket(client)
    code, body = await client.call("PATCH", url, {"status": "closed"})
    assert code == 422 and body["error"]["code"] == "required_properties_missing"
    assert body["error"]["missing"] == ["resolution"]
    assert await _stored(sessions, url) == ("new", {})

    answer = await client.ok("PATCH", url, {"status": "closed", "properties": {"resolution": "fixed"}})
    assert answer["status"]["internal_name"] == "closed" and answer["status"]["is_closed"] and answer["closed_at"]
    assert answer["custom_properties"] == {"resolution": "fixed"}
    assert await _stored(sessions, url) == ("closed", {"resolution": "fixed"})
    assert await _events(sessions, url, "ticket.property_changed") == [
        {"changes": {"resolution": {"from": None, "to": "fixed"}}}]
    moves = await _events(sessions, url, "ticket.status_changed")
    assert [(m["to_status"], m["is_closed"]) for m in moves] == [("closed", True)]


async def test_a_value_already_on_the_ticket_satisfies_the_move(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await _closing_needs_a_resolution(client)
    url = await _new_ticket(client)
    await client.ok("PATCH", url, {"properties": {"resolution": "duplicate"}})
    await client.ok("PATCH", url, {"status": "closed"})
    assert await _stored(sessions, url) == ("closed", {"resolution": "duplicate"})
    # Clearing the required value in the very request that moves there is refused.
    await client.ok("PATCH", url, {"status": "new"})
    code, body = await client.call("PATCH", url, {"status": "closed", "properties": {"resolution": None}})
    assert code == 422 and body["error"]["missing"] == ["resolution"]
    assert await _stored(sessions, url) == ("new", {"resolution": "duplicate"})


async def test_a_custom_property_named_like_a_column_does_not_stand_in_for_the_built_in(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await client.ok("POST", "/api/v1/properties", {"name": "team_id", "type": "string"}, expect=201)
    pipelines = (await client.ok("GET", "/api/v1/pipelines"))["pipelines"]
    support = next(p for p in pipelines if p["internal_name"] == "support")
    closed = next(s for s in support["statuses"] if s["internal_name"] == "closed")
    await client.ok("PUT", f"/api/v1/statuses/{closed['id']}/properties",
                    {"properties": [{"property": "team", "required": True}]})
    url = await _new_ticket(client)
    code, body = await client.call("PATCH", url, {"status": "closed", "properties": {"team_id": "7"}})
    assert code == 422 and body["error"]["missing"] == ["team"]
    assert await _stored(sessions, url) == ("new", {})


@pytest.mark.parametrize(("properties", "code", "named"), [
    ({"resolution": "maybe"}, "property_value_invalid", "resolution"),
    ({"visits": "three"}, "property_value_invalid", "visits"),
    ({"visits": True}, "property_value_invalid", "visits"),
    ({"no_such_thing": 1}, "unknown_property", "no_such_thing"),
    ({"priority": "high"}, "unknown_property", "priority"),  # built-ins have their own fields
    ({"visits": 2, "resolution": "maybe"}, "property_value_invalid", "resolution"),  # all or nothing
])
async def test_an_invalid_value_is_refused_naming_the_property(client, sessions, properties, code,  # type: ignore[no-untyped-def]
                                                               named) -> None:
    await _closing_needs_a_resolution(client)
    url = await _new_ticket(client)
    status, body = await client.call("PATCH", url, {"status": "closed", "properties": properties})
    assert status == 422 and body["error"]["code"] == code and body["error"]["property"] == named
    assert named in body["error"]["message"]
    assert await _stored(sessions, url) == ("new", {})
    assert await _events(sessions, url, "ticket.property_changed") == []


async def test_properties_must_be_an_object(client, sessions) -> None:  # type: ignore[no-untyped-def]
    url = await _new_ticket(client)
    for value in (["resolution"], "fixed", None):
        status, body = await client.call("PATCH", url, {"properties": value})
        assert status == 422 and body["error"]["code"] == "field_invalid" and body["error"]["field"] == "properties"
    assert await _stored(sessions, url) == ("new", {})


async def test_read_only_and_calculated_properties_are_refused(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await client.ok("POST", "/api/v1/properties", {"name": "sla_breached", "type": "boolean", "read_only": True},
                    expect=201)
    await client.ok("POST", "/api/v1/properties", {"name": "score", "type": "number", "calculated": True},
                    expect=201)
    url = await _new_ticket(client)
    for name, value in (("sla_breached", True), ("score", 5)):
        status, body = await client.call("PATCH", url, {"properties": {name: value}})
        assert status == 422 and body["error"]["code"] == "property_read_only" and body["error"]["property"] == name
    assert await _stored(sessions, url) == ("new", {})
    assert await _events(sessions, url, "ticket.property_changed") == []


async def test_one_event_per_changed_custom_property_and_none_for_unchanged(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await _closing_needs_a_resolution(client)
    url = await _new_ticket(client)
    await client.ok("PATCH", url, {"priority": "high", "properties": {"resolution": "fixed", "visits": 2}})
    assert await _events(sessions, url, "ticket.property_changed") == [
        {"changes": {"priority": {"from": None, "to": "high"}}},
        {"changes": {"resolution": {"from": None, "to": "fixed"}}},
        {"changes": {"visits": {"from": None, "to": 2}}},
    ]
    # The same values again change nothing and say nothing.
    await client.ok("PATCH", url, {"priority": "high", "properties": {"resolution": "fixed", "visits": 2}})
    assert len(await _events(sessions, url, "ticket.property_changed")) == 3
    # One of two changes; the untouched value is kept, not replaced by the request's dict.
    await client.ok("PATCH", url, {"properties": {"resolution": "wont_fix", "visits": 2}})
    await client.ok("PATCH", url, {"properties": {"visits": None}})
    assert (await _events(sessions, url, "ticket.property_changed"))[3:] == [
        {"changes": {"resolution": {"from": "fixed", "to": "wont_fix"}}},
        {"changes": {"visits": {"from": 2, "to": None}}},
    ]
    assert await _stored(sessions, url) == ("new", {"resolution": "wont_fix"})
    async with sessions() as session:
        actors = (await session.scalars(select(OutboxEvent.body).where(
            OutboxEvent.type == "ticket.property_changed"))).all()
    assert {a["actor"]["kind"] for a in actors} == {"agent"}


async def test_an_invisible_ticket_stays_invisible(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await _closing_needs_a_resolution(client)
    url = await _new_ticket(client)
    user = await client.ok("POST", "/api/v1/users", {"name": "olga", "email": "olga@acme.test", "role": "agent",
                                                      "ticket_access": "owned", "sees_unassigned": False,
                                                      "team_ids": []}, expect=201)
    token = (await client.ok("POST", f"/api/v1/users/{user['id']}/tokens", {"label": "test"}, expect=201))["token"]
    for body in ({"status": "closed", "properties": {"resolution": "fixed"}}, {"properties": {"resolution": "maybe"}},
                 {"properties": {"no_such_thing": 1}}):
        status, answer = await client.call("PATCH", url, body, token=token)
        assert status == 404 and answer["error"]["code"] == "not_found"
    assert await _stored(sessions, url) == ("new", {})
    assert await _events(sessions, url, "ticket.property_changed") == []


async def test_the_openapi_document_describes_the_field(client) -> None:  # type: ignore[no-untyped-def]
    async with client.http.get("/openapi.json") as resp:
        document = await resp.json()
    schema = document["paths"]["/api/v1/tickets/{ticket_id}"]["patch"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert schema["properties"]["properties"]["type"] == "object"
