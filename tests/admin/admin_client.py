"""Helpers for the admin tests: a thin JSON client and shortcuts for users and pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web

from frontdesk.api.app import create_app

OPERATOR_TOKEN = "test-api-token"  # FRONTDESK_API_TOKEN in the shared settings fixture


@dataclass
class Api:
    """A thin client: ``await api.post(path, json, token=...)`` returns (status, body)."""

    http: aiohttp.ClientSession
    base: str
    token: str = OPERATOR_TOKEN

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   params: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {}
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.base + path, json=body, headers=headers, params=params) as resp:
            payload = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, payload

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, body, **kw)

    async def ok(self, method: str, path: str, body: Any = None, *, expect: int = 200, **kw: Any) -> Any:
        status, payload = await self.call(method, path, body, **kw)
        assert status == expect, (method, path, status, payload)
        return payload


async def make_user(api: Api, email: str, *, role: str = "agent", access: str = "all",
                    unassigned: bool = False, primary_team_id: int | None = None,
                    team_ids: list[int] | None = None) -> tuple[int, str]:
    """Create a user and a token for them; returns (user id, token)."""
    user = await api.ok("POST", "/api/v1/users", {
        "name": email.split("@")[0], "email": email, "role": role, "ticket_access": access,
        "sees_unassigned": unassigned, "primary_team_id": primary_team_id, "team_ids": team_ids or [],
    }, expect=201)
    token = await api.ok("POST", f"/api/v1/users/{user['id']}/tokens", {"label": "test"}, expect=201)
    return user["id"], token["token"]


async def support_pipeline(api: Api) -> dict[str, Any]:
    pipelines = (await api.ok("GET", "/api/v1/pipelines"))["pipelines"]
    return next(p for p in pipelines if p["internal_name"] == "support")


def status_named(pipeline: dict[str, Any], internal_name: str) -> dict[str, Any]:
    return next(s for s in pipeline["statuses"] if s["internal_name"] == internal_name)


async def story_setup(api: Api) -> dict[str, Any]:
    """The issue's user story, up to the admin's pipeline set-up; returns the ids and tokens made on the way."""
    field = await api.ok("POST", "/api/v1/teams", {"name": "Field service"}, expect=201)
    desk = await api.ok("POST", "/api/v1/teams", {"name": "Help desk"}, expect=201)
    admin_id, admin = await make_user(api, "ada@acme.test", role="admin", primary_team_id=desk["id"])
    agent_id, agent = await make_user(api, "sam@acme.test", primary_team_id=field["id"], team_ids=[desk["id"]],
                                      access="team", unassigned=True)
    # The admin builds the On-site service pipeline.
    onsite = await api.ok("POST", "/api/v1/pipelines", {"name": "On-site service", "statuses": [
        {"label": "Requested", "state": "open"}, {"label": "Visit planned", "state": "open"},
        {"label": "Escalated", "state": "open"}, {"label": "Follow-up", "state": "open"},
        {"label": "Closed", "state": "closed"}]}, token=admin, expect=201)
    ids = {s["internal_name"]: s["id"] for s in onsite["statuses"]}
    base = f"/api/v1/pipelines/{onsite['id']}/statuses"
    await api.ok("PATCH", f"{base}/{ids['visit_planned']}", {"label": "Technician booked"}, token=admin)
    order = [ids[n] for n in ("requested", "escalated", "visit_planned", "follow_up", "closed")]
    await api.ok("POST", f"{base}/reorder", {"order": order}, token=admin)
    await api.ok("POST", "/api/v1/properties", {"name": "resolution", "label": "Resolution", "type": "enumeration",
                                                 "options": ["fixed", "replaced", "no_fault_found"]},
                 token=admin, expect=201)
    await api.ok("PUT", f"/api/v1/statuses/{ids['closed']}/properties",
                 {"properties": [{"property": "resolution", "required": True}, {"property": "category"}]},
                 token=admin)
    await api.ok("PATCH", f"/api/v1/pipelines/{onsite['id']}/automation",
                 {"customer_replied": {"enabled": True, "status_id": ids["follow_up"]},
                  "email_sent": {"enabled": False}, "action_sources": ["chat"]}, token=admin)
    await api.ok("POST", f"/api/v1/statuses/{ids['escalated']}/actions",
                 {"kind": "notify", "recipient": {"kind": "owner_team"}, "comment": "Escalations go to the team"},
                 token=admin, expect=201)
    await api.ok("POST", "/api/v1/templates", {"key": "visit_booked", "name": "Visit booked",
                                                "subject": "Your visit for {{ ticket.name }}",
                                                "body_text": "A technician is booked for ticket #{{ ticket.id }}.",
                                                "transactional": True}, token=admin, expect=201)
    await api.ok("POST", f"/api/v1/statuses/{ids['visit_planned']}/actions",
                 {"kind": "send_email", "template_key": "visit_booked"}, token=admin, expect=201)
    await api.ok("PUT", f"/api/v1/pipelines/{onsite['id']}/access",
                 {"team_ids": [field["id"], desk["id"]], "user_ids": [admin_id]})
    return {"teams": {"field": field["id"], "desk": desk["id"]}, "admin": (admin_id, admin),
            "agent": (agent_id, agent), "pipeline": onsite["id"], "statuses": ids}


async def serve(settings, sessions, blobs) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    runner = web.AppRunner(create_app(settings, sessions, blobs))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
