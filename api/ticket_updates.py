"""Agents change a ticket: ``PATCH /api/v1/tickets/{id}``.

Status (by internal name or id), owner, team, priority, category, name,
description and custom ``properties``.  A status change emits
``ticket.status_changed`` (which runs the new status's action chain) and
stamps ``closed_at`` / ``reopened_at``; built-in changes emit one
``ticket.property_changed``, and each changed custom property one more.
Required stage properties (:func:`frontdesk.tickets.stage_properties.check_required_properties`)
are checked against the ticket as the whole request leaves it, custom
values included, before anything is written.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from frontdesk.api.auth import principal_of
from frontdesk.api.errors import ApiError
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, closed_object, error_response, json_request, json_response, ref
from frontdesk.api.parameters import ID_SCHEMA, MAX_ID, path_id
from frontdesk.api.replies import run_after_commit
from frontdesk.api.request_body import json_body
from frontdesk.api.tickets import links_of, ticket_json
from frontdesk.events import AGENT, Actor, TicketPropertyChanged
from frontdesk.model import Contact, Pipeline, Status, Team, Ticket, User, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.header_fields import header_text
from frontdesk.tickets.properties import PRIORITIES
from frontdesk.tickets.property_values import validate_custom_values
from frontdesk.tickets.search_index import refresh_ticket_index
from frontdesk.tickets.stage_properties import check_required_properties, values_after
from frontdesk.tickets.status import move_status, resolve_status

routes = web.RouteTableDef()

FIELDS = ("status", "owner_id", "team_id", "priority", "category", "name", "description", "properties")
TEXT_LIMITS = {"priority": 20, "category": 100, "name": 500, "description": 100_000}
# Values that end up in email headers (the subject) must stay on one line.
ONE_LINE = ("priority", "category", "name")


def _invalid(field: str, message: str, code: str = "field_invalid") -> ApiError:
    return ApiError(422, code, message, field=field)


async def _status(session: Any, ticket: Ticket, value: Any) -> Status:
    statuses = list((await session.scalars(
        select(Status).where(Status.pipeline_id == ticket.pipeline_id).order_by(Status.position, Status.id))).all())
    return resolve_status(statuses, value)


def _text(field: str, value: Any) -> str | None:
    if value is None:
        if field == "name":
            raise _invalid(field, "'name' cannot be empty")
        return None
    if not isinstance(value, str) or (field == "name" and not value.strip()):
        raise _invalid(field, f"'{field}' must be a string")
    if len(value) > TEXT_LIMITS[field]:
        raise _invalid(field, f"'{field}' is longer than {TEXT_LIMITS[field]} characters", "field_too_long")
    if field in ONE_LINE:
        header_text(value, field)
    return value.strip() if field != "description" else value


async def _reference(session: Any, field: str, value: Any, model: type) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, f"'{field}' must be an integer or null")
    row = await session.get(model, value)
    if row is None or (model is User and not row.is_active):
        raise _invalid(field, f"no active {model.__name__.lower()} {value}", "unknown_reference")
    return value


async def _custom_changes(session: Any, ticket: Ticket, raw: Any) -> dict[str, dict[str, Any]]:
    """Validated custom values that differ from the ticket's; ``null`` clears a value."""
    current = ticket.custom_properties or {}
    wanted = await validate_custom_values(session, raw)
    return {name: {"from": current.get(name), "to": value}
            for name, value in wanted.items() if current.get(name) != value}


