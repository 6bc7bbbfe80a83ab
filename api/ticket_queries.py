"""The ticket list's query, shared by ``GET /tickets`` and a view's tickets: filters, search, sort, cursor.

Every clause starts from :func:`frontdesk.tickets.access.ticket_visibility`,
so a list and its total only ever count tickets the caller may see.  The
quick filters (``owner``, ``priority``, ``pipeline``, ``status``, ``team``)
are shorthands for criteria of the filter language (``tickets.filters``),
which ``filter=`` takes in full; ``q`` is the search box (``tickets.search``).
Each bad parameter is a 400 naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.parameters import MAX_ID, bad_parameter, parse_int, query_int
from frontdesk.model import Contact, Pipeline, Status, Ticket, utcnow
from frontdesk.api.errors import ApiError
from frontdesk.tickets.access import Principal, pipeline_visibility, ticket_visibility
from frontdesk.tickets.counts import kept_count
from frontdesk.tickets.status import statuses_named
from frontdesk.tickets.filter_sql import (
    SORT_PROPERTIES, FilterContext, column_nullable, filters_clause, sort_column, sortable,
)
from frontdesk.tickets.filters import MAX_NUMBER, TICKET_ID, Filter, parse_filters
from frontdesk.tickets.properties import (
    BOOLEAN, DATETIME, ENUMERATION, NUMBER, TEAM, USER, PropertySpec, all_properties,
)
from frontdesk.model.sla import CLOCK_STATES
from frontdesk.tickets.search import search_clause
from frontdesk.tickets.sla.queries import next_due, state_filter

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_SORT = "-updated_at"
MAX_CURSOR_TEXT = 10_000
# sort=sla_due: the soonest due time among a ticket's running SLA clocks (no clock: last).
SLA_DUE = PropertySpec(name="sla_due", label="Next SLA due time", type=DATETIME, built_in=False,
                       read_only=True, calculated=True)


def quick_filters(request: web.Request) -> list[str]:
    """The quick-filter parameters as filter-language criteria (``owner=none`` is ``owner:unknown``)."""
    texts: list[str] = []
    query = request.query
    for name in ("owner", "team"):
        raw = query.get(name)
        if raw is None or raw == "":
            continue
        if raw.lower() == "none":
            texts.append(f"{name}:unknown")
        elif parse_int(raw, minimum=1, maximum=MAX_ID) is None and not (name == "owner" and raw == "me"):
            raise bad_parameter(name, f"{name} must be a numeric id or 'none'")
        else:
            texts.append(f"{name}:eq:{raw}")
    pipeline = query.get("pipeline", "").strip()
    if pipeline.lstrip("-").isdecimal() and parse_int(pipeline, minimum=1, maximum=MAX_ID) is None:
        raise bad_parameter("pipeline", "pipeline must be an internal name or an id that can exist")
    for name in ("pipeline", "status", "priority"):
        raw = query.get(name, "").strip()
        if raw:
            texts.append(f"{name}:eq:{raw.replace(chr(92), chr(92) * 2).replace(',', chr(92) + ',')}")
    return texts


# --- sort orders and cursors --------------------------------------------------

@dataclass(frozen=True)
class SortOrder:
    """``sort=-priority``: the property, the direction and the SQL it orders by (unknown values last)."""

    text: str
    spec: PropertySpec
    descending: bool
    key: Any

    @property
    def nullable(self) -> bool:
        return self.spec.name != "id" and column_nullable(self.spec)

    def order_by(self, key: Any = None, ticket_id: Any = None) -> tuple[Any, ...]:
        """ORDER BY this order: on ``tickets``, or on a subquery's ``key`` and ``ticket_id`` columns."""
        key = self.key if key is None else key
        ticket_id = Ticket.id if ticket_id is None else ticket_id
        # NULLS LAST only where a value can be unknown: on a NOT NULL column
        # it would keep PostgreSQL from reading the (updated_at, id) index backwards.
        key = key.desc() if self.descending else key.asc()
        if self.nullable:
            key = key.nulls_last()
        return key, ticket_id.desc() if self.descending else ticket_id.asc()

    def after(self, cursor: Cursor, key: Any = None, ticket_id: Any = None) -> Any:
        """Tickets after ``cursor`` in this order (keyset pagination: stable under inserts).

        On ``tickets``, or on a subquery's ``key`` and ``ticket_id`` columns.
        """
        key = self.key if key is None else key
        ticket_id = Ticket.id if ticket_id is None else ticket_id
        same_id = ticket_id < cursor.ticket_id if self.descending else ticket_id > cursor.ticket_id
        if cursor.value is None:
            return and_(key.is_(None), same_id)
        beyond = key < cursor.value if self.descending else key > cursor.value
        after = or_(beyond, and_(key == cursor.value, same_id))
        return or_(after, key.is_(None)) if self.nullable else after

    def value_fits(self, value: Any) -> bool:
        """A cursor value this order's column can hold (a forged cursor must not reach the database)."""
        kind = self.spec.type
        if value is None:
            return True
        if kind == DATETIME:
            return isinstance(value, datetime) and value.tzinfo is not None
        if kind == BOOLEAN:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if kind in (USER, TEAM, TICKET_ID):
            return isinstance(value, int) and 0 < value <= MAX_ID
        if kind == NUMBER or (kind == ENUMERATION and self.spec.options):
            return isinstance(value, (int, float)) and math.isfinite(value) and abs(value) <= MAX_NUMBER
        return isinstance(value, str) and len(value) <= MAX_CURSOR_TEXT and "\x00" not in value


