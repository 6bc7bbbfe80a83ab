"""SLA API: the settings (super admins only), the report of met and missed targets.

The rules live in ``tickets.sla``; this module reads requests and writes answers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from frontdesk.api.auth import principal_of, require_super_admin
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import error_response
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
    },
    "components": {"schemas": {"SlaSettings": SETTINGS_SCHEMA}},
}
