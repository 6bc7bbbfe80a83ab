"""Delete a ticket (soft), list the deleted ones and restore one: the HTTP side of :mod:`frontdesk.tickets.lifecycle`.

``DELETE /api/v1/tickets/{id}``: anyone who can see the ticket (404
otherwise).  ``GET /api/v1/tickets/deleted`` and ``POST
/api/v1/tickets/{id}/restore``: admins and super admins (403 for others),
within their own ticket access.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from frontdesk.api.auth import principal_of, require
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.pages import PAGE_PARAMETERS, page_end, paged
from frontdesk.api.parameters import ID_SCHEMA, path_id
from frontdesk.api.replies import run_after_commit
from frontdesk.api.ticket_queries import joined
from frontdesk.api.tickets import links_of, ticket_json
from frontdesk.model import Contact, Pipeline, Status, Ticket
from frontdesk.tickets.access import Principal, ticket_visibility
from frontdesk.tickets.lifecycle import delete_ticket, restore_ticket

routes = web.RouteTableDef()


def _admin(request: web.Request) -> Principal:
    return require(request, lambda p: p.is_admin, "admin_required",
                   "only an admin or a super admin may see and restore deleted tickets")


def _deleted_json(row: Any, links: Any) -> dict[str, Any]:
    ticket = row[0]
    return {**ticket_json(*row, links), "deleted_at": ticket.deleted_at.isoformat(),
            "deleted_by_id": ticket.deleted_by_id}


@routes.delete(r"/api/v1/tickets/{ticket_id:\d+}")
async def delete(request: web.Request) -> web.Response:
    async with request.app[SESSIONS].begin() as session:
        await delete_ticket(session, principal_of(request), path_id(request, "ticket_id"))
    await run_after_commit(request.app)
    return web.Response(status=204)


@routes.get("/api/v1/tickets/deleted")
async def list_deleted(request: web.Request) -> web.Response:
    principal = _admin(request)
    statement, limit = paged(request, joined(select(Ticket, Pipeline, Status, Contact))
                             .where(ticket_visibility(principal, deleted=True)), Ticket.id)
    async with request.app[SESSIONS]() as session:
        rows, next_cursor = page_end(list((await session.execute(statement)).all()), limit, lambda r: r[0].id)
        links = await links_of(session, [row[0].id for row in rows])
    return web.json_response({"tickets": [_deleted_json(row, links[row[0].id]) for row in rows],
                              "limit": limit, "next_cursor": next_cursor})


@routes.post(r"/api/v1/tickets/{ticket_id:\d+}/restore")
async def restore(request: web.Request) -> web.Response:
    principal = _admin(request)
    async with request.app[SESSIONS].begin() as session:
        ticket = await restore_ticket(session, principal, path_id(request, "ticket_id"))
        pipeline = await session.get_one(Pipeline, ticket.pipeline_id)
        status = await session.get_one(Status, ticket.status_id)
        contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id is not None else None
        answer = ticket_json(ticket, pipeline, status, contact, (await links_of(session, [ticket.id]))[ticket.id])
    await run_after_commit(request.app)
    return web.json_response(answer)


_TICKET_PATH = [{"name": "ticket_id", "in": "path", "required": True, "schema": ID_SCHEMA}]
_ADMIN_ONLY = error_response("admin_required: the caller is not an admin or super admin.")
_DELETED = {"allOf": [{"$ref": "#/components/schemas/TicketSummary"}, {
    "type": "object", "required": ["deleted_at", "deleted_by_id"],
    "properties": {"deleted_at": {"type": "string", "format": "date-time"},
                   "deleted_by_id": {"type": ["integer", "null"], "description": "null: the operator token"}}}]}

OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/tickets/{ticket_id}": {"delete": {
        "summary": "Delete a ticket (soft: an admin can restore it)", "operationId": "deleteTicket",
        "tags": ["tickets"], "parameters": _TICKET_PATH,
        "description": "The ticket leaves every list, count and answer; mail replying to it starts a new ticket. "
                       "Emits ticket.deleted; audited.",
        "responses": {"204": {"description": "Deleted."},
                      "404": error_response("No such ticket, already deleted, or not visible to you."),
                      **AUTH_ERRORS}}},
    "/api/v1/tickets/deleted": {"get": {
        "summary": "Deleted tickets, most recently created first (admins)", "operationId": "listDeletedTickets",
        "tags": ["tickets"], "parameters": PAGE_PARAMETERS,
        "responses": {"200": {"description": "One page of deleted tickets the caller could see.",
                              "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["tickets", "limit", "next_cursor"],
                                  "properties": {"tickets": {"type": "array", "items": _DELETED},
                                                 "limit": {"type": "integer"},
                                                 "next_cursor": {"type": ["string", "null"]}}}}}},
                      "400": error_response("invalid_parameter: limit or cursor."),
                      "403": _ADMIN_ONLY, **AUTH_ERRORS}}},
    "/api/v1/tickets/{ticket_id}/restore": {"post": {
        "summary": "Restore a deleted ticket (admins)", "operationId": "restoreTicket", "tags": ["tickets"],
        "parameters": _TICKET_PATH, "description": "Emits ticket.restored; audited.",
        "responses": {"200": {"description": "The ticket, as GET shows it without messages.",
                              "content": {"application/json": {"schema": {
                                  "$ref": "#/components/schemas/TicketSummary"}}}},
                      "403": _ADMIN_ONLY,
                      "404": error_response("No such deleted ticket, or not visible to you."),
                      **AUTH_ERRORS}}},
}}
