"""Read tickets: the filtered, paginated list and one ticket with its whole conversation.

Every query goes through :func:`frontdesk.tickets.access.ticket_visibility`, the list
(built in ``api.ticket_queries``), its total and the detail alike, so a user
never learns of a ticket they may not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.contacts import company_json, contact_json
from frontdesk.api.html import attachment_urls, safe_html
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import path_id
from frontdesk.api.ticket_queries import (
    DEFAULT_LIMIT, MAX_LIMIT, TicketQuery, status_filter, ticket_page, ticket_query,
)
from frontdesk.model import Attachment, Company, Contact, Message, Pipeline, Status, Ticket
from frontdesk.model.sla import CLOCK_STATES
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.associations import COMPANIES, CONTACTS, associated
from frontdesk.tickets.sla.queries import ticket_clocks
from frontdesk.tickets.sla.settings import TARGET_KINDS

routes = web.RouteTableDef()

# --- serialization ----------------------------------------------------------

def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Links:
    """A ticket's associated contacts and companies, oldest association first."""

    contacts: list[Contact]
    companies: list[Company]


async def links_of(session: AsyncSession, ticket_ids: Iterable[int]) -> dict[int, Links]:
    """The associations of several tickets, in two queries."""
    ids = list(ticket_ids)
    contacts = await associated(session, CONTACTS, ids)
    companies = await associated(session, COMPANIES, ids)
    return {t: Links(contacts[t], companies[t]) for t in ids}


def associated_json(ticket: Ticket, links: Links) -> dict[str, Any]:
    return {
        "contacts": [{**contact_json(c), "primary": c.id == ticket.contact_id} for c in links.contacts],
        "companies": [{**company_json(c), "primary": c.id == ticket.company_id} for c in links.companies],
    }


def ticket_json(ticket: Ticket, pipeline: Pipeline, status: Status, contact: Contact | None,
                links: Links) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "name": ticket.name,
        "description": ticket.description,
        "pipeline": {"id": pipeline.id, "name": pipeline.name, "internal_name": pipeline.internal_name},
        "status": {"id": status.id, "label": status.label, "internal_name": status.internal_name,
                   "is_closed": status.is_closed},
        "priority": ticket.priority,
        "category": ticket.category,
        "owner_id": ticket.owner_id,
        "team_id": ticket.team_id,
        "source_channel": ticket.source_channel,
        "contact": contact_json(contact) if contact is not None else None,
        **associated_json(ticket, links),
        "custom_properties": ticket.custom_properties,
        "spam": ticket.is_spam,
        "created_at": _time(ticket.created_at),
        "updated_at": _time(ticket.updated_at),
        "closed_at": _time(ticket.closed_at),
        "reopened_at": _time(ticket.reopened_at),
    }


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.blob,
        "inline": attachment.is_inline,
        "content_id": attachment.content_id,
        "from_tnef": attachment.from_tnef,
        "remote_url": attachment.url,
        "download_url": f"/api/v1/attachments/{attachment.id}" if attachment.blob else None,
    }


def message_json(message: Message, attachments: list[Attachment]) -> dict[str, Any]:
    files = [attachment_json(a) for a in attachments]
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "channel": message.channel,
        "source": message.source,
        "external_id": message.external_id,
        "in_reply_to": message.in_reply_to,
        "references": message.references,
        "from": {"address": message.from_address, "name": message.from_name},
        "to": message.to_addresses,
        "cc": message.cc_addresses,
        "subject": message.subject,
        "text": message.text_body,
        # Served sanitized, inline images pointing at their downloads; the
        # stored HTML and the raw source stay as received.
        "html": safe_html(message.html_body, attachment_urls([(f["content_id"], f["download_url"]) for f in files])),
        "reply_text": message.reply_text,
        "author_kind": message.author_kind,
        "author_user_id": message.author_user_id,
        "screening": {"verdict": message.screening, "reason": message.screening_reason},
        "match": {"rule": message.match_rule, "detail": message.match_detail},
        "is_forwarded": message.is_forwarded,
        "is_automated": message.is_automated,
        "delivery_state": message.delivery_state,
        "defects": message.defects,
        "sent_at": _time(message.sent_at),
        "created_at": _time(message.created_at),
        "raw_url": f"/api/v1/messages/{message.id}/raw" if message.raw_blob else None,
        "attachments": files,
    }


# --- handlers ---------------------------------------------------------------

@routes.get("/api/v1/tickets")
async def list_tickets(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS]() as session:
        if request.query.get("status"):
            await status_filter(session, principal, request.query["status"])  # 400 naming it when it names nothing
        query = await ticket_query(session, request, principal)
        rows, total, next_cursor = await ticket_page(session, query)
        links = await links_of(session, [row[0].id for row in rows])
    return web.json_response(page_json(query, rows, total, next_cursor, links))



