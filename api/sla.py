"""SLA API: the settings (super admins only), the report of met and missed targets.

The rules live in ``tickets.sla``; this module reads requests and writes answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from frontdesk.api.auth import principal_of, require_super_admin
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import error_response
from frontdesk.api.parameters import bad_parameter
from frontdesk.api.request_body import json_body
from frontdesk.tickets.sla.settings import (
    ALWAYS_OPEN,
    BY_PROPERTIES,
    NOTIFY_MOMENTS,
    NOTIFY_RECIPIENTS,
    TARGET_KINDS,
    WEEKDAYS,
    WORKING_HOURS,
)
from frontdesk.model import utcnow
from frontdesk.tickets.access import ticket_visibility
from frontdesk.tickets.sla.queries import REPORT_GROUPS, sla_report
from frontdesk.tickets.sla.store import load_settings, save_settings

routes = web.RouteTableDef()


@routes.get("/api/v1/sla/settings")
async def get_settings(request: web.Request) -> web.Response:
    require_super_admin(request)
    async with request.app[SESSIONS]() as session:
        settings = await load_settings(session)
    return web.json_response(dict(settings.document))


@routes.put("/api/v1/sla/settings")
async def put_settings(request: web.Request) -> web.Response:
    """Replace the settings (fields left out take their defaults); running clocks are recomputed."""
    principal = require_super_admin(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        settings = await save_settings(session, principal, body)
    return web.json_response(dict(settings.document))


def _instant(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_parameter(name, f"{name} must be an ISO 8601 date or date-time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@routes.get("/api/v1/sla/report")
async def get_report(request: web.Request) -> web.Response:
    """Clocks stopped in [from, to): per target (and group), met, missed, % met, median and p90 business time."""
    principal = principal_of(request)
    end = _instant(request, "to", utcnow())
    start = _instant(request, "from", end - timedelta(days=30))
    group_by = request.query.get("group_by")
    if group_by is not None and group_by not in REPORT_GROUPS:  # an empty one too: say what is valid
        raise bad_parameter("group_by", f"group_by must be one of {', '.join(REPORT_GROUPS)}")
    async with request.app[SESSIONS]() as session:
        lines = await sla_report(session, ticket_visibility(principal), start, end, group_by)
    return web.json_response({"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by,
                              "targets": lines})


_WALL = {"type": "string", "pattern": "^([01][0-9]|2[0-4]):[0-5][0-9]$"}
_HOURS = {"type": "object", "properties": {
    "mode": {"enum": [ALWAYS_OPEN, WORKING_HOURS]},
    "time_zone": {"type": "string", "description": "IANA zone, e.g. Europe/Oslo"},
    "week": {"type": "object", "properties": {
        day: {"type": "array", "items": {"type": "array", "items": _WALL, "minItems": 2, "maxItems": 2}}
        for day in WEEKDAYS}},
    "holidays": {"type": "object", "properties": {
        "country": {"type": ["string", "null"]}, "subdivision": {"type": ["string", "null"]},
        "added": {"type": "array", "items": {"type": "string", "format": "date"}},
        "removed": {"type": "array", "items": {"type": "string", "format": "date"}}}}}}
_MINUTES = {"type": ["integer", "null"], "minimum": 0}
_TARGET = {"type": "object", "properties": {
    "minutes": _MINUTES, "due_soon_minutes": {"type": "integer", "minimum": 0},
    "values": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "enabled": {"type": "boolean"}, "minutes": _MINUTES}}}}}
SETTINGS_SCHEMA = {"type": "object", "properties": {
    "enabled": {"type": "boolean"},
    "hours": _HOURS,
    "team_hours": {"type": "object", "description": "team id -> hours, for tickets that team owns",
                   "additionalProperties": _HOURS},
    "targets": {"type": "object", "properties": {
        "by": {"enum": [None, *BY_PROPERTIES]}, **{kind: _TARGET for kind in TARGET_KINDS}}},
    "pause_status_ids": {"type": ["array", "null"], "items": {"type": "integer"},
                         "description": "null: every Waiting on contact status"},
    "notify": {"type": "object", "description": "who gets an internal email at each moment", "properties": {
        moment: {"type": "array", "items": {"enum": list(NOTIFY_RECIPIENTS)}} for moment in NOTIFY_MOMENTS}}}}
# A part the schema refuses answers with the settings' own code (api.request_body reads x-error).
for _part in SETTINGS_SCHEMA["properties"].values():
    _part["x-error"] = {"code": "sla_settings_invalid"}
_SETTINGS_OK = {"description": "the SLA settings",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SlaSettings"}}}}
_FORBIDDEN = error_response("super_admin_required: only a super admin may read or change the SLA settings.")

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/sla/settings": {
            "get": {"summary": "The SLA settings (super admin)",
                    "responses": {"200": _SETTINGS_OK, "403": _FORBIDDEN}},
            "put": {"summary": "Replace the SLA settings (super admin); running clocks are recomputed",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/SlaSettings"}}}},
                    "responses": {"200": _SETTINGS_OK, "403": _FORBIDDEN,
                                  "422": error_response("sla_settings_invalid: `error.field` names the "
                                                        "field")}},
        },
        "/api/v1/sla/report": {
            "get": {"summary": "Met and missed SLA targets of the tickets the caller may see",
                    "description": "Clocks stopped in [from, to) (default: the last 30 days), per target and, "
                                   "with group_by, per the ticket's current team, priority or pipeline.",
                    "parameters": [
                        {"name": "from", "in": "query", "required": False, "schema": {"type": "string"},
                         "description": "ISO 8601 date or date-time (UTC when no offset)"},
                        {"name": "to", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "group_by", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": list(REPORT_GROUPS)}}],
                    "responses": {
                        "200": {"description": "the report", "content": {"application/json": {"schema": {
                            "type": "object", "properties": {
                                "from": {"type": "string"}, "to": {"type": "string"},
                                "group_by": {"type": ["string", "null"]},
                                "targets": {"type": "array", "items": {"type": "object", "properties": {
                                    "target": {"enum": list(TARGET_KINDS)}, "met": {"type": "integer"},
                                    "missed": {"type": "integer"}, "percent_met": {"type": "number"},
                                    "median_business_seconds": {"type": "number"},
                                    "p90_business_seconds": {"type": "number"}}}}}}}}},
                        "400": error_response("invalid_parameter: from, to or group_by is not valid.")}},
        },
    },
    "components": {"schemas": {"SlaSettings": SETTINGS_SCHEMA}},
}
