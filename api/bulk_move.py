"""``POST /api/v1/tickets/bulk-move``: move many tickets to one status, all or nothing.

Every ticket must be visible to the caller (else 404, so nothing leaks) and
carry the target's required stage properties (else 422 naming the ticket and
what is missing).  One ``ticket.status_changed`` event per moved ticket.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from frontdesk.api.auth import principal_of
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import answer_object, closed_object, id_list, json_request, json_response
from frontdesk.api.parameters import ID_SCHEMA
from frontdesk.api.request_body import int_field, int_list_field, json_body
from frontdesk.events import AGENT, Actor
from frontdesk.model import Status, Ticket
from frontdesk.tickets.access import ticket_visibility, visible_pipeline
from frontdesk.tickets.status import move_ticket

routes = web.RouteTableDef()

MAX_TICKETS = 1000


@routes.post("/api/v1/tickets/bulk-move")
async def bulk_move(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await json_body(request)
    target_id = int_field(body, "status_id", required=True)
    ticket_ids = int_list_field(body, "ticket_ids") if "ticket_ids" in body else None
    from_status_id = int_field(body, "from_status_id")
    if (ticket_ids is None) == (from_status_id is None):
        raise ApiError(422, "bulk_selection_required", "give exactly one of ticket_ids or from_status_id")
    actor = Actor(AGENT, None if principal.user_id is None else str(principal.user_id))
    async with request.app[SESSIONS].begin() as session:
        target = await session.get(Status, target_id)
        if target is None:
            raise not_found("status")
        await visible_pipeline(session, principal, target.pipeline_id)
        query = select(Ticket).where(ticket_visibility(principal)).order_by(Ticket.id)
        if ticket_ids is not None:
            if len(set(ticket_ids)) > MAX_TICKETS:
                raise ApiError(422, "bulk_too_large", f"at most {MAX_TICKETS} tickets per request")
            tickets = (await session.scalars(query.where(Ticket.id.in_(ticket_ids)))).all()
            if unseen := sorted(set(ticket_ids) - {t.id for t in tickets}):
                raise ApiError(404, "not_found", "ticket not found", ticket_ids=unseen)
        else:
            tickets = (await session.scalars(
                query.where(Ticket.status_id == from_status_id).limit(MAX_TICKETS + 1))).all()
        # More than one request's worth: move the first MAX_TICKETS and say so; the caller repeats.
        truncated = len(tickets) > MAX_TICKETS
        tickets = tickets[:MAX_TICKETS]
        moved: list[int] = []
        for ticket in tickets:
            if ticket.status_id == target.id:
                continue
            await move_ticket(session, ticket, target, actor=actor, reason="bulk_move")
            moved.append(ticket.id)
    return web.json_response({"status_id": target.id, "moved": moved,
                              "unchanged": [t.id for t in tickets if t.id not in moved], "truncated": truncated})


OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/tickets/bulk-move": {
        "post": {
            "summary": "Move tickets (by id, or all visible ones in from_status_id) to status_id, all or nothing",
            "requestBody": json_request(closed_object({
                "status_id": ID_SCHEMA,
                "ticket_ids": {**id_list(), "minItems": 1, "maxItems": MAX_TICKETS,
                               "description": f"at most {MAX_TICKETS}"},
                "from_status_id": ID_SCHEMA}, "status_id")),
            "responses": {
                "200": json_response("moved and unchanged ticket ids", answer_object({
                    "status_id": {"type": "integer"}, "moved": {"type": "array", "items": {"type": "integer"}},
                    "unchanged": {"type": "array", "items": {"type": "integer"}},
                    "truncated": {"type": "boolean", "description": f"more than {MAX_TICKETS}: repeat the request"}},
                    "status_id", "moved", "unchanged", "truncated")),
                "404": {"description": "a ticket or status the caller cannot see"},
                "422": {"description": "required_properties_missing (with ticket_id and missing); "
                                       "bulk_selection_required: give exactly one of ticket_ids or from_status_id"},
            },
        }
    }
}}
