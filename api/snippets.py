"""Snippets: ``/api/v1/snippets`` CRUD, and rendering one for a ticket.

The rules (scopes, who writes shared ones, the unique shortcut) are
:mod:`tickets.snippets`; bodies use the email templates' fields (ticket,
contact, owner) and are checked and rendered by the same sandboxed
renderer (:mod:`outbound.email.render`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from frontdesk.api.auth import principal_of
from frontdesk.api.errors import ApiError
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import ID_SCHEMA, path_id
from frontdesk.api.request_body import bool_field, int_field, json_body, text_field
from frontdesk.model import Snippet
from frontdesk.model.comments import SHARED
from frontdesk.outbound.email.context import template_context
from frontdesk.outbound.email.render import TemplateRenderError, check_template_syntax, render_text
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.snippets import (
    MAX_BODY,
    check_may_change,
    check_shortcut,
    check_shortcut_free,
    scope_for,
    snippet_visibility,
    visible_snippet,
)

routes = web.RouteTableDef()


def snippet_json(snippet: Snippet) -> dict[str, Any]:
    return {
        "id": snippet.id,
        "name": snippet.name,
        "shortcut": snippet.shortcut,
        "body": snippet.body,
        "shared": snippet.scope == SHARED,
        "owner_user_id": snippet.owner_user_id,
        "created_at": snippet.created_at.isoformat(),
        "updated_at": snippet.updated_at.isoformat(),
    }


def _apply_fields(snippet: Snippet, body: dict[str, Any], *, creating: bool) -> None:
    if creating or "name" in body:
        snippet.name = text_field(body, "name") or ""
    if creating or "shortcut" in body:
        snippet.shortcut = check_shortcut(text_field(body, "shortcut", max_length=50) or "")
    if creating or "body" in body:
        text = text_field(body, "body", max_length=MAX_BODY) or ""
        check_template_syntax("body", text)
        snippet.body = text


def _taken() -> ApiError:
    # Two writers raced for one shortcut: the unique constraint decided.
    return ApiError(409, "snippet_shortcut_taken", "the shortcut is taken in this scope", field="shortcut")


@routes.get("/api/v1/snippets")
async def list_snippets(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS]() as session:
        rows = (await session.scalars(select(Snippet).where(snippet_visibility(principal))
                                      .order_by(Snippet.shortcut, Snippet.id))).all()
    return web.json_response({"snippets": [snippet_json(s) for s in rows]})


@routes.post("/api/v1/snippets")
async def create_snippet(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await json_body(request)
    scope = scope_for(principal, bool(bool_field(body, "shared", default=False)))
    snippet = Snippet(scope=scope, owner_user_id=None if scope == SHARED else principal.user_id)
    _apply_fields(snippet, body, creating=True)
    try:
        async with request.app[SESSIONS].begin() as session:
            await check_shortcut_free(session, scope, snippet.shortcut)
            session.add(snippet)
    except IntegrityError:
        raise _taken() from None
    return web.json_response(snippet_json(snippet), status=201)


@routes.get(r"/api/v1/snippets/{snippet_id:\d+}")
async def get_snippet(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        snippet = await visible_snippet(session, principal_of(request), path_id(request, "snippet_id"))
    return web.json_response(snippet_json(snippet))


@routes.patch(r"/api/v1/snippets/{snippet_id:\d+}")
async def edit_snippet(request: web.Request) -> web.Response:
    principal = principal_of(request)
    snippet_id = path_id(request, "snippet_id")
    body = await json_body(request)
    try:
        async with request.app[SESSIONS].begin() as session:
            snippet = await visible_snippet(session, principal, snippet_id)
            check_may_change(principal, snippet)
            _apply_fields(snippet, body, creating=False)
            await check_shortcut_free(session, snippet.scope, snippet.shortcut, snippet.id)
    except IntegrityError:
        raise _taken() from None
    return web.json_response(snippet_json(snippet))


@routes.delete(r"/api/v1/snippets/{snippet_id:\d+}")
async def delete_snippet(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS].begin() as session:
        snippet = await visible_snippet(session, principal, path_id(request, "snippet_id"))
        check_may_change(principal, snippet)
        await session.delete(snippet)
    return web.Response(status=204)


@routes.post(r"/api/v1/snippets/{snippet_id:\d+}/render")
async def render_snippet(request: web.Request) -> web.Response:
    """The snippet's text for one ticket the caller may see: what inserting it into a reply gives."""
    principal = principal_of(request)
    snippet_id = path_id(request, "snippet_id")
    ticket_id = int_field(await json_body(request), "ticket_id", required=True)
    async with request.app[SESSIONS]() as session:
        snippet = await visible_snippet(session, principal, snippet_id)
        ticket = await visible_ticket(session, principal, ticket_id or 0)
        context = await template_context(session, ticket)
    try:
        return web.json_response({"text": render_text(snippet.body, context)})
    except TemplateRenderError as error:
        raise ApiError(422, "template_render_error", str(error)) from None


