"""A ticket's contacts and companies: list, associate (``PUT``, optionally as primary) and dissociate (``DELETE``).

``/api/v1/tickets/{ticket_id}/contacts[/{contact_id}]`` and the same for
``companies``.  Anyone who can see the ticket may change them (404 for a
ticket outside the caller's access); the rules are
:mod:`frontdesk.tickets.associations`'.  Every answer is the ticket's list
after the change.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import ID_SCHEMA, path_id
from frontdesk.api.request_body import bool_field, json_body
from frontdesk.api.tickets import associated_json, links_of
from frontdesk.events import Actor
from frontdesk.model import Ticket
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.associations import COMPANIES, CONTACTS, Association, associate, dissociate
from frontdesk.tickets.search_index import refresh_ticket_index

routes = web.RouteTableDef()

async def _answer(session: AsyncSession, ticket: Ticket, kind: Association) -> dict[str, Any]:
    links = (await links_of(session, [ticket.id]))[ticket.id]
    return {kind.name: associated_json(ticket, links)[kind.name]}


async def _change(request: web.Request, kind: Association, *, remove: bool) -> web.Response:
    principal = principal_of(request)
    body = await json_body(request) if request.body_exists and not remove else {}
    primary = bool(bool_field(body, "primary", False))
    actor = Actor.agent(principal.user_id)
    async with request.app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, path_id(request, "ticket_id"))
        target = path_id(request, f"{kind.noun}_id")
        if remove:
            await dissociate(session, ticket, kind, target, actor=actor)
        else:
            await associate(session, ticket, kind, target, primary=primary, actor=actor)
        await refresh_ticket_index(session, ticket.id)
        answer = await _answer(session, ticket, kind)
    return web.json_response(answer)


def _add_routes(kind: Association) -> None:
    collection = rf"/api/v1/tickets/{{ticket_id:\d+}}/{kind.name}"
    item = rf"{collection}/{{{kind.noun}_id:\d+}}"

    async def list_associations(request: web.Request) -> web.Response:
        async with request.app[SESSIONS]() as session:
            ticket = await visible_ticket(session, principal_of(request), path_id(request, "ticket_id"))
            answer = await _answer(session, ticket, kind)
        return web.json_response(answer)

    async def put_association(request: web.Request) -> web.Response:
        return await _change(request, kind, remove=False)

    async def delete_association(request: web.Request) -> web.Response:
        return await _change(request, kind, remove=True)

    routes.get(collection)(list_associations)
    routes.put(item)(put_association)
    routes.delete(item)(delete_association)


for _kind in (CONTACTS, COMPANIES):
    _add_routes(_kind)


def _paths(kind: Association) -> dict[str, Any]:
    schema = "AssociatedContact" if kind is CONTACTS else "AssociatedCompany"
    listing = {"description": f"The ticket's {kind.name}, oldest association first.",
               "content": {"application/json": {"schema": {
                   "type": "object", "required": [kind.name],
                   "properties": {kind.name: {"type": "array", "items": {"$ref": f"#/components/schemas/{schema}"}}}}}}}
    ticket = {"name": "ticket_id", "in": "path", "required": True, "schema": ID_SCHEMA}
    target = {"name": f"{kind.noun}_id", "in": "path", "required": True, "schema": ID_SCHEMA}
    title = kind.name.capitalize()
    item = f"/api/v1/tickets/{{ticket_id}}/{kind.name}/{{{kind.noun}_id}}"
    return {
        f"/api/v1/tickets/{{ticket_id}}/{kind.name}": {"get": {
            "summary": f"The ticket's associated {kind.name}", "operationId": f"listTicket{title}",
            "tags": ["tickets"], "parameters": [ticket],
            "responses": {"200": listing, "404": error_response("No such ticket, or not visible to you."),
                          **AUTH_ERRORS}}},
        item: {
            "put": {"summary": f"Associate a {kind.noun} with the ticket (again is fine); primary makes it the "
                               f"primary {kind.noun}", "operationId": f"associateTicket{kind.noun.capitalize()}",
                    "tags": ["tickets"], "parameters": [ticket, target],
                    "description": f"The first {kind.noun} associated becomes primary. Emits "
                                   f"ticket.property_changed ({kind.name}, {kind.primary}) when something changed.",
                    "requestBody": {"required": False, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"primary": {"type": "boolean"}}}}}},
                    "responses": {"200": listing,
                                  "404": error_response(f"No such ticket (or not visible to you), or no such "
                                                        f"{kind.noun}."),
                                  "422": error_response("unknown_fields, or primary is not a boolean."),
                                  **AUTH_ERRORS}},
            "delete": {"summary": f"Dissociate a {kind.noun}; if it was primary, the oldest remaining one is",
                       "operationId": f"dissociateTicket{kind.noun.capitalize()}", "tags": ["tickets"],
                       "parameters": [ticket, target],
                       "responses": {"200": listing,
                                     "404": error_response(f"No such ticket (or not visible to you), or the "
                                                           f"{kind.noun} is not associated."),
                                     **AUTH_ERRORS}},
        },
    }


OPENAPI: dict[str, Any] = {"paths": {**_paths(CONTACTS), **_paths(COMPANIES)}}
