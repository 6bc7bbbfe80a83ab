"""Ticket views over HTTP: the default views and the caller's custom views with their counts, a view's tickets, and custom view edits.

A view's tickets come from the same query as the ticket list
(``api.ticket_queries``), so the caller's access, the filter language, the
search box, sorting and cursors all apply.  Creating, editing and deleting a
custom view needs the "custom views" permission (``tickets.views.may_edit``);
the number of custom views is capped (``max_custom_views``, 409 at the cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.errors import ApiError, forbidden, not_found
from frontdesk.api.keys import SESSIONS, SETTINGS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import ID_SCHEMA, MAX_ID, bad_parameter, parse_int
from frontdesk.api.request_body import int_list_field, json_body
from frontdesk.api.ticket_queries import (
    DEFAULT_SORT, TicketQuery, sort_order, ticket_count, ticket_page, ticket_query,
)
from frontdesk.api.tickets import LIST_PARAMETERS, links_of, page_json
from frontdesk.model import Team, TicketView, TicketViewTeam, utcnow
from frontdesk.model.views import PRIVATE, SHARING, TEAMS
from frontdesk.tickets.access import Principal
from frontdesk.tickets.audit import record_audit
from frontdesk.tickets.properties import PropertySpec, all_properties
from frontdesk.tickets.views import (
    DEFAULT_VIEWS, check_cap, checked_definition, may_edit, open_status_ids, view_visibility, visible_view,
)

routes = web.RouteTableDef()


async def _team_ids(session: AsyncSession, view_ids: list[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {v: [] for v in view_ids}
    if view_ids:
        rows = await session.execute(select(TicketViewTeam.view_id, TicketViewTeam.team_id)
                                     .where(TicketViewTeam.view_id.in_(view_ids)).order_by(TicketViewTeam.team_id))
        for view_id, team_id in rows:
            found[view_id].append(team_id)
    return found


def _custom_json(view: TicketView, team_ids: list[int], count: int | None = None) -> dict[str, Any]:
    body = {"id": str(view.id), "kind": "custom", "name": view.name, "sharing": view.sharing, "team_ids": team_ids,
            "filters": list(view.filters), "sort": view.sort, "owner_user_id": view.owner_user_id}
    if count is not None:
        body["count"] = count
    return body


@dataclass
class _Lookups:
    """Read once per request however many views it counts: the property registry and the open statuses."""

    registry: dict[str, PropertySpec]
    open_ids: list[int]

    @classmethod
    async def load(cls, session: AsyncSession) -> _Lookups:
        return cls(await all_properties(session), await open_status_ids(session))


async def _view_query(session: AsyncSession, request: web.Request, principal: Principal, view_key: str,
                      lookups: _Lookups | None = None) -> TicketQuery:
    """The ticket query of a default view (by key) or a custom view (by id); 404 for one the caller cannot see."""
    lookups = lookups or await _Lookups.load(session)
    default = DEFAULT_VIEWS.get(view_key)
    if default is not None:
        criteria = default.criteria(principal, lookups.open_ids)
        return await ticket_query(session, request, principal, base=tuple(criteria), include_spam=default.spam,
                                  registry=lookups.registry)
    view_id = parse_int(view_key, minimum=1, maximum=MAX_ID)
    if view_id is None:
        raise not_found("view")
    view = await visible_view(session, principal, view_id)
    return await ticket_query(session, request, principal, stored_filters=tuple(view.filters), sort=view.sort,
                              registry=lookups.registry)


@routes.get("/api/v1/views")
async def list_views(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS]() as session:
        lookups = await _Lookups.load(session)
        views: list[dict[str, Any]] = []
        for key, default in DEFAULT_VIEWS.items():
            query = await _view_query(session, request, principal, key, lookups)
            count = await ticket_count(session, query)
            views.append({"id": key, "kind": "default", "name": default.name, "count": count})
        custom = (await session.scalars(select(TicketView).where(view_visibility(principal))
                                        .order_by(TicketView.name, TicketView.id))).all()
        teams = await _team_ids(session, [v.id for v in custom])
        for view in custom:
            query = await _view_query(session, request, principal, str(view.id), lookups)
            views.append(_custom_json(view, teams[view.id], await ticket_count(session, query)))
    return web.json_response({"views": views})


@routes.get("/api/v1/views/{view_id}/tickets")
async def view_tickets(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS]() as session:
        query = await _view_query(session, request, principal, request.match_info["view_id"])
        rows, total, next_cursor = await ticket_page(session, query)
        links = await links_of(session, [row[0].id for row in rows])
    return web.json_response(page_json(query, rows, total, next_cursor, links))


async def _apply(session: AsyncSession, view: TicketView, body: dict[str, Any]) -> list[int]:
    name, sharing, filters = await checked_definition(
        session, body.get("name", view.name), body.get("sharing", view.sharing), body.get("filters", view.filters))
    sort = body.get("sort", view.sort)
    if not isinstance(sort, str) or not sort:
        raise bad_parameter("sort", "'sort' must be a property name, '-' first for descending")
    sort_order(sort, await all_properties(session), session.bind.dialect.name)
    team_ids = int_list_field(body, "team_ids") if "team_ids" in body else (
        (await _team_ids(session, [view.id]))[view.id] if view.id else [])
    if sharing == TEAMS and not team_ids:
        raise ApiError(422, "field_invalid", "a view shared with teams needs 'team_ids'", field="team_ids")
    if sharing != TEAMS:
        team_ids = []
    known = set((await session.scalars(select(Team.id).where(Team.id.in_(team_ids)))).all())
    if unknown := sorted(set(team_ids) - known):
        raise ApiError(422, "unknown_team", "no such team(s)", team_ids=unknown)
    view.name, view.sharing, view.filters, view.sort = name, sharing, filters, sort
    view.updated_at = utcnow()
    session.add(view)
    await session.flush()
    await session.execute(delete(TicketViewTeam).where(TicketViewTeam.view_id == view.id))
    session.add_all([TicketViewTeam(view_id=view.id, team_id=t) for t in sorted(set(team_ids))])
    await session.flush()
    return sorted(set(team_ids))


@routes.post("/api/v1/views")
async def create_view(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if not may_edit(principal, None):
        raise forbidden("custom_views_permission_required", "this needs the 'custom views' permission")
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        await check_cap(session, request.app[SETTINGS].max_custom_views)
        view = TicketView(owner_user_id=principal.user_id, sharing=PRIVATE, filters=[], sort=DEFAULT_SORT,
                          name=body.get("name"))
        team_ids = await _apply(session, view, body)
        answer = _custom_json(view, team_ids)
        record_audit(session, principal, "view.created", "ticket_view", view.id, after=answer)
    return web.json_response(answer, status=201)


async def _editable(session: AsyncSession, request: web.Request) -> TicketView:
    principal = principal_of(request)
    view_id = parse_int(request.match_info["view_id"], minimum=1, maximum=MAX_ID)
    if view_id is None:
        raise not_found("view")
    view = await visible_view(session, principal, view_id)
    if not may_edit(principal, view):
        raise forbidden("custom_views_permission_required",
                        "this needs the 'custom views' permission, and the view's owner or an admin")
    return view


@routes.patch("/api/v1/views/{view_id}")
async def update_view(request: web.Request) -> web.Response:
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        view = await _editable(session, request)
        before = _custom_json(view, (await _team_ids(session, [view.id]))[view.id])
        answer = _custom_json(view, await _apply(session, view, body))
        record_audit(session, principal_of(request), "view.updated", "ticket_view", view.id, before=before,
                     after=answer)
    return web.json_response(answer)


@routes.delete("/api/v1/views/{view_id}")
async def delete_view(request: web.Request) -> web.Response:
    async with request.app[SESSIONS].begin() as session:
        view = await _editable(session, request)
        before = _custom_json(view, (await _team_ids(session, [view.id]))[view.id])
        await session.delete(view)
        record_audit(session, principal_of(request), "view.deleted", "ticket_view", before["id"], before=before)
    return web.Response(status=204)


# --- OpenAPI ----------------------------------------------------------------

_VIEW_ID = {"name": "view_id", "in": "path", "required": True,
            "description": "A default view's key (unassigned, assigned_to_me, my_team_open, all_open, sent, spam) "
                           "or a custom view's id.", "schema": {"type": "string"}}
_CUSTOM_ID = {**_VIEW_ID, "description": "A custom view's id."}
_VIEW_BODY = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 200},
    "sharing": {"type": "string", "enum": list(SHARING)},
    "team_ids": {"type": "array", "items": ID_SCHEMA},
    "filters": {"type": "array", "items": {"type": "string"}, "description": "Filter-language criteria, ANDed."},
    "sort": {"type": "string"},
}}
_ERRORS = {
    "400": error_response("A filter or the sort is invalid; error.filter / error.parameter names it."),
    "403": error_response("The caller lacks the custom views permission, or does not own the view."),
    "422": error_response("A field is invalid; error.field names it."),
}
_PAGE = {"description": "One page of the view's tickets.", "content": {"application/json": {"schema": {
    "type": "object", "required": ["tickets", "total", "limit", "next_cursor"],
    "properties": {"tickets": {"type": "array", "items": {"$ref": "#/components/schemas/TicketSummary"}},
                   "total": {"type": "integer"}, "limit": {"type": "integer"}, "page": {"type": "integer"},
                   "next_cursor": {"type": ["string", "null"]}}}}}}
_VIEW = {"$ref": "#/components/schemas/TicketView"}

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/views": {
            "get": {
                "summary": "The default views and the custom views the caller may see, each with its count",
                "operationId": "listViews", "tags": ["views"],
                "responses": {"200": {"description": "Views.", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["views"],
                    "properties": {"views": {"type": "array", "items": _VIEW}}}}}}, **AUTH_ERRORS},
            },
            "post": {
                "summary": "Create a custom view (custom views permission)",
                "operationId": "createView", "tags": ["views"],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {**_VIEW_BODY, "required": ["name"]}}}},
                "responses": {"201": {"description": "The view.", "content": {"application/json": {"schema": _VIEW}}},
                              **_ERRORS, "409": error_response("The cap on custom views is reached."),
                              **AUTH_ERRORS},
            },
        },
        "/api/v1/views/{view_id}": {
            "patch": {
                "summary": "Change a custom view (custom views permission; its owner or an admin)",
                "operationId": "updateView", "tags": ["views"], "parameters": [_CUSTOM_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _VIEW_BODY}}},
                "responses": {"200": {"description": "The view.", "content": {"application/json": {"schema": _VIEW}}},
                              **_ERRORS, "404": error_response("No such view the caller may see."), **AUTH_ERRORS},
            },
            "delete": {
                "summary": "Delete a custom view (custom views permission; its owner or an admin)",
                "operationId": "deleteView", "tags": ["views"], "parameters": [_CUSTOM_ID],
                "responses": {"204": {"description": "Deleted."}, "403": _ERRORS["403"],
                              "404": error_response("No such view the caller may see."), **AUTH_ERRORS},
            },
        },
        "/api/v1/views/{view_id}/tickets": {
            "get": {
                "summary": "A view's tickets, paginated with stable cursors; ticket-list parameters narrow it further",
                "operationId": "viewTickets", "tags": ["views"],
                "parameters": [_VIEW_ID, *LIST_PARAMETERS],
                "responses": {"200": _PAGE, "400": _ERRORS["400"],
                              "404": error_response("No such view the caller may see."), **AUTH_ERRORS},
            },
        },
    },
    "components": {"schemas": {"TicketView": {
        "type": "object", "required": ["id", "kind", "name"],
        "properties": {
            "id": {"type": "string", "description": "A default view's key or a custom view's id."},
            "kind": {"type": "string", "enum": ["default", "custom"]},
            "name": {"type": "string"},
            "count": {"type": "integer", "description": "Tickets in the view the caller may see."},
            "sharing": {"type": "string", "enum": list(SHARING)},
            "team_ids": {"type": "array", "items": {"type": "integer"}},
            "filters": {"type": "array", "items": {"type": "string"}},
            "sort": {"type": "string"},
            "owner_user_id": {"type": ["integer", "null"]},
        },
    }}},
}
