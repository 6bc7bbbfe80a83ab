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
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.errors import ApiError
from frontdesk.api.parameters import MAX_ID, bad_parameter, checked_int, is_id, parse_int, query_int
from frontdesk.model import Contact, Pipeline, Status, Ticket
from frontdesk.tickets.access import Principal, pipeline_visibility, ticket_visibility
from frontdesk.tickets.status import statuses_named

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


# --- paging -----------------------------------------------------------------

@dataclass(frozen=True)
class Paging:
    """How much of the list, in which order, from where."""

    limit: int
    sort: str
    page: int | None = None
    cursor: Cursor | None = None


def paging(request: web.Request) -> Paging:
    """``limit``, ``page``, ``sort`` and ``cursor``, each checked (400 naming it)."""
    limit = query_int(request, "limit", maximum=MAX_LIMIT) or DEFAULT_LIMIT
    page = query_int(request, "page")
    sort = request.query.get("sort", DEFAULT_SORT)
    if sort not in SORTS:
        raise bad_parameter("sort", f"sort must be one of {', '.join(SORTS)}")
    cursor = Cursor.decode(request.query["cursor"]) if request.query.get("cursor") else None
    if cursor is not None and page is not None:
        raise bad_parameter("cursor", "use either cursor or page, not both")
    if cursor is not None and cursor.sort != sort:
        raise bad_parameter("cursor", "the cursor belongs to another sort order")
    return Paging(limit=limit, sort=sort, page=page, cursor=cursor)


# --- filters ----------------------------------------------------------------

def ticket_filters(request: web.Request) -> list[Any]:
    clauses: list[Any] = [ticket_visibility(principal_of(request))]
    query = request.query
    pipeline = query.get("pipeline")
    if pipeline:
        clauses.append(Pipeline.id == checked_int("pipeline", pipeline) if is_id(pipeline)
                       else Pipeline.internal_name == pipeline)
    for name, column in (("owner", Ticket.owner_id), ("team", Ticket.team_id)):
        clause = id_filter(request, name, column)
        if clause is not None:
            clauses.append(clause)
    if query.get("priority"):
        clauses.append(Ticket.priority == query["priority"])
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


async def status_filter(session: AsyncSession, principal: Principal, wanted: str) -> Any:
    """``?status=``: the statuses it names in each pipeline the caller sees, as PATCH would name them.

    400 naming ``status`` when it names none (an empty list would mislead).
    """
    statuses = (await session.scalars(
        select(Status).join(Pipeline, Pipeline.id == Status.pipeline_id).where(pipeline_visibility(principal))
        .order_by(Status.pipeline_id, Status.position, Status.id))).all()
    by_pipeline: dict[int, list[Status]] = {}
    for status in statuses:
        by_pipeline.setdefault(status.pipeline_id, []).append(status)
    named = [s.id for group in by_pipeline.values() for s in statuses_named(group, wanted)]
    if not named:
        valid = sorted({s.internal_name for s in statuses})
        raise ApiError(400, "invalid_parameter", f"no status {wanted!r}; valid: {', '.join(valid)}",
                       parameter="status", valid=valid)
    return Ticket.status_id.in_(named)


def joined(statement: Select[Any]) -> Select[Any]:
    return (
        statement.join(Pipeline, Pipeline.id == Ticket.pipeline_id)
        .join(Status, Status.id == Ticket.status_id)
        .outerjoin(Contact, Contact.id == Ticket.contact_id)
    )