def sort_order(text: str, registry: dict[str, PropertySpec], dialect: str) -> SortOrder:
    name = text[1:] if text.startswith("-") else text
    if name == SLA_DUE.name:
        return SortOrder(text, SLA_DUE, text.startswith("-"), next_due())
    spec = registry.get(name) or SORT_PROPERTIES.get(name)
    if spec is None or not sortable(spec):
        raise bad_parameter("sort", f"sort by a property column, optionally prefixed with '-': no property {name!r}")
    return SortOrder(text, spec, text.startswith("-"), sort_column(spec, dialect))


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the sort, its key value and the id of its last ticket."""

    sort: str
    value: Any
    ticket_id: int

    def encode(self) -> str:
        value = {"t": self.value.isoformat()} if isinstance(self.value, datetime) else self.value
        payload = json.dumps({"s": self.sort, "v": value, "id": self.ticket_id})
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        refused = bad_parameter("cursor", "cursor is not one this API handed out")
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            value = data["v"]
            if isinstance(value, dict):
                value = datetime.fromisoformat(value["t"])
            cursor = cls(sort=data["s"], value=value, ticket_id=data["id"])
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, json.JSONDecodeError):
            raise refused from None
        # A forged cursor must not reach the database as a value it cannot
        # hold (PostgreSQL's integer ids, aware timestamps).
        if not isinstance(cursor.sort, str) or type(cursor.ticket_id) is not int \
                or not 0 < cursor.ticket_id <= MAX_ID:
            raise refused
        if not (cursor.value is None or isinstance(cursor.value, (str, int, float, datetime))):
            raise refused
        return cursor


# --- the page -----------------------------------------------------------------

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


@dataclass(frozen=True)
class TicketQuery:
    """A checked list request: the WHERE clauses, the order, the page size and position."""

    clauses: list[Any]
    order: SortOrder
    limit: int
    page: int | None
    cursor: Cursor | None


async def ticket_query(session: AsyncSession, request: web.Request, principal: Principal, *,
                       base: tuple[Any, ...] = (), stored_filters: tuple[str, ...] = (),
                       sort: str | None = None, include_spam: bool = False,
                       registry: dict[str, PropertySpec] | None = None) -> TicketQuery:
    """The request's list query, on top of ``base`` clauses and a view's ``stored_filters`` and ``sort``.

    Spam is left out unless ``include_spam`` or a criterion names ``spam``.
    """
    limit = query_int(request, "limit", maximum=MAX_LIMIT) or DEFAULT_LIMIT
    page = query_int(request, "page")
    sort = request.query.get("sort") or sort or DEFAULT_SORT
    registry = registry if registry is not None else await all_properties(session)
    dialect = session.bind.dialect.name
    order = sort_order(sort, registry, dialect)
    cursor = Cursor.decode(request.query["cursor"]) if request.query.get("cursor") else None
    if cursor is not None and page is not None:
        raise bad_parameter("cursor", "use either cursor or page, not both")
    if cursor is not None and (cursor.sort != sort or not order.value_fits(cursor.value)):
        raise bad_parameter("cursor", "the cursor belongs to another sort order")
    filters: list[Filter] = parse_filters(list(stored_filters) + quick_filters(request)
                                          + request.query.getall("filter", []), registry)
    context = FilterContext(principal.user_id, dialect, utcnow())
    clauses = [ticket_visibility(principal), *base, filters_clause(filters, context)]
    if not include_spam and not any(f.spec.name == "spam" for f in filters):
        clauses.append(~Ticket.is_spam)
    sla_state = request.query.get("sla_state")
    if sla_state:
        if sla_state not in CLOCK_STATES:
            raise bad_parameter("sla_state", f"sla_state must be one of {', '.join(CLOCK_STATES)}")
        clauses.append(state_filter(sla_state))
    search = request.query.get("q", "").strip()
    if search:
        clauses.append(search_clause(search, dialect))
    return TicketQuery(clauses, order, limit, page, cursor)


async def ticket_count(session: AsyncSession, query: TicketQuery) -> int:
    """How many tickets the query matches: from the kept counts when its clauses allow, else on ``tickets``."""
    clause = and_(*query.clauses)
    kept = await kept_count(session, clause)
    if kept is not None:
        return kept
    return await session.scalar(select(func.count(Ticket.id)).where(clause)) or 0


async def ticket_page(session: AsyncSession, query: TicketQuery) -> tuple[list[Any], int, str | None]:
    """One page of (ticket, pipeline, status, contact) rows, the total, and the next page's cursor."""
    order = query.order
    kept = await kept_count(session, and_(*query.clauses))
    if kept is None:
        # Nothing keeps this count, so it is a pass over every match; the page
        # is taken in the same pass (count(*) OVER () beside the sort key)
        # instead of a second one.  It also keeps PostgreSQL from paging a
        # search by walking the whole date index and testing each ticket's
        # document (a LIMIT plan that took over a second at 1M tickets).
        matches = select(Ticket.id.label("id"), order.key.label("sort_key"),
                         func.count().over().label("total")).where(*query.clauses).subquery("matches")
        page = select(matches.c.id, matches.c.sort_key, matches.c.total)
        if query.cursor is not None:
            page = page.where(order.after(query.cursor, matches.c.sort_key, matches.c.id))
        page = page.order_by(*order.order_by(matches.c.sort_key, matches.c.id))
    else:
        # The page's ids from ``tickets`` alone (an index can answer it).
        page = select(Ticket.id.label("id"), order.key.label("sort_key")).where(*query.clauses)
        if query.cursor is not None:
            page = page.where(order.after(query.cursor))
        page = page.order_by(*order.order_by())
    page = page.limit(query.limit + 1)
    if query.page is not None:
        page = page.offset((query.page - 1) * query.limit)
    # Then the joins for those rows only, not for every match before the sort.
    ids = page.subquery("page")
    counted = (ids.c.total,) if kept is None else ()
    statement = (joined(select(Ticket, Pipeline, Status, Contact, ids.c.sort_key, *counted))
                 .join(ids, ids.c.id == Ticket.id).order_by(*order.order_by(ids.c.sort_key, ids.c.id)))
    rows = (await session.execute(statement)).all()
    if kept is not None:
        total = kept
    elif rows:
        total = rows[0].total
    elif query.cursor is None and query.page in (None, 1):
        total = 0
    else:  # past the last page: no row carries the total
        total = await ticket_count(session, query)
    has_more = len(rows) > query.limit
    rows = rows[:query.limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        next_cursor = Cursor(order.text, last.sort_key, last[0].id).encode()
    return [tuple(row)[:4] for row in rows], total, next_cursor
