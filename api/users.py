"""Admin API for users, teams and API tokens (super admins only).

A token is shown once, when it is made; only its SHA-256 is stored.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import hash_token, principal_of, require_super_admin
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import answer_object, closed_object, id_list, json_request, json_response, list_of, text
from frontdesk.api.parameters import ID_SCHEMA
from frontdesk.api.request_body import bool_field, int_field, int_list_field, json_body, path_id, text_field
from frontdesk.model import ApiToken, Team, TeamMembership, User, utcnow
from frontdesk.model.access import ROLES, SUPER_ADMIN, TICKET_ACCESS
from frontdesk.tickets.audit import record_audit, snapshot

routes = web.RouteTableDef()

USER_FIELDS = ("id", "name", "email", "role", "primary_team_id", "ticket_access", "sees_unassigned", "account_access",
               "is_active", "can_manage_views")


async def team_ids_of(session: AsyncSession, user_id: int) -> list[int]:
    return sorted((await session.scalars(select(TeamMembership.team_id).where(TeamMembership.user_id == user_id))).all())


async def user_json(session: AsyncSession, user: User) -> dict[str, Any]:
    body = snapshot(user, USER_FIELDS)
    body["team_ids"] = await team_ids_of(session, user.id)
    return body


def team_json(team: Team) -> dict[str, Any]:
    return {"id": team.id, "name": team.name}


async def _check_teams(session: AsyncSession, team_ids: list[int]) -> None:
    # no_autoflush: the check runs before the user's pending change is
    # written, so an unknown team is this 422, not a foreign-key error (500).
    with session.no_autoflush:
        known = set((await session.scalars(select(Team.id).where(Team.id.in_(team_ids)))).all())
    if unknown := sorted(set(team_ids) - known):
        raise ApiError(422, "unknown_team", "no such team(s)", team_ids=unknown)


async def set_memberships(session: AsyncSession, user: User, team_ids: list[int]) -> None:
    """The user's further teams; the primary team is always among them."""
    wanted = set(team_ids)
    if user.primary_team_id is not None:
        wanted.add(user.primary_team_id)
    await _check_teams(session, sorted(wanted))
    await session.execute(delete(TeamMembership).where(TeamMembership.user_id == user.id))
    session.add_all([TeamMembership(user_id=user.id, team_id=t) for t in sorted(wanted)])
    await session.flush()


def apply_user_fields(user: User, body: dict[str, Any]) -> None:
    if "name" in body:
        user.name = text_field(body, "name")
    if "email" in body:
        email = text_field(body, "email", max_length=320)
        if "@" not in email:
            raise ApiError(422, "email_invalid", "'email' must be an email address", field="email")
        user.email = email.lower()
    if "role" in body:
        if body["role"] not in ROLES:
            raise ApiError(422, "role_invalid", f"'role' must be one of {', '.join(ROLES)}", field="role")
        user.role = body["role"]
    if "ticket_access" in body:
        if body["ticket_access"] not in TICKET_ACCESS:
            raise ApiError(422, "ticket_access_invalid",
                           f"'ticket_access' must be one of {', '.join(TICKET_ACCESS)}", field="ticket_access")
        user.ticket_access = body["ticket_access"]
    if "sees_unassigned" in body:
        user.sees_unassigned = bool(bool_field(body, "sees_unassigned"))
    if "can_manage_views" in body:
        user.can_manage_views = bool(bool_field(body, "can_manage_views"))
    if "account_access" in body:
        user.account_access = bool(bool_field(body, "account_access"))
    if "is_active" in body:
        user.is_active = bool(bool_field(body, "is_active"))
    if "primary_team_id" in body:
        user.primary_team_id = int_field(body, "primary_team_id")


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return web.json_response({
        "user_id": principal.user_id, "role": principal.role, "ticket_access": principal.ticket_access,
        "sees_unassigned": principal.sees_unassigned, "team_ids": sorted(principal.team_ids),
        "can_manage_views": principal.can_manage_views,
        "account_access": principal.can_move_conversations,
    })


@routes.get("/api/v1/users")
async def list_users(request: web.Request) -> web.Response:
    require_super_admin(request)
    async with request.app[SESSIONS]() as session:
        users = (await session.scalars(select(User).order_by(User.id))).all()
        return web.json_response({"users": [await user_json(session, u) for u in users]})


