"""``GET /api/v1/audit``: the admin audit log, newest first, for super admins.

Entries are written by :func:`frontdesk.tickets.audit.record_audit`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from frontdesk.api.auth import require_super_admin
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import answer_object, json_response, list_of
from frontdesk.api.parameters import ID_SCHEMA, query_id, query_int
from frontdesk.model import AuditEntry

routes = web.RouteTableDef()

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor_user_id": entry.actor_user_id,
        "actor": entry.actor_label,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "before": entry.before,
        "after": entry.after,
        "created_at": entry.created_at.isoformat(),
    }


@routes.get("/api/v1/audit")
async def list_audit(request: web.Request) -> web.Response:
    require_super_admin(request)
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if entity := request.query.get("entity"):
        query = query.where(AuditEntry.entity == entity)
    if action := request.query.get("action"):
        query = query.where(AuditEntry.action == action)
    limit = query_int(request, "limit", minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT)
    if (before_id := query_id(request, "before_id")) is not None:
        query = query.where(AuditEntry.id < before_id)
    async with request.app[SESSIONS]() as session:
        entries = (await session.scalars(query.limit(limit))).all()
    return web.json_response({"entries": [audit_json(e) for e in entries]})


OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/audit": {
        "get": {
            "summary": "The admin audit log, newest first (super admins only)",
            "parameters": [
                {"name": "entity", "in": "query", "schema": {"type": "string"}},
                {"name": "action", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                {"name": "before_id", "in": "query", "schema": ID_SCHEMA},
            ],
            "responses": {"200": json_response("entries with actor, action, entity, before, after", list_of(
                "entries", answer_object({
                    "id": {"type": "integer"}, "actor_user_id": {"type": ["integer", "null"]},
                    "actor": {"type": ["string", "null"]}, "action": {"type": "string"}, "entity": {"type": "string"},
                    "entity_id": {"type": ["string", "integer", "null"]}, "before": {}, "after": {},
                    "created_at": {"type": "string", "format": "date-time"}},
                    "id", "action", "entity", "created_at"))),
                          "403": {"description": "super_admin_required"}},
        }
    }
}}
