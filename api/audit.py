"""The admin audit log: who changed what, when, before and after; and ``GET /api/v1/audit``.

Entries are added to the caller's session, so they commit (or roll back)
with the change they describe.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import Principal, require_super_admin
from frontdesk.api.errors import ApiError
from frontdesk.api.keys import SESSIONS
from frontdesk.model import AuditEntry

routes = web.RouteTableDef()


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def snapshot(row: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of ``row`` as JSON-safe values, for the before/after of an entry."""
    return {name: _plain(getattr(row, name)) for name in fields}


def record_audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    entity: str,
    entity_id: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_user_id=principal.user_id,
        actor_label=principal.label or principal.role,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=_plain(before),
        after=_plain(after),
    )
    session.add(entry)
    return entry


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
    try:
        limit = min(int(request.query.get("limit", "100")), 1000)
        if before_id := request.query.get("before_id"):
            query = query.where(AuditEntry.id < int(before_id))
    except ValueError:
        raise ApiError(400, "invalid_query", "limit and before_id must be integers") from None
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
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
                {"name": "before_id", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {"200": {"description": "entries with actor, action, entity, before, after"},
                          "403": {"description": "super_admin_required"}},
        }
    }
}}
