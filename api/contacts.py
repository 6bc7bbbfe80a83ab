"""Contacts and companies: ``/api/v1/contacts`` and ``/api/v1/companies`` (create, read, update, list, search).

Every authenticated user may read and write them: agents work with the
customers' records all day, and a contact is not a ticket, so ticket access
does not narrow it.  The rules (header-safe values, one contact per address)
are :mod:`frontdesk.tickets.contacts`'; this module only speaks HTTP.
Lists are newest first, paged with an opaque ``cursor``; ``q`` is a plain
case-insensitive substring match.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.pages import PAGE_PARAMETERS, page_end, paged
from frontdesk.api.parameters import ID_SCHEMA, MAX_ID, path_id
from frontdesk.api.request_body import int_field, json_body
from frontdesk.model import Company, Contact
from frontdesk.tickets import contacts as rules
from frontdesk.tickets.associations import COMPANIES, CONTACTS
from frontdesk.tickets.search_index import refresh_linked_tickets

routes = web.RouteTableDef()

def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "mobile_phone": contact.mobile,
        "company_id": contact.company_id,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }


def company_json(company: Company) -> dict[str, Any]:
    return {"id": company.id, "name": company.name, "domain": company.domain,
            "created_at": company.created_at.isoformat(), "updated_at": company.updated_at.isoformat()}


def optional_texts(body: dict[str, Any], fields: Any, *, prefix: str = "") -> dict[str, str | None]:
    """The given ``fields`` of ``body``: a string (trimmed; empty is null) or null; absent ones are left out."""
    values: dict[str, str | None] = {}
    for field in fields:
        if field not in body:
            continue
        value = body[field]
        if value is not None and not isinstance(value, str):
            raise ApiError(422, "field_invalid", f"'{prefix}{field}' must be a string or null", field=f"{prefix}{field}")
        values[field] = (value.strip() or None) if isinstance(value, str) else None
    return values


async def _page(request: web.Request, model: Any, search: Callable[[str], ColumnElement[bool]],
                to_json: Callable[[Any], dict[str, Any]], key: str) -> web.Response:
    statement, limit = paged(request, select(model), model.id)
    text = request.query.get("q", "").strip()
    if text:
        statement = statement.where(search(text))
    async with request.app[SESSIONS]() as session:
        rows, next_cursor = page_end(list((await session.scalars(statement)).all()), limit, lambda r: r.id)
    return web.json_response({key: [to_json(r) for r in rows], "limit": limit, "next_cursor": next_cursor})


async def _one(session: AsyncSession, model: Any, ident: int, what: str) -> Any:
    row = await session.get(model, ident)
    if row is None:
        raise not_found(what)
    return row


# --- contacts -----------------------------------------------------------------
# The request-schema gate has already refused unknown fields and wrong types
# (``_CONTACT_BODY`` / ``_COMPANY_BODY`` below); these handlers only trim.

@routes.get("/api/v1/contacts")
async def list_contacts(request: web.Request) -> web.Response:
    return await _page(request, Contact, rules.contact_search, contact_json, "contacts")


@routes.post("/api/v1/contacts")
async def create_contact(request: web.Request) -> web.Response:
    async def make(session: AsyncSession, body: dict[str, Any]) -> Contact:
        return await rules.create_contact(session, optional_texts(body, rules.CONTACT_FIELDS),
                                          company_id=int_field(body, "company_id"))
    return await _create(request, make, contact_json)


@routes.get(r"/api/v1/contacts/{contact_id:\d+}")
async def get_contact(request: web.Request) -> web.Response:
    return await _read(request, Contact, "contact", contact_json)


@routes.patch(r"/api/v1/contacts/{contact_id:\d+}")
async def update_contact(request: web.Request) -> web.Response:
    async def change(session: AsyncSession, contact: Contact, body: dict[str, Any]) -> None:
        await rules.update_contact(session, contact, optional_texts(body, rules.CONTACT_FIELDS),
                                   company_id=int_field(body, "company_id"), set_company="company_id" in body)
    return await _update(request, Contact, "contact", CONTACTS, change, contact_json)


# --- companies ----------------------------------------------------------------

@routes.get("/api/v1/companies")
async def list_companies(request: web.Request) -> web.Response:
    return await _page(request, Company, rules.company_search, company_json, "companies")


@routes.post("/api/v1/companies")
async def create_company(request: web.Request) -> web.Response:
    async def make(session: AsyncSession, body: dict[str, Any]) -> Company:
        return await rules.create_company(session, optional_texts(body, rules.COMPANY_FIELDS))
    return await _create(request, make, company_json)


@routes.get(r"/api/v1/companies/{company_id:\d+}")
async def get_company(request: web.Request) -> web.Response:
    return await _read(request, Company, "company", company_json)


@routes.patch(r"/api/v1/companies/{company_id:\d+}")
async def update_company(request: web.Request) -> web.Response:
    async def change(session: AsyncSession, company: Company, body: dict[str, Any]) -> None:
        rules.update_company(company, optional_texts(body, rules.COMPANY_FIELDS))
    return await _update(request, Company, "company", COMPANIES, change, company_json)


# --- one shape for both records -------------------------------------------------

async def _create(request: web.Request, make: Callable[[AsyncSession, dict[str, Any]], Awaitable[Any]],
                  to_json: Callable[[Any], dict[str, Any]]) -> web.Response:
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        answer = to_json(await make(session, body))
    return web.json_response(answer, status=201)


async def _read(request: web.Request, model: Any, what: str, to_json: Callable[[Any], dict[str, Any]]) -> web.Response:
    async with request.app[SESSIONS]() as session:
        record = await _one(session, model, path_id(request, f"{what}_id"), what)
    return web.json_response(to_json(record))


async def _update(request: web.Request, model: Any, what: str, kind: Any,
                  change: Callable[[AsyncSession, Any, dict[str, Any]], Awaitable[None]],
                  to_json: Callable[[Any], dict[str, Any]]) -> web.Response:
    """Change one record, then refresh the search rows of the tickets linked to it, in one transaction."""
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        record = await _one(session, model, path_id(request, f"{what}_id"), what)
        await change(session, record, body)
        await session.flush()
        await refresh_linked_tickets(session, kind, record.id)
        answer = to_json(record)
    return web.json_response(answer)


# --- OpenAPI ------------------------------------------------------------------

_TEXT = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
def _record(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _id_path(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}]


def _crud(noun: str, plural: str, schema: str, body: dict[str, Any], search: str,
          conflict: dict[str, Any]) -> dict[str, Any]:
    """The four operations of ``/api/v1/{plural}`` and ``/api/v1/{plural}/{id}``."""
    page = {"type": "object", "required": [plural, "limit", "next_cursor"], "properties": {
        plural: {"type": "array", "items": {"$ref": f"#/components/schemas/{schema}"}},
        "limit": {"type": "integer"}, "next_cursor": _TEXT}}
    request = {"required": True, "content": {"application/json": {"schema": body}}}
    title, titles = noun.capitalize(), plural.capitalize()
    return {
        f"/api/v1/{plural}": {
            "get": {"summary": f"List {plural}, newest first", "operationId": f"list{titles}", "tags": [plural],
                    "parameters": [*PAGE_PARAMETERS, {"name": "q", "in": "query", "required": False,
                                                       "description": search, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": f"One page of {plural}.",
                                          "content": {"application/json": {"schema": page}}},
                                  "400": error_response("invalid_parameter: limit or cursor."), **AUTH_ERRORS}},
            "post": {"summary": f"Create a {noun}", "operationId": f"create{title}", "tags": [plural],
                     "requestBody": request,
                     "responses": {"201": {"description": f"The new {noun}.", **_record(schema)},
                                   **conflict,
                                   "422": error_response("A value is missing, invalid, too long or not one line; "
                                                         "error.field names it."),
                                   **AUTH_ERRORS}},
        },
        f"/api/v1/{plural}/{{{noun}_id}}": {
            "get": {"summary": f"One {noun}", "operationId": f"get{title}", "tags": [plural],
                    "parameters": _id_path(f"{noun}_id"),
                    "responses": {"200": {"description": f"The {noun}.", **_record(schema)},
                                  "404": error_response(f"No such {noun}."), **AUTH_ERRORS}},
            "patch": {"summary": f"Change a {noun}; null clears a value", "operationId": f"update{title}",
                      "tags": [plural], "parameters": _id_path(f"{noun}_id"), "requestBody": request,
                      "responses": {"200": {"description": f"The {noun} after the change.", **_record(schema)},
                                    "404": error_response(f"No such {noun}."),
                                    **conflict,
                                    "422": error_response("A value is invalid; error.field names it."),
                                    **AUTH_ERRORS}},
        },
    }


_CONTACT_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "email": {**_TEXT, "maxLength": 320, "description": "Stored lower-cased; unique."},
    "first_name": {**_TEXT, "maxLength": 200}, "last_name": {**_TEXT, "maxLength": 200},
    "phone": {**_TEXT, "maxLength": 64}, "mobile_phone": {**_TEXT, "maxLength": 64},
    "company_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID}}}
_COMPANY_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "name": {**_TEXT, "maxLength": 300}, "domain": {**_TEXT, "maxLength": 255}}}

OPENAPI: dict[str, Any] = {
    "paths": {
        **_crud("contact", "contacts", "ContactRecord", _CONTACT_BODY,
                "Case-insensitive substring of the email, first or last name (or both), phone or mobile phone.",
                {"409": error_response("contact_email_taken: a contact has this address (error.contact_id names it).")}),
        **_crud("company", "companies", "Company", _COMPANY_BODY, "Case-insensitive substring of the name or domain.", {}),
    },
    "components": {"schemas": {
        "ContactRecord": {"type": "object", "required": ["id", "email", "first_name", "last_name", "phone",
                                                         "mobile_phone", "company_id"],
                          "properties": {"id": {"type": "integer"}, "email": _TEXT, "first_name": _TEXT,
                                         "last_name": _TEXT, "phone": _TEXT, "mobile_phone": _TEXT,
                                         "company_id": {"type": ["integer", "null"]},
                                         "created_at": _TIME, "updated_at": _TIME}},
        "Company": {"type": "object", "required": ["id", "name", "domain"],
                    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "domain": _TEXT,
                                   "created_at": _TIME, "updated_at": _TIME}},
    }},
}
