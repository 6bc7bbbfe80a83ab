"""Helpers for the admin tests: a thin JSON client and shortcuts for users and pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

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