def page_json(query: TicketQuery, rows: list[Any], total: int, next_cursor: str | None,
              links: dict[int, Links]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tickets": [ticket_json(*row, links[row[0].id]) for row in rows],
        "total": total,
        "limit": query.limit,
        "next_cursor": next_cursor,
    }
    if query.page is not None:
        body["page"] = query.page
    return body


async def _ticket_detail(session: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    pipeline = await session.get_one(Pipeline, ticket.pipeline_id)
    status = await session.get_one(Status, ticket.status_id)
    contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id is not None else None
    messages = (
        await session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.created_at, Message.id)
        )
    ).all()
    by_message: dict[int, list[Attachment]] = {m.id: [] for m in messages}
    if messages:
        attachments = await session.scalars(
            select(Attachment).where(Attachment.message_id.in_(by_message)).order_by(Attachment.id)
        )
        for attachment in attachments:
            by_message[attachment.message_id].append(attachment)
    body = ticket_json(ticket, pipeline, status, contact, (await links_of(session, [ticket.id]))[ticket.id])
    body["sla"] = await ticket_clocks(session, ticket.id)
    body["messages"] = [message_json(m, by_message[m.id]) for m in messages]
    return body


@routes.get(r"/api/v1/tickets/{ticket_id:\d+}")
async def get_ticket(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        ticket = await visible_ticket(session, principal_of(request), path_id(request, "ticket_id"))
        return web.json_response(await _ticket_detail(session, ticket))


# --- OpenAPI ----------------------------------------------------------------

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


LIST_PARAMETERS: list[dict[str, Any]] = [
    _query("limit", f"Tickets per page (1-{MAX_LIMIT}, default {DEFAULT_LIMIT}).",
           {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    _query("cursor", "Opaque position from a previous answer's next_cursor.", {"type": "string"}),
    _query("page", "1-based page number (alternative to cursor).", {"type": "integer", "minimum": 1}),
    _query("sort", "A property name to sort by, '-' first for descending (default -updated_at); "
                   "unknown values sort last. sla_due: the soonest running SLA clock's due time, tickets "
                   "without one last.", {"type": "string"}),
    {"name": "filter", "in": "query", "required": False, "style": "form", "explode": True,
     "description": "Filter-language criteria, ANDed: property:operator[:value], e.g. priority:in:high,urgent "
                    "(see docs/api.md).", "schema": {"type": "array", "items": {"type": "string"}}},
    _query("pipeline", "Pipeline internal name or id (pipeline:eq:...).", {"type": "string"}),
    _query("status", "Status internal name or label (status:eq:...).", {"type": "string"}),
    _query("owner", "Owner user id, 'me', or 'none' for unassigned.", {"type": "string"}),
    _query("team", "Team id, or 'none'.", {"type": "string"}),
    _query("priority", "Priority value (priority:eq:...).", {"type": "string"}),
    _query("sla_state", "Tickets with an SLA clock in this state.", {"type": "string", "enum": list(CLOCK_STATES)}),
    _query("q", "Search: ticket id, name and description, the contact's names, email and phone numbers, "
                "the company name and message bodies.", {"type": "string"}),
]

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/tickets": {
            "get": {
                "summary": "List the tickets the caller may see",
                "operationId": "listTickets",
                "tags": ["tickets"],
                "description": (
                    "Newest activity first by default. Page with `cursor` (the previous answer's "
                    "`next_cursor`) or with `page`; `total` counts every matching ticket the caller may see."
                ),
                "parameters": LIST_PARAMETERS,
                "responses": {
                    "200": {"description": "One page of tickets.", "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["tickets", "total", "limit", "next_cursor"],
                        "properties": {
                            "tickets": {"type": "array", "items": {"$ref": "#/components/schemas/TicketSummary"}},
                            "total": {"type": "integer"},
                            "limit": {"type": "integer"},
                            "page": {"type": "integer"},
                            "next_cursor": _NULLABLE_STRING,
                        },
                    }}}},
                    "400": error_response("A parameter is invalid; error.parameter names it."),
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/tickets/{ticket_id}": {
            "get": {
                "summary": "One ticket with its messages, attachments and contact",
                "operationId": "getTicket",
                "tags": ["tickets"],
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "The ticket.", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/TicketDetail"}}}},
                    "404": error_response("No such ticket, or the caller may not see it."),
                    **AUTH_ERRORS,
                },
            }
        },
    },
    "components": {
        "schemas": {
            "AssociatedContact": {"allOf": [
                {"$ref": "#/components/schemas/ContactRecord"},
                {"type": "object", "required": ["primary"], "properties": {"primary": {
                    "type": "boolean", "description": "The ticket's primary contact, who gets the replies."}}}]},
            "AssociatedCompany": {"allOf": [
                {"$ref": "#/components/schemas/Company"},
                {"type": "object", "required": ["primary"], "properties": {"primary": {"type": "boolean"}}}]},
            "TicketSummary": {
                "type": "object",
                "required": ["id", "name", "pipeline", "status", "contact", "contacts", "companies", "created_at",
                             "updated_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "description": _NULLABLE_STRING,
                    "pipeline": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "name": {"type": "string"}, "internal_name": {"type": "string"}}},
                    "status": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "label": {"type": "string"},
                        "internal_name": {"type": "string"}, "is_closed": {"type": "boolean"}}},
                    "priority": _NULLABLE_STRING,
                    "category": _NULLABLE_STRING,
                    "owner_id": {"type": ["integer", "null"]},
                    "team_id": {"type": ["integer", "null"]},
                    "source_channel": {"type": "string"},
                    "contact": {"anyOf": [{"$ref": "#/components/schemas/ContactRecord"}, {"type": "null"}],
                                "description": "The primary contact."},
                    "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/AssociatedContact"}},
                    "companies": {"type": "array", "items": {"$ref": "#/components/schemas/AssociatedCompany"}},
                    "custom_properties": {"type": "object"},
                    "spam": {"type": "boolean", "description": "Marked spam (PUT/DELETE /api/v1/tickets/{id}/spam)"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "closed_at": _TIME,
                    "reopened_at": _TIME,
                },
            },
            "TicketDetail": {
                "allOf": [
                    {"$ref": "#/components/schemas/TicketSummary"},
                    {"type": "object", "required": ["messages", "sla"], "properties": {
                        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
                        "sla": {"type": "array", "items": {"$ref": "#/components/schemas/SlaClock"}}}},
                ]
            },
            "SlaClock": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "target": {"type": "string", "enum": list(TARGET_KINDS)},
                    "target_minutes": {"type": "integer"},
                    "state": {"type": "string", "enum": list(CLOCK_STATES)},
                    "started_at": {"type": "string", "format": "date-time"},
                    "due_at": _TIME, "due_soon_at": _TIME, "stopped_at": _TIME,
                    "paused": {"type": "boolean"},
                    "business_seconds": {"type": ["integer", "null"]},
                },
            },
            "Message": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "conversation_id": {"type": ["integer", "null"]},
                    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
                    "channel": {"type": "string"},
                    "source": _NULLABLE_STRING,
                    "external_id": {"type": ["string", "null"], "description": "Message-ID without <>, or the channel's id."},
                    "in_reply_to": _NULLABLE_STRING,
                    "references": {"type": "array", "items": {"type": "string"}},
                    "from": {"type": "object", "properties": {"address": _NULLABLE_STRING, "name": _NULLABLE_STRING}},
                    "to": {"type": "array", "items": {"type": "string"}},
                    "cc": {"type": "array", "items": {"type": "string"}},
                    "subject": _NULLABLE_STRING,
                    "text": _NULLABLE_STRING,
                    "html": _NULLABLE_STRING,
                    "reply_text": {"type": ["string", "null"], "description": "The latest reply, quoted history stripped."},
                    "author_kind": {"type": "string"},
                    "author_user_id": {"type": ["integer", "null"]},
                    "screening": {"type": "object", "properties": {
                        "verdict": {"type": "string"}, "reason": _NULLABLE_STRING}},
                    "match": {"type": "object", "description": "Why the message was put on this ticket.",
                              "properties": {"rule": _NULLABLE_STRING, "detail": _NULLABLE_STRING}},
                    "is_forwarded": {"type": "boolean"},
                    "is_automated": {"type": "boolean"},
                    "delivery_state": _NULLABLE_STRING,
                    "defects": {"type": "array"},
                    "sent_at": _TIME,
                    "created_at": {"type": "string", "format": "date-time"},
                    "raw_url": _NULLABLE_STRING,
                    "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
                },
            },
            "Attachment": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "filename": _NULLABLE_STRING,
                    "content_type": {"type": "string"},
                    "size": {"type": "integer"},
                    "sha256": _NULLABLE_STRING,
                    "inline": {"type": "boolean"},
                    "content_id": _NULLABLE_STRING,
                    "from_tnef": {"type": "boolean"},
                    "remote_url": _NULLABLE_STRING,
                    "download_url": _NULLABLE_STRING,
                },
            },
        }
    },
}
