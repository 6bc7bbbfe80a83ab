"""The ticket list's query: filters, sort orders, page and cursor parameters, each checked (400 naming it).

Every clause starts from :func:`frontdesk.tickets.access.ticket_visibility`,
so the list and its total only ever count tickets the caller may see.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Select, and_, func, or_

from frontdesk.api.auth import principal_of
from frontdesk.api.parameters import MAX_ID, bad_parameter, checked_int, is_id, parse_int
from frontdesk.model import Contact, Pipeline, Status, Ticket
from frontdesk.model.sla import CLOCK_STATES
from frontdesk.tickets.access import ticket_visibility
from frontdesk.tickets.sla.queries import next_due, state_filter

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

# sort parameter -> (column, descending?)
SORTS = {
    "-updated_at": (Ticket.updated_at, True),
    "updated_at": (Ticket.updated_at, False),
    "-created_at": (Ticket.created_at, True),
    "created_at": (Ticket.created_at, False),
}
DEFAULT_SORT = "-updated_at"
# Soonest SLA due time first, tickets with no running clock last; pages with ``page``, not cursors.
SLA_DUE_SORT = "sla_due"


def id_filter(request: web.Request, name: str, column: Any) -> Any | None:
    """A filter on an id column: ``?owner=7``, or ``?owner=none`` for "not set"; None when absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() == "none":
        return column.is_(None)
    value = parse_int(raw, minimum=1, maximum=MAX_ID)
    if value is None:
        raise bad_parameter(name, f"{name} must be a numeric id or 'none'")
    return column == value


# --- cursors ----------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the sort key and id of its last ticket."""

    sort: str
    value: datetime
    ticket_id: int

    def encode(self) -> str:
        payload = json.dumps({"s": self.sort, "v": self.value.isoformat(), "id": self.ticket_id})
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            cursor = cls(sort=data["s"], value=datetime.fromisoformat(data["v"]), ticket_id=int(data["id"]))
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
            raise bad_parameter("cursor", "cursor is not one this API handed out") from None
        # A forged cursor must not reach the database as a value it cannot
        # hold (PostgreSQL's integer ids, aware timestamps).
        if cursor.sort not in SORTS or cursor.value.tzinfo is None or not 0 < cursor.ticket_id <= MAX_ID:
            raise bad_parameter("cursor", "cursor is not one this API handed out")
        return cursor


def after_cursor(cursor: Cursor) -> Any:
    column, descending = SORTS[cursor.sort]
    if descending:
        return or_(column < cursor.value, and_(column == cursor.value, Ticket.id < cursor.ticket_id))
    return or_(column > cursor.value, and_(column == cursor.value, Ticket.id > cursor.ticket_id))


# --- filters ----------------------------------------------------------------

def ticket_filters(request: web.Request) -> list[Any]:
    clauses: list[Any] = [ticket_visibility(principal_of(request))]
    query = request.query
    pipeline = query.get("pipeline")
    if pipeline:
        clauses.append(Pipeline.id == checked_int("pipeline", pipeline) if is_id(pipeline)
                       else Pipeline.internal_name == pipeline)
    if query.get("status"):
        # Like PATCH (tickets.status.resolve_status): the internal name, or the label in any case.
        clauses.append(or_(Status.internal_name == query["status"],
                           func.lower(Status.label) == query["status"].strip().lower()))
    for name, column in (("owner", Ticket.owner_id), ("team", Ticket.team_id)):
        clause = id_filter(request, name, column)
        if clause is not None:
            clauses.append(clause)
    if query.get("priority"):
        clauses.append(Ticket.priority == query["priority"])
    if query.get("sla_state"):
        if query["sla_state"] not in CLOCK_STATES:
            raise bad_parameter("sla_state", f"sla_state must be one of {', '.join(CLOCK_STATES)}")
        clauses.append(state_filter(query["sla_state"]))
    search = query.get("q", "").strip()
    if search:
        full_name = func.coalesce(Contact.first_name, "") + " " + func.coalesce(Contact.last_name, "")
        clauses.append(
            or_(
                Ticket.name.icontains(search, autoescape=True),
                Ticket.description.icontains(search, autoescape=True),
                Contact.email.icontains(search, autoescape=True),
                full_name.icontains(search, autoescape=True),
            )
        )
    return clauses


def order_for(sort: str) -> tuple[Any, ...]:
    """The ORDER BY of a checked ``sort``, ticket id breaking ties."""
    if sort == SLA_DUE_SORT:
        return next_due().asc().nulls_last(), Ticket.id.asc()
    column, descending = SORTS[sort]
    return (column.desc(), Ticket.id.desc()) if descending else (column.asc(), Ticket.id.asc())


def joined(statement: Select[Any]) -> Select[Any]:
    return (
        statement.join(Pipeline, Pipeline.id == Ticket.pipeline_id)
        .join(Status, Status.id == Ticket.status_id)
        .outerjoin(Contact, Contact.id == Ticket.contact_id)
    )
