"""The ticket list's cursor parser and sort orders under hypothesis: a cursor we handed out, or 400, for any token."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from yarl import URL

from frontdesk.api.auth import PRINCIPAL
from frontdesk.api.errors import ApiError
from frontdesk.api.parameters import query_int
from frontdesk.api.ticket_queries import MAX_ID, MAX_LIMIT, Cursor, quick_filters, sort_order
from frontdesk.model import Ticket
from frontdesk.model.access import ACCESS_ALL, AGENT
from frontdesk.tickets.access import Principal
from frontdesk.tickets.filter_sql import FilterContext, filters_clause
from frontdesk.tickets.filters import FilterError, parse_filters
from frontdesk.tickets.properties import BUILT_IN, PropertySpec

FUZZ = settings(max_examples=200, deadline=None)
REGISTRY = {**BUILT_IN, "seats": PropertySpec("seats", "Seats", "number", False)}
SORTS = sorted(f"{sign}{name}" for name in ("updated_at", "created_at", "priority", "name", "owner", "seats", "id")
               for sign in ("", "-"))


def _token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decoded_or_refused(token: str) -> Cursor | None:
    try:
        cursor = Cursor.decode(token)
    except ApiError as refusal:
        assert refusal.status == 400 and refusal.details == {"parameter": "cursor"}
        return None
    assert isinstance(cursor.sort, str) and 0 < cursor.ticket_id <= MAX_ID
    return cursor


@FUZZ
@given(st.text())
def test_any_text_is_a_cursor_or_a_400(token: str) -> None:
    _decoded_or_refused(token)


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


@FUZZ
@given(st.fixed_dictionaries({}, optional={"s": JSON_LEAF | st.sampled_from(SORTS),
                                           "v": JSON_LEAF | st.fixed_dictionaries({"t": JSON_LEAF}),
                                           "id": JSON_LEAF | st.integers(min_value=-2**70, max_value=2**70)}),
       st.sampled_from(SORTS))
def test_forged_cursor_values_reach_no_column_they_do_not_fit(data: dict, sort: str) -> None:
    """What decodes is then checked against the sort's column: only values that column can hold pass."""
    cursor = _decoded_or_refused(_token(data))
    if cursor is None:
        return
    order = sort_order(sort, REGISTRY, "postgresql")
    if order.value_fits(cursor.value) and cursor.value is not None:
        kind = order.spec.type
        if kind == "datetime":
            assert isinstance(cursor.value, datetime) and cursor.value.tzinfo is not None
        elif kind in ("user", "team", "ticket_id"):
            assert type(cursor.value) is int and 0 < cursor.value <= MAX_ID
        elif kind in ("number", "enumeration"):
            assert type(cursor.value) in (int, float) and abs(cursor.value) <= 1e15
        else:
            assert isinstance(cursor.value, str)


@FUZZ
@given(st.sampled_from(SORTS), st.datetimes(timezones=st.just(timezone.utc)) | st.text() | st.integers(1, MAX_ID),
       st.integers(1, MAX_ID))
def test_every_cursor_we_hand_out_reads_back(sort: str, value: object, ticket_id: int) -> None:
    cursor = Cursor(sort, value, ticket_id)
    assert Cursor.decode(cursor.encode()) == cursor


def test_an_id_beyond_the_id_columns_is_refused() -> None:
    for too_big in (2**31, 2**63):
        token = _token({"s": "-updated_at", "v": {"t": "2026-01-01T00:00:00+00:00"}, "id": too_big})
        assert _decoded_or_refused(token) is None


# --- the list's other parameters: filters and paging ----------------------------

# Fewer examples: each builds an aiohttp request (and compiles SQL), which costs far more than a cursor.
FUZZ_REQUESTS = settings(max_examples=100, deadline=None)
FILTERS = ("pipeline", "owner", "team", "priority", "q")
PAGING = ("limit", "page", "sort", "cursor")
# Values a careless or hostile client sends: any text, and numbers written every which way.
QUERY_VALUE = st.text() | st.integers(min_value=-2**80, max_value=2**80).map(str) | st.sampled_from(
    ["none", "None", "", " ", "²", "٣", "1e3", "0x10", "+5", "-0", "00000000000000000000001", *SORTS])


def _request(query: dict[str, str]):  # type: ignore[no-untyped-def]
    request = make_mocked_request("GET", str(URL("/api/v1/tickets").with_query(query)))
    request[PRINCIPAL] = Principal(user_id=7, role=AGENT, ticket_access=ACCESS_ALL, team_ids=frozenset({1}))
    return request


def _quick_filters_or_refusal(query: dict[str, str]) -> list | None:
    """The request's quick filters as bound criteria, or None after checking the 400 names a parameter."""
    try:
        return parse_filters(quick_filters(_request(query)), REGISTRY)
    except ApiError as refusal:
        assert refusal.status == 400 and refusal.details["parameter"] in query
    except FilterError as refusal:  # the API answers it 400 invalid_filter, naming the part
        assert refusal.code == "invalid_filter"
    return None


@FUZZ_REQUESTS
@given(st.dictionaries(st.sampled_from(FILTERS), QUERY_VALUE))
def test_any_filter_values_give_clauses_or_a_400(query: dict[str, str]) -> None:
    filters = _quick_filters_or_refusal(query)
    if filters is None:
        return
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        clause = filters_clause(filters, FilterContext(7, dialect.name, datetime.now(timezone.utc)))
        select(Ticket.id).where(clause).compile(dialect=dialect)  # the clauses are ones the database can be sent


@FUZZ_REQUESTS
@given(st.dictionaries(st.sampled_from(PAGING), QUERY_VALUE))
def test_any_paging_values_give_bounded_paging_or_a_400(query: dict[str, str]) -> None:
    request = _request(query)
    try:
        limit = query_int(request, "limit", maximum=MAX_LIMIT)
        page = query_int(request, "page")
        order = sort_order(query.get("sort") or "-updated_at", REGISTRY, "postgresql")
        cursor = Cursor.decode(query["cursor"]) if query.get("cursor") else None
    except ApiError as refusal:
        assert refusal.status == 400 and refusal.details["parameter"] in query
        return
    assert limit is None or 1 <= limit <= MAX_LIMIT
    assert page is None or 1 <= page <= MAX_ID
    assert order.text == (query.get("sort") or "-updated_at")
    assert cursor is None or 0 < cursor.ticket_id <= MAX_ID
