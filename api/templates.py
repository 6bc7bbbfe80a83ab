"""Admin API for email templates: list, edit the defaults, create, mark transactional, preview for a ticket.

Templates are checked for Jinja2 syntax when saved, and previewed with the
same sandboxed renderer the outbound mailer uses, so what an admin sees is
what a contact gets.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of, require_property_settings
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import answer_object, closed_object, json_request, json_response, list_of, text
from frontdesk.api.parameters import ID_SCHEMA
from frontdesk.api.request_body import bool_field, int_field, json_body, text_field
from frontdesk.defaults import DEFAULT_TEMPLATES
from frontdesk.model import EmailTemplate, StatusAction
from frontdesk.outbound.email.context import template_context
from frontdesk.outbound.email.render import TemplateRenderError, check_template_syntax, render_template
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.audit import record_audit, snapshot
from frontdesk.tickets.header_fields import header_text
from frontdesk.tickets.pipelines import valid_internal_name

routes = web.RouteTableDef()

TEMPLATE_FIELDS = ("key", "name", "subject", "body_text", "body_html", "transactional")


def template_json(template: EmailTemplate) -> dict[str, Any]:
    body = snapshot(template, ("id",) + TEMPLATE_FIELDS)
    body["default"] = template.key in DEFAULT_TEMPLATES
    return body


def apply_template_fields(template: EmailTemplate, body: dict[str, Any]) -> None:
    if "name" in body:
        template.name = text_field(body, "name")
    for field in ("subject", "body_text", "body_html"):
        if field in body:
            value = body[field]
            if not isinstance(value, str) or (field != "body_html" and not value.strip()):
                raise ApiError(422, "field_invalid", f"{field!r} must be a non-empty string", field=field)
            if field == "subject":
                header_text(value, field)
            check_template_syntax(field, value)
            setattr(template, field, value)
    if "transactional" in body:
        template.transactional = bool(bool_field(body, "transactional"))


async def _by_key(session: AsyncSession, key: str) -> EmailTemplate:
    template = await session.scalar(select(EmailTemplate).where(EmailTemplate.key == key))
    if template is None:
        raise not_found("template")
    return template


@routes.get("/api/v1/templates")
async def list_templates(request: web.Request) -> web.Response:
    principal_of(request)
    async with request.app[SESSIONS]() as session:
        templates = (await session.scalars(select(EmailTemplate).order_by(EmailTemplate.key))).all()
    return web.json_response({"templates": [template_json(t) for t in templates]})


@routes.get("/api/v1/templates/{key}")
async def get_template(request: web.Request) -> web.Response:
    principal_of(request)
    async with request.app[SESSIONS]() as session:
        return web.json_response(template_json(await _by_key(session, request.match_info["key"])))


@routes.post("/api/v1/templates")
async def create_template(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    key = text_field(body, "key", max_length=80)
    if not valid_internal_name(key):
        raise ApiError(422, "template_key_invalid", "a template key is lowercase letters, digits and _")
    for field in ("name", "subject", "body_text"):
        text_field(body, field, max_length=100_000)
    async with request.app[SESSIONS].begin() as session:
        if await session.scalar(select(EmailTemplate.id).where(EmailTemplate.key == key)):
            raise ApiError(409, "template_key_taken", f"a template with key {key!r} exists")
        template = EmailTemplate(key=key, body_html="", transactional=True)
        apply_template_fields(template, body)
        session.add(template)
        await session.flush()
        record_audit(session, principal, "template.created", "template", key, after=template_json(template))
    return web.json_response(template_json(template), status=201)


@routes.patch("/api/v1/templates/{key}")
async def edit_template(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    if "key" in body:
        raise ApiError(422, "template_key_immutable", "a template's key never changes")
    async with request.app[SESSIONS].begin() as session:
        template = await _by_key(session, request.match_info["key"])
        before = template_json(template)
        apply_template_fields(template, body)
        await session.flush()
        record_audit(session, principal, "template.updated", "template", template.key,
                     before=before, after=template_json(template))
    return web.json_response(template_json(template))


@routes.delete("/api/v1/templates/{key}")
async def delete_template(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    async with request.app[SESSIONS].begin() as session:
        template = await _by_key(session, request.match_info["key"])
        if template.key in DEFAULT_TEMPLATES:
            raise ApiError(409, "default_template", "the default templates can be edited but not deleted")
        if await session.scalar(select(StatusAction.id).where(StatusAction.template_id == template.id).limit(1)):
            raise ApiError(409, "template_in_use", "a status action sends this template; change that action first")
        record_audit(session, principal, "template.deleted", "template", template.key, before=template_json(template))
        await session.delete(template)
    return web.Response(status=204)


@routes.post("/api/v1/templates/{key}/preview")
async def preview_template(request: web.Request) -> web.Response:
    """Render a template (stored, or with unsaved edits from the body) for one ticket the caller may see."""
    principal = principal_of(request)
    body = await json_body(request)
    ticket_id = int_field(body, "ticket_id", required=True)
    async with request.app[SESSIONS]() as session:
        template = await _by_key(session, request.match_info["key"])
        ticket = await visible_ticket(session, principal, ticket_id)
        context = await template_context(session, ticket)
    sources = {field: body.get(field, getattr(template, field)) for field in ("subject", "body_text", "body_html")}
    try:
        rendered = render_template(sources["subject"], sources["body_text"], sources["body_html"] or None, context)
    except TemplateRenderError as error:
        raise ApiError(422, "template_render_error", str(error)) from None
    return web.json_response({"subject": rendered.subject, "text": rendered.text, "html": rendered.html})


_ERR = {"description": "error; `error.code` names the broken rule"}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_SOURCES = {"subject": text(998), "body_text": text(100_000),
            "body_html": {"type": "string", "maxLength": 100_000, "description": "empty: no HTML part"}}
_FIELDS = {"name": text(), **_SOURCES, "transactional": {"type": "boolean"}}
_TEMPLATE = answer_object({
    "id": {"type": "integer"}, "key": {"type": "string"}, "name": {"type": "string"}, "subject": {"type": "string"},
    "body_text": {"type": "string"}, "body_html": {"type": ["string", "null"]}, "transactional": {"type": "boolean"},
    "default": {"type": "boolean", "description": "one of the built-in templates (editable, not deletable)"}},
    "id", "key", "name", "subject", "body_text", "transactional", "default")

OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/templates": {
        "get": {"summary": "Email templates",
                "responses": {"200": json_response("templates", list_of("templates", _TEMPLATE))}},
        "post": {"summary": "Create a template (Jinja2, sandboxed)",
                 "requestBody": json_request(closed_object({"key": text(80), **_FIELDS},
                                                           "key", "name", "subject", "body_text")),
                 "responses": {"201": json_response("template", _TEMPLATE), "409": _ERR, "422": _ERR}},
    },
    "/api/v1/templates/{key}": {
        "parameters": [_KEY],
        "get": {"summary": "One template", "responses": {"200": json_response("template", _TEMPLATE)}},
        "patch": {"summary": "Edit a template, including the defaults; mark transactional or not "
                             "(its key never changes: 422 template_key_immutable)",
                  "requestBody": json_request(closed_object({
                      **_FIELDS, "key": {"description": "Never changes; sending it is refused."}})),
                  "responses": {"200": json_response("template", _TEMPLATE), "422": _ERR}},
        "delete": {"summary": "Delete a template nobody uses (not the defaults)",
                   "responses": {"204": {"description": "deleted"}, "409": _ERR}},
    },
    "/api/v1/templates/{key}/preview": {
        "parameters": [_KEY],
        "post": {"summary": "Render the template for a ticket the caller may see (optionally with unsaved edits)",
                 "requestBody": json_request(closed_object({"ticket_id": ID_SCHEMA, **_SOURCES}, "ticket_id")),
                 "responses": {"200": json_response("subject, text, html", answer_object({
                     "subject": {"type": "string"}, "text": {"type": "string"}, "html": {"type": ["string", "null"]}},
                     "subject", "text", "html")), "404": _ERR, "422": _ERR}},
    },
}}
