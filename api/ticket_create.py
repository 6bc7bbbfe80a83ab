"""``POST /api/v1/tickets``: an agent creates a ticket by hand.

It needs a name, a pipeline and a status, plus the status's required stage
properties, and may associate an existing or new contact and company.  The
ticket and its ``ticket.created`` event commit together.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import Principal, principal_of
from frontdesk.api.contacts import optional_texts
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import closed_object, json_request, json_response, ref, text
from frontdesk.api.parameters import ID_SCHEMA
from frontdesk.api.request_body import int_field, json_body, text_field
from frontdesk.api.tickets import links_of, ticket_json
from frontdesk.events import Actor
from frontdesk.model import Company, Contact, Pipeline, Status, Team, TicketParticipant, User
from frontdesk.tickets.access import pipeline_visibility
from frontdesk.tickets import contacts as contact_rules
from frontdesk.tickets import creation
from frontdesk.tickets.associations import COMPANIES, CONTACTS, link
from frontdesk.tickets.header_fields import header_text
from frontdesk.tickets.properties import BUILT_IN
from frontdesk.tickets.property_values import validate_custom_values, validate_value

routes = web.RouteTableDef()


def _reference(body: dict[str, Any], id_field: str, name_field: str) -> tuple[str, int | str]:
    """``id_field`` (an id) or ``name_field`` (an internal name): which was given, and its checked value."""
    if body.get(id_field) is not None:
        return id_field, int_field(body, id_field, required=True)
    name = body.get(name_field)
    if name is None:
        raise ApiError(422, "field_required", f"{id_field!r} (or {name_field!r}, its internal name) is required",
                       field=id_field)
    if isinstance(name, int) and not isinstance(name, bool):
        return id_field, int_field(body, name_field, required=True)  # an id given under the name's key
    if not isinstance(name, str):
        raise ApiError(422, "field_invalid", f"{name_field!r} must be an internal name", field=name_field)
    return name_field, name


async def _pipeline(session: AsyncSession, principal: Principal, body: dict[str, Any]) -> Pipeline:
    given, ref = _reference(body, "pipeline_id", "pipeline")
    column = Pipeline.id if given == "pipeline_id" else Pipeline.internal_name
    pipeline = await session.scalar(select(Pipeline).where(column == ref, pipeline_visibility(principal)))
    if pipeline is None:
        raise not_found("pipeline")
    return pipeline


async def _status(session: AsyncSession, pipeline: Pipeline, body: dict[str, Any]) -> Status:
    given, ref = _reference(body, "status_id", "status")
    column = Status.id if given == "status_id" else Status.internal_name
    status = await session.scalar(select(Status).where(column == ref, Status.pipeline_id == pipeline.id))
    if status is None:
        raise ApiError(422, "status_not_in_pipeline", f"status {ref!r} is not a status of pipeline "
                       f"{pipeline.internal_name!r}", field="status_id")
    return status


async def _contact(session: AsyncSession, spec: Any) -> Contact | None:
    """An existing contact by id, or by email when it is already known, or a new one."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ApiError(422, "field_invalid", "'contact' must be {id} or {email, first_name, ...}", field="contact")
    if "id" in spec:
        contact = await session.get(Contact, int_field(spec, "id", required=True))
        if contact is None:
            raise ApiError(422, "unknown_contact", "no contact with that id", field="contact")
        return contact
    values = optional_texts(spec, contact_rules.CONTACT_FIELDS, prefix="contact.")
    if values.get("email"):
        known = await contact_rules.contact_with_email(
            session, contact_rules.normalized_email(values["email"], "contact.email"))
        if known is not None:
            return known
    return await contact_rules.create_contact(session, values, company_id=int_field(spec, "company_id"),
                                              prefix="contact.")


async def _contacts(session: AsyncSession, body: dict[str, Any]) -> list[Contact]:
    """``contact`` (one) or ``contacts`` (several; the first is the ticket's primary contact)."""
    return [c for c in await _each(session, body, "contact", "contacts", _contact) if c is not None]


