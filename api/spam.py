"""Marking a ticket as spam, and taking the mark off: ``PUT`` / ``DELETE /api/v1/tickets/{id}/spam``.

The rule (event, audit, out of views, no automation) is ``tickets.spam``;
the caller must be able to see the ticket (404 otherwise).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from frontdesk.api.auth import principal_of
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import path_id
from frontdesk.api.replies import run_after_commit
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.spam import set_spam

routes = web.RouteTableDef()


async def _mark(request: web.Request, spam: bool) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, path_id(request, "ticket_id"))
        changed = await set_spam(session, principal, ticket, spam)
        answer = {"ticket_id": ticket.id, "spam": ticket.is_spam, "changed": changed}
    await run_after_commit(request.app)
    return web.json_response(answer)


@routes.put(r"/api/v1/tickets/{ticket_id:\d+}/spam")
async def mark_spam(request: web.Request) -> web.Response:
    return await _mark(request, True)


@routes.delete(r"/api/v1/tickets/{ticket_id:\d+}/spam")
async def unmark_spam(request: web.Request) -> web.Response:
    return await _mark(request, False)


_ANSWER = {"description": "The ticket's spam mark now.", "content": {"application/json": {"schema": {
    "type": "object", "required": ["ticket_id", "spam", "changed"],
    "properties": {"ticket_id": {"type": "integer"}, "spam": {"type": "boolean"},
                   "changed": {"type": "boolean", "description": "false when it already was so"}}}}}}
_RESPONSES = {"200": _ANSWER, "404": error_response("No such ticket, or the caller may not see it."), **AUTH_ERRORS}
_TICKET = [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}}]

OPENAPI: dict[str, Any] = {"paths": {"/api/v1/tickets/{ticket_id}/spam": {
    "put": {"summary": "Mark a ticket as spam: out of every view but Spam, never automated",
            "operationId": "markSpam", "tags": ["tickets"], "parameters": _TICKET, "responses": _RESPONSES},
    "delete": {"summary": "Take the spam mark off a ticket", "operationId": "unmarkSpam", "tags": ["tickets"],
               "parameters": _TICKET, "responses": _RESPONSES},
}}}