# --- OpenAPI ----------------------------------------------------------------

_ID = {"name": "snippet_id", "in": "path", "required": True, "schema": ID_SCHEMA}
_REF = {"$ref": "#/components/schemas/Snippet"}
_ONE = {"content": {"application/json": {"schema": _REF}}}
_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "shortcut": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,49}$",
                 "x-error": {"code": "snippet_shortcut_invalid"}},
    "body": {"type": "string", "minLength": 1, "maxLength": MAX_BODY,
             "description": "Text with the email templates' fields: {{ ticket.name }}, {{ contact.first_name }}, "
                            "{{ owner.name }}, ..."},
}
_FORBIDDEN = error_response("shared_snippet_admin_only: shared snippets are written by admins; user_required: "
                            "the operator token has no user to own a private snippet.")
_NOT_VISIBLE = error_response("No such snippet, or another user's private one.")
_INVALID = error_response("A field is missing or invalid (snippet_shortcut_invalid, template_syntax_error).")
_TAKEN = error_response("snippet_shortcut_taken: the shortcut is taken in this scope.")

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/snippets": {
            "get": {
                "summary": "The shared snippets and the caller's own, by shortcut",
                "operationId": "listSnippets", "tags": ["snippets"],
                "responses": {"200": {"description": "Snippets.", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["snippets"],
                    "properties": {"snippets": {"type": "array", "items": _REF}}}}}}, **AUTH_ERRORS},
            },
            "post": {
                "summary": "Create a snippet: private to the caller, or shared with everyone (admins)",
                "operationId": "createSnippet", "tags": ["snippets"],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["name", "shortcut", "body"],
                    "properties": {**_FIELDS, "shared": {"type": "boolean", "default": False}}}}}},
                "responses": {"201": {"description": "The snippet.", **_ONE}, "403": _FORBIDDEN, "409": _TAKEN,
                              "422": _INVALID, **AUTH_ERRORS},
            },
        },
        "/api/v1/snippets/{snippet_id}": {
            "get": {
                "summary": "One snippet", "operationId": "getSnippet", "tags": ["snippets"], "parameters": [_ID],
                "responses": {"200": {"description": "The snippet.", **_ONE}, "404": _NOT_VISIBLE, **AUTH_ERRORS},
            },
            "patch": {
                "summary": "Change a snippet (its scope never changes)", "operationId": "editSnippet",
                "tags": ["snippets"], "parameters": [_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": _FIELDS}}}},
                "responses": {"200": {"description": "The snippet.", **_ONE}, "403": _FORBIDDEN,
                              "404": _NOT_VISIBLE, "409": _TAKEN, "422": _INVALID, **AUTH_ERRORS},
            },
            "delete": {
                "summary": "Delete a snippet", "operationId": "deleteSnippet", "tags": ["snippets"],
                "parameters": [_ID],
                "responses": {"204": {"description": "Deleted."}, "403": _FORBIDDEN, "404": _NOT_VISIBLE,
                              **AUTH_ERRORS},
            },
        },
        "/api/v1/snippets/{snippet_id}/render": {
            "post": {
                "summary": "Render the snippet for a ticket the caller may see",
                "operationId": "renderSnippet", "tags": ["snippets"], "parameters": [_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ticket_id"], "properties": {"ticket_id": ID_SCHEMA}}}}},
                "responses": {
                    "200": {"description": "The rendered text.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}}}},
                    "404": error_response("No such snippet or ticket, or not visible to the caller."),
                    "422": error_response("ticket_id missing, or the snippet does not render (template_render_error)."),
                    **AUTH_ERRORS},
            },
        },
    },
    "components": {"schemas": {"Snippet": {
        "type": "object",
        "required": ["id", "name", "shortcut", "body", "shared", "owner_user_id", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "shortcut": {"type": "string"},
            "body": {"type": "string"}, "shared": {"type": "boolean"},
            "owner_user_id": {"type": ["integer", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }}},
}
