"""Helpers for the API tests: serve an app on port 0, and make users with API tokens."""

from __future__ import annotations

import secrets

from aiohttp import web

from frontdesk.api.auth import hash_token
from frontdesk.model import ApiToken, TeamMembership, User
from frontdesk.model.access import ACCESS_ALL, AGENT

OPERATOR_TOKEN = "test-api-token"  # FRONTDESK_API_TOKEN in the shared settings fixture
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def listen(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def create_user_token(
    sessions, *, email: str, ticket_access: str = ACCESS_ALL, role: str = AGENT,  # type: ignore[no-untyped-def]
    team_id: int | None = None, sees_unassigned: bool = False,
) -> tuple[int, dict[str, str]]:
    """A user with one API token; returns the user id and the Authorization header."""
    token = secrets.token_urlsafe(24)
    async with sessions.begin() as session:
        user = User(name=email.split("@")[0], email=email, role=role, ticket_access=ticket_access,
                    primary_team_id=team_id, sees_unassigned=sees_unassigned)
        session.add(user)
        await session.flush()
        if team_id is not None:
            session.add(TeamMembership(user_id=user.id, team_id=team_id))
        session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label="test"))
        return user.id, {"Authorization": f"Bearer {token}"}