@routes.post("/api/v1/users")
async def create_user(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    body = await json_body(request)
    text_field(body, "name")
    text_field(body, "email", max_length=320)
    async with request.app[SESSIONS].begin() as session:
        user = User(role="agent", ticket_access="all", sees_unassigned=False, account_access=False, is_active=True)
        apply_user_fields(user, body)
        if await session.scalar(select(User.id).where(User.email == user.email)):
            raise ApiError(409, "email_taken", f"a user with email {user.email} exists")
        if user.primary_team_id is not None:
            await _check_teams(session, [user.primary_team_id])
        session.add(user)
        await session.flush()
        await set_memberships(session, user, int_list_field(body, "team_ids") if "team_ids" in body else [])
        result = await user_json(session, user)
        record_audit(session, principal, "user.created", "user", user.id, after=result)
    return web.json_response(result, status=201)


@routes.patch("/api/v1/users/{user_id}")
async def update_user(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        user = await session.get(User, path_id(request, "user_id"))
        if user is None:
            raise not_found("user")
        before = await user_json(session, user)
        apply_user_fields(user, body)
        if user.id == principal.user_id and (user.role != SUPER_ADMIN or not user.is_active):
            # Otherwise one request locks the last super admin out of every admin endpoint.
            raise ApiError(422, "cannot_demote_self", "a super admin cannot remove their own role or deactivate "
                           "themselves; another super admin can", field="role")
        with session.no_autoflush:  # ask before the UPDATE: a failed flush leaves the transaction unusable
            taken = await session.scalar(select(User.id).where(User.email == user.email, User.id != user.id))
        if taken is not None:
            raise ApiError(409, "email_taken", f"a user with email {user.email} exists")
        if user.primary_team_id is not None:
            await _check_teams(session, [user.primary_team_id])
        # Read before the flush: a failed flush expires the object, and
        # loading it again inside the failed transaction raises.
        email = user.email
        try:
            await session.flush()
        except IntegrityError:
            raise ApiError(409, "email_taken", f"a user with email {email} exists") from None
        team_ids = int_list_field(body, "team_ids") if "team_ids" in body else before["team_ids"]
        await set_memberships(session, user, team_ids)
        result = await user_json(session, user)
        record_audit(session, principal, "user.updated", "user", user.id, before=before, after=result)
    return web.json_response(result)


# --- teams -----------------------------------------------------------------------


@routes.get("/api/v1/teams")
async def list_teams(request: web.Request) -> web.Response:
    principal_of(request)
    async with request.app[SESSIONS]() as session:
        teams = (await session.scalars(select(Team).order_by(Team.name))).all()
    return web.json_response({"teams": [team_json(t) for t in teams]})


@routes.post("/api/v1/teams")
async def create_team(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    name = text_field(await json_body(request), "name")
    async with request.app[SESSIONS].begin() as session:
        if await session.scalar(select(Team.id).where(Team.name == name)):
            raise ApiError(409, "team_name_taken", f"a team named {name!r} exists")
        team = Team(name=name)
        session.add(team)
        await session.flush()
        record_audit(session, principal, "team.created", "team", team.id, after=team_json(team))
    return web.json_response(team_json(team), status=201)


@routes.patch("/api/v1/teams/{team_id}")
async def rename_team(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    name = text_field(await json_body(request), "name")
    async with request.app[SESSIONS].begin() as session:
        team = await session.get(Team, path_id(request, "team_id"))
        if team is None:
            raise not_found("team")
        before = team_json(team)
        if await session.scalar(select(Team.id).where(Team.name == name, Team.id != team.id)):
            raise ApiError(409, "team_name_taken", f"a team named {name!r} exists")
        team.name = name
        record_audit(session, principal, "team.updated", "team", team.id, before=before, after=team_json(team))
    return web.json_response(team_json(team))


@routes.delete("/api/v1/teams/{team_id}")
async def delete_team(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    async with request.app[SESSIONS].begin() as session:
        team = await session.get(Team, path_id(request, "team_id"))
        if team is None:
            raise not_found("team")
        record_audit(session, principal, "team.deleted", "team", team.id, before=team_json(team))
        await session.delete(team)
    return web.Response(status=204)


# --- tokens ----------------------------------------------------------------------


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id, "user_id": token.user_id, "label": token.label,
        "created_at": token.created_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


@routes.get("/api/v1/users/{user_id}/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    require_super_admin(request)
    async with request.app[SESSIONS]() as session:
        tokens = (await session.scalars(
            select(ApiToken).where(ApiToken.user_id == path_id(request, "user_id")).order_by(ApiToken.id)
        )).all()
    return web.json_response({"tokens": [token_json(t) for t in tokens]})


@routes.post("/api/v1/users/{user_id}/tokens")
async def create_token(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    body = await json_body(request) if request.body_exists else {}
    label = text_field(body, "label", required=False) or ""
    secret = "fdt_" + secrets.token_urlsafe(32)
    async with request.app[SESSIONS].begin() as session:
        user = await session.get(User, path_id(request, "user_id"))
        if user is None:
            raise not_found("user")
        token = ApiToken(user_id=user.id, token_hash=hash_token(secret), label=label, created_at=utcnow())
        session.add(token)
        await session.flush()
        record_audit(session, principal, "token.created", "api_token", token.id,
                     after={"user_id": user.id, "label": label})
    # The secret is returned this once and never stored.
    return web.json_response({**token_json(token), "token": secret}, status=201)


@routes.delete("/api/v1/tokens/{token_id}")
async def revoke_token(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    async with request.app[SESSIONS].begin() as session:
        token = await session.get(ApiToken, path_id(request, "token_id"))
        if token is None:
            raise not_found("token")
        if token.revoked_at is None:
            await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(revoked_at=utcnow()))
            record_audit(session, principal, "token.revoked", "api_token", token.id,
                         before={"user_id": token.user_id, "label": token.label, "revoked": False},
                         after={"revoked": True})
    return web.Response(status=204)


_ERR = {"description": "error; `error.code` names the broken rule"}
_USER_FIELDS = {
    "name": text(), "email": text(320, pattern="@", **{"x-error": {"code": "email_invalid"}}),
    "role": {"enum": list(ROLES), "x-error": {"code": "role_invalid"}},
    "primary_team_id": {"oneOf": [ID_SCHEMA, {"type": "null"}]}, "team_ids": id_list(),
    "ticket_access": {"enum": list(TICKET_ACCESS), "x-error": {"code": "ticket_access_invalid"}},
    "sees_unassigned": {"type": "boolean"}, "is_active": {"type": "boolean"},
    "can_manage_views": {"type": "boolean", "description": "The custom views permission"},
    "account_access": {"type": "boolean", "description": "May move conversations between inboxes"}}
_USER = answer_object({
    "id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"}, "role": {"enum": list(ROLES)},
    "primary_team_id": {"type": ["integer", "null"]}, "team_ids": {"type": "array", "items": {"type": "integer"}},
    "ticket_access": {"enum": list(TICKET_ACCESS)}, "sees_unassigned": {"type": "boolean"},
    "is_active": {"type": "boolean"}}, *USER_FIELDS, "team_ids")
_TEAM = answer_object({"id": {"type": "integer"}, "name": {"type": "string"}}, "id", "name")
_TOKEN = answer_object({
    "id": {"type": "integer"}, "user_id": {"type": "integer"}, "label": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    "last_used_at": {"type": ["string", "null"], "format": "date-time"}}, "id", "user_id", "label", "created_at")
_NEW_TOKEN = {"allOf": [_TOKEN, answer_object({"token": {"type": "string"}}, "token")]}
_ME = answer_object({
    "user_id": {"type": ["integer", "null"], "description": "null for the operator token"},
    "role": {"type": "string"}, "ticket_access": {"type": "string"}, "sees_unassigned": {"type": "boolean"},
    "team_ids": {"type": "array", "items": {"type": "integer"}}},
    "user_id", "role", "ticket_access", "sees_unassigned", "team_ids")
_TEAM_BODY = json_request(closed_object({"name": text()}, "name"))

OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/me": {"get": {"summary": "Who the bearer token belongs to",
                           "responses": {"200": json_response("principal", _ME)}}},
    "/api/v1/users": {
        "get": {"summary": "All users (super admin)",
                "responses": {"200": json_response("users", list_of("users", _USER)), "403": _ERR}},
        "post": {"summary": "Create a user (super admin)",
                 "requestBody": json_request(closed_object(_USER_FIELDS, "name", "email")),
                 "responses": {"201": json_response("user", _USER), "409": _ERR, "422": _ERR}},
    },
    "/api/v1/users/{user_id}": {
        "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "patch": {"summary": "Change a user (super admin)",
                  "requestBody": json_request(closed_object(_USER_FIELDS)),
                  "responses": {"200": json_response("user", _USER), "404": _ERR, "409": _ERR, "422": _ERR}},
    },
    "/api/v1/users/{user_id}/tokens": {
        "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "get": {"summary": "A user's tokens, never their secrets",
                "responses": {"200": json_response("tokens", list_of("tokens", _TOKEN))}},
        "post": {"summary": "Make a token; the secret is in this response only",
                 "requestBody": json_request(closed_object({"label": text()}), required=False),
                 "responses": {"201": json_response("token with secret", _NEW_TOKEN)}},
    },
    "/api/v1/tokens/{token_id}": {
        "parameters": [{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "delete": {"summary": "Revoke a token (super admin)", "responses": {"403": _ERR, "204": {"description": "revoked"}}},
    },
    "/api/v1/teams": {
        "get": {"summary": "Teams", "responses": {"200": json_response("teams", list_of("teams", _TEAM))}},
        "post": {"summary": "Create a team (super admin)", "requestBody": _TEAM_BODY,
                 "responses": {"201": json_response("team", _TEAM), "409": _ERR}},
    },
    "/api/v1/teams/{team_id}": {
        "parameters": [{"name": "team_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "patch": {"summary": "Rename a team", "requestBody": _TEAM_BODY,
                  "responses": {"200": json_response("team", _TEAM), "409": _ERR}},
        "delete": {"summary": "Delete a team", "responses": {"204": {"description": "deleted"}}},
    },
}}