@routes.patch(r"/api/v1/tickets/{ticket_id:\d+}")
async def patch_ticket(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await json_body(request)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(422, "unknown_fields", f"cannot change {', '.join(unknown)}", fields=unknown)
    if not body:
        raise ApiError(422, "nothing_to_change", f"send one or more of {', '.join(FIELDS)}")
    actor = Actor.agent(principal.user_id)
    async with request.app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, path_id(request, "ticket_id"))
        current = await session.get(Status, ticket.status_id)
        assert current is not None
        target = await _status(session, ticket, body["status"]) if "status" in body else current
        wanted: dict[str, Any] = {}
        for field in ("priority", "category", "name", "description"):
            if field in body:
                wanted[field] = _text(field, body[field])
        if "owner_id" in body:
            wanted["owner_id"] = await _reference(session, "owner_id", body["owner_id"], User)
        if "team_id" in body:
            wanted["team_id"] = await _reference(session, "team_id", body["team_id"], Team)
        changes = {f: {"from": getattr(ticket, f), "to": v} for f, v in wanted.items() if getattr(ticket, f) != v}
        custom = await _custom_changes(session, ticket, body["properties"]) if "properties" in body else {}
        if target.id != current.id:
            after = values_after(ticket, {f: c["to"] for f, c in changes.items()}, {n: c["to"] for n, c in custom.items()})
            await check_required_properties(session, after, target.id, actor_kind=AGENT)
        for field, change in changes.items():
            setattr(ticket, field, change["to"])
        if changes:
            await record_events(session, TicketPropertyChanged(ticket_id=ticket.id, actor=actor, changes=changes))
        if custom:
            # A new dict, not an in-place edit: SQLAlchemy only notices a reassigned JSON column.
            values = {**(ticket.custom_properties or {}), **{name: c["to"] for name, c in custom.items()}}
            ticket.custom_properties = {name: value for name, value in values.items() if value is not None}
            await record_events(session, *(
                TicketPropertyChanged(ticket_id=ticket.id, actor=actor, changes={name: change})
                for name, change in custom.items()))
        if changes or custom:
            ticket.updated_at = utcnow()
        if "name" in changes or "description" in changes:
            await refresh_ticket_index(session, ticket.id)
        if target.id != current.id:
            await record_events(session, move_status(ticket, current, target, actor=actor))
        pipeline = await session.get_one(Pipeline, ticket.pipeline_id)
        contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id is not None else None
        # The ticket as GET /tickets/{id} shows it, less its messages (which a change does not touch).
        answer = ticket_json(ticket, pipeline, target, contact, (await links_of(session, [ticket.id]))[ticket.id])
    await run_after_commit(request.app)
    return web.json_response(answer)


OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/tickets/{ticket_id}": {
            "patch": {
                "summary": "Change a ticket's status, owner, team, priority, category, name, description "
                           "or custom properties",
                "operationId": "updateTicket",
                "tags": ["tickets"],
                "description": (
                    "A status change (by internal name or id, within the ticket's pipeline) emits "
                    "ticket.status_changed and runs the new status's actions; closing stamps closed_at, "
                    "leaving a closed status stamps reopened_at. properties sets custom property values "
                    "(null clears one); they count towards the new status's required stage properties, "
                    "and each changed one emits its own ticket.property_changed."
                ),
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "requestBody": json_request(closed_object({
                    "status": {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
                                         {"type": "integer", "minimum": 1, "maximum": MAX_ID}],
                               "description": "internal name, label (any case) or id of a status of the pipeline"},
                    "owner_id": {"oneOf": [ID_SCHEMA, {"type": "null"}]},
                    "team_id": {"oneOf": [ID_SCHEMA, {"type": "null"}]},
                    "priority": {"enum": [*PRIORITIES, None], "x-error": {"code": "property_value_invalid",
                                                                         "property": "priority"}},
                    "category": {"type": ["string", "null"], "maxLength": TEXT_LIMITS["category"]},
                    "name": {"type": "string", "minLength": 1, "maxLength": TEXT_LIMITS["name"], "pattern": r"\S"},
                    "description": {"type": ["string", "null"], "maxLength": TEXT_LIMITS["description"]},
                    "properties": {"type": "object", "description": "Custom property values by name"},
                }, minProperties=1, **{"x-error": {"code": "nothing_to_change"}})),
                "responses": {
                    "200": json_response("The ticket after the change, as GET /api/v1/tickets/{ticket_id} shows it "
                                         "less its messages.", ref("TicketSummary")),
                    "404": error_response("No such ticket, or not visible to you."),
                    "422": error_response("Unknown field, status or property, invalid or read-only value, or a required "
                                         "stage property missing."),
                    **AUTH_ERRORS,
                },
            }
        }
    }
}