async def _company(session: AsyncSession, spec: Any) -> Company | None:
    """An existing company by id, or a new one."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ApiError(422, "field_invalid", "'company' must be {id} or {name, domain}", field="company")
    if "id" in spec:
        company = await session.get(Company, int_field(spec, "id", required=True))
        if company is None:
            raise ApiError(422, "unknown_company", "no company with that id", field="company")
        return company
    return await contact_rules.create_company(
        session, optional_texts(spec, contact_rules.COMPANY_FIELDS, prefix="company."), prefix="company.")


async def _companies(session: AsyncSession, body: dict[str, Any], contact: Contact | None) -> list[Company]:
    """``company`` or ``companies`` (the first is primary); without either, the primary contact's company.

    A new primary contact without a company joins the primary company.
    """
    found = [c for c in await _each(session, body, "company", "companies", _company) if c is not None]
    if not found and contact is not None and contact.company_id is not None:
        found = [await session.get_one(Company, contact.company_id)]
    if found and contact is not None and contact.company_id is None:
        contact.company_id = found[0].id
    return found


async def _each(session: AsyncSession, body: dict[str, Any], one: str, many: str, resolve: Any) -> list[Any]:
    """The rows ``body[one]`` or the list ``body[many]`` name, each once, in order."""
    if one in body and many in body:
        raise ApiError(422, "field_invalid", f"give either '{one}' or '{many}'", field=many)
    specs = body.get(many) if many in body else [body.get(one)]
    if not isinstance(specs, list):
        raise ApiError(422, "field_invalid", f"'{many}' must be a list", field=many)
    found: list[Any] = []
    for spec in specs:
        row = await resolve(session, spec)
        if row not in found:
            found.append(row)
    return found


async def _built_in_values(session: AsyncSession, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": header_text(text_field(body, "name", max_length=500), "name"),
        "description": validate_value(BUILT_IN["description"], body.get("description")),
        "priority": validate_value(BUILT_IN["priority"], body.get("priority")),
        "category": validate_value(BUILT_IN["category"], body.get("category")),
    }
    # Without an explicit owner the creator owns the ticket, so an agent with
    # owned-only access can see what they just made.
    owner_id = int_field(body, "owner_id") if "owner_id" in body else principal.user_id
    if owner_id is not None and await session.get(User, owner_id) is None:
        raise ApiError(422, "unknown_user", "owner_id names no user", field="owner_id")
    team_id = int_field(body, "team_id")
    if team_id is not None and await session.get(Team, team_id) is None:
        raise ApiError(422, "unknown_team", "team_id names no team", field="team_id")
    values.update(owner_id=owner_id, team_id=team_id)
    return values


@routes.post("/api/v1/tickets")
async def create_ticket(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await _pipeline(session, principal, body)
        status = await _status(session, pipeline, body)
        values = await _built_in_values(session, principal, body)
        custom = await validate_custom_values(session, body.get("properties") or {})
        contacts = await _contacts(session, body)
        contact = contacts[0] if contacts else None
        companies = await _companies(session, body, contact)
        # Checks the status's required stage properties before the row exists.
        ticket = await creation.create_ticket(
            session, actor=Actor.agent(principal.user_id), status=status, source=creation.MANUAL_SOURCE, **values,
            custom_properties=custom, contact_id=contact.id if contact else None,
            company_id=companies[0].id if companies else None,
        )
        await link(session, CONTACTS, ticket.id, [c.id for c in contacts[1:]])
        await link(session, COMPANIES, ticket.id, [c.id for c in companies[1:]])
        # Associated contacts take part in the ticket: their replies quoting [#id] are trusted.
        addresses = sorted({c.email for c in contacts if c.email})
        session.add_all([TicketParticipant(ticket_id=ticket.id, address=a) for a in addresses])
        await session.flush()
        await session.refresh(ticket)
        # The same shape as GET and PATCH answer (TicketSummary).
        result = ticket_json(ticket, pipeline, status, contact, (await links_of(session, [ticket.id]))[ticket.id])
    return web.json_response(result, status=201)


_ERR = {"description": "error; `error.code` names the broken rule"}
_NULLABLE_ID = {"oneOf": [ID_SCHEMA, {"type": "null"}]}
_BY_ID = closed_object({"id": ID_SCHEMA}, "id")
_CONTACT = {"oneOf": [_BY_ID, closed_object({
    "email": text(320), "first_name": {"type": ["string", "null"], "maxLength": 200},
    "last_name": {"type": ["string", "null"], "maxLength": 200}, "phone": {"type": ["string", "null"], "maxLength": 64},
    "mobile_phone": {"type": ["string", "null"], "maxLength": 64}, "company_id": _NULLABLE_ID},
    minProperties=1)],
    "description": "{id} of a known contact, or {email, first_name, last_name, phone, mobile_phone, company_id}: "
                   "the contact with that email when there is one, else a new contact (without an email, "
                   "always a new one)"}
_COMPANY = {"oneOf": [_BY_ID, closed_object({"name": text(300), "domain": {"type": ["string", "null"],
                                                                          "maxLength": 255}}, "name")],
            "description": "{id} of a known company, or {name, domain} for a new one"}
_REFERENCE = {"oneOf": [text(), ID_SCHEMA]}
OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/tickets": {
        "post": {
            "summary": "Create a ticket by hand; the status's required stage properties must have values "
                       "(422 required_properties_missing lists them). Emits ticket.created (actor agent).",
            "requestBody": json_request(closed_object({
                "name": text(500),
                "pipeline_id": _NULLABLE_ID,
                "pipeline": {**_REFERENCE, "description": "internal name, instead of pipeline_id"},
                "status_id": _NULLABLE_ID,
                "status": {**_REFERENCE, "description": "internal name, instead of status_id"},
                "description": {"type": ["string", "null"]},
                "priority": {"enum": [*BUILT_IN["priority"].options, None],
                             "x-error": {"code": "property_value_invalid", "property": "priority"}},
                "category": {"type": ["string", "null"]},
                "owner_id": {**_NULLABLE_ID, "description": "defaults to the caller"},
                "team_id": _NULLABLE_ID,
                "properties": {"type": ["object", "null"], "description": "custom property values by name"},
                "contact": {"oneOf": [_CONTACT, {"type": "null"}]},
                "contacts": {"type": "array", "items": _CONTACT,
                             "description": "several contacts instead of 'contact'; the first is the main one"},
                "company": {"oneOf": [_COMPANY, {"type": "null"}],
                            "description": "without it, the primary contact's company"},
                "companies": {"type": "array", "items": _COMPANY,
                              "description": "several companies instead of 'company'; the first is primary"},
            }, "name")),
            "responses": {"201": json_response("the ticket, as GET lists it", ref("TicketSummary")), "404": _ERR, "422": _ERR},
        }
    }
}}
