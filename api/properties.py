"""Admin API for ticket properties (built-in registry and custom definitions) and per-status stage properties.

Changing either needs the "edit property settings" permission.  A stage
property list may only name properties users can set: read-only and
calculated ones are refused.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of, require_property_settings
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import answer_object, closed_object, json_request, json_response, list_of, text
from frontdesk.api.request_body import bool_field, json_body, path_id, text_field
from frontdesk.model import PropertyDefinition, StageProperty, Status
from frontdesk.tickets.access import visible_pipeline
from frontdesk.tickets.audit import record_audit
from frontdesk.tickets.properties import BUILT_IN, CUSTOM_TYPES, all_properties, check_definition
from frontdesk.tickets.stage_properties import check_stage_list, replace_stage_properties, stage_properties

routes = web.RouteTableDef()


def definition_json(definition: PropertyDefinition) -> dict[str, Any]:
    return {"name": definition.name, "label": definition.label, "type": definition.type,
            "options": list(definition.options or []), "read_only": definition.read_only,
            "calculated": definition.calculated, "built_in": False}


@routes.get("/api/v1/properties")
async def list_properties(request: web.Request) -> web.Response:
    principal_of(request)
    async with request.app[SESSIONS]() as session:
        registry = await all_properties(session)
    return web.json_response({"properties": [spec.to_json() for spec in registry.values()]})


@routes.post("/api/v1/properties")
async def create_property(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    name = text_field(body, "name", max_length=80)
    type_ = text_field(body, "type", max_length=20)
    options = check_definition(name, type_, body.get("options"))
    async with request.app[SESSIONS].begin() as session:
        if await session.scalar(select(PropertyDefinition.id).where(PropertyDefinition.name == name)):
            raise ApiError(409, "property_name_taken", f"a property named {name!r} exists")
        definition = PropertyDefinition(
            name=name, label=text_field(body, "label", required=False) or name, type=type_, options=options,
            read_only=bool(bool_field(body, "read_only", False)), calculated=bool(bool_field(body, "calculated", False)),
        )
        session.add(definition)
        await session.flush()
        record_audit(session, principal, "property.created", "property", name, after=definition_json(definition))
    return web.json_response(definition_json(definition), status=201)


async def _definition(session: AsyncSession, name: str) -> PropertyDefinition:
    if name in BUILT_IN:
        raise ApiError(422, "built_in_property", f"{name!r} is a built-in property and cannot be changed")
    definition = await session.scalar(select(PropertyDefinition).where(PropertyDefinition.name == name))
    if definition is None:
        raise not_found("property")
    return definition


@routes.patch("/api/v1/properties/{name}")
async def update_property(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    if "name" in body or "type" in body:
        raise ApiError(422, "property_name_immutable", "a property's name and type never change")
    async with request.app[SESSIONS].begin() as session:
        definition = await _definition(session, request.match_info["name"])
        before = definition_json(definition)
        if "label" in body:
            definition.label = text_field(body, "label")
        if "options" in body:
            definition.options = check_definition(definition.name, definition.type, body["options"])
        for flag in ("read_only", "calculated"):
            if flag in body:
                setattr(definition, flag, bool(bool_field(body, flag)))
        if (definition.read_only or definition.calculated) and await _used_on_stages(session, definition.name):
            raise ApiError(409, "stage_property_read_only",
                           f"{definition.name!r} is a stage property; remove it from statuses before making it read-only")
        record_audit(session, principal, "property.updated", "property", definition.name,
                     before=before, after=definition_json(definition))
    return web.json_response(definition_json(definition))


async def _used_on_stages(session: AsyncSession, name: str) -> bool:
    return bool(await session.scalar(select(StageProperty.id).where(StageProperty.property_name == name).limit(1)))


@routes.delete("/api/v1/properties/{name}")
async def delete_property(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    async with request.app[SESSIONS].begin() as session:
        definition = await _definition(session, request.match_info["name"])
        await session.execute(delete(StageProperty).where(StageProperty.property_name == definition.name))
        record_audit(session, principal, "property.deleted", "property", definition.name,
                     before=definition_json(definition))
        await session.delete(definition)
    return web.Response(status=204)


# --- stage properties --------------------------------------------------------------


async def _status(request: web.Request, session: AsyncSession) -> Status:
    status = await session.get(Status, path_id(request, "status_id"))
    if status is None:
        raise not_found("status")
    await visible_pipeline(session, principal_of(request), status.pipeline_id)
    return status


@routes.get("/api/v1/statuses/{status_id}/properties")
async def get_stage_properties(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        status = await _status(request, session)
        return web.json_response({"status_id": status.id, "properties": await stage_properties(session, status.id)})


@routes.put("/api/v1/statuses/{status_id}/properties")
async def put_stage_properties(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        status = await _status(request, session)
        entries = await check_stage_list(session, body.get("properties"))
        before = await stage_properties(session, status.id)
        await replace_stage_properties(session, status.id, entries)
        after = await stage_properties(session, status.id)
        record_audit(session, principal, "stage_properties.set", "status", status.id,
                     before={"properties": before}, after={"properties": after})
    return web.json_response({"status_id": status.id, "properties": after})


_ERR = {"description": "error; `error.code` names the broken rule"}
_OPTIONS = {"type": ["array", "null"], "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "uniqueItems": True, "x-error": {"code": "property_options_invalid"}}
_STAGE_ENTRY = {"oneOf": [{"type": "string", "maxLength": 200},
                          closed_object({"property": {"type": "string", "maxLength": 200},
                                         "required": {"type": "boolean"}}, "property")],
                "description": "a property name, or {property, required}"}
_STAGE = closed_object({"properties": {"type": "array", "items": _STAGE_ENTRY}}, "properties")
_PROPERTY = answer_object({
    "name": {"type": "string"}, "label": {"type": "string"}, "type": {"type": "string"},
    "built_in": {"type": "boolean"}, "read_only": {"type": "boolean"}, "calculated": {"type": "boolean"},
    "options": {"type": "array", "items": {"type": "string"}}, "description": {"type": ["string", "null"]}},
    "name", "label", "type", "built_in", "read_only", "calculated", "options")
_STAGE_LIST = answer_object({"status_id": {"type": "integer"}, "properties": {"type": "array", "items": answer_object(
    {"property": {"type": "string"}, "required": {"type": "boolean"}}, "property", "required")}},
    "status_id", "properties")

OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/properties": {
        "get": {"summary": "Every ticket property: built-in and custom, with read_only / calculated flags",
                "responses": {"200": json_response("properties", list_of("properties", _PROPERTY))}},
        "post": {"summary": "Define a custom property (string, number, enumeration, date, boolean)",
                 "requestBody": json_request(closed_object({
                     "name": text(80, description="lowercase letters, digits and _"), "label": text(),
                     "type": {"enum": list(CUSTOM_TYPES), "x-error": {"code": "property_type_invalid"}},
                     "options": _OPTIONS, "read_only": {"type": "boolean"}, "calculated": {"type": "boolean"}},
                     "name", "type")),
                 "responses": {"201": json_response("property", _PROPERTY), "409": _ERR, "422": _ERR}},
    },
    "/api/v1/properties/{name}": {
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "patch": {"summary": "Relabel a custom property or change its options (its name and type never change: "
                             "422 property_name_immutable)",
                  "requestBody": json_request(closed_object({
                      "label": text(), "options": _OPTIONS, "read_only": {"type": "boolean"},
                      "calculated": {"type": "boolean"},
                      "name": {"description": "Never changes; sending it is refused."},
                      "type": {"description": "Never changes; sending it is refused."}})),
                  "responses": {"200": json_response("property", _PROPERTY), "409": _ERR, "422": _ERR}},
        "delete": {"summary": "Delete a custom property (and its stage property entries); "
                              "a built-in one is 422 built_in_property",
                   "responses": {"204": {"description": "deleted"}, "403": _ERR, "422": _ERR}},
    },
    "/api/v1/statuses/{status_id}/properties": {
        "parameters": [{"name": "status_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "get": {"summary": "The status's ordered stage properties",
                "responses": {"200": json_response("list", _STAGE_LIST)}},
        "put": {"summary": "Replace the ordered stage properties; read-only or calculated ones are refused "
                           "(422 stage_property_read_only)",
                "requestBody": json_request(_STAGE),
                "responses": {"200": json_response("list", _STAGE_LIST), "422": _ERR}},
    },
}}
