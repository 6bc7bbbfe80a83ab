"""The ticket list's cursor parser under hypothesis: a cursor we handed out, or 400, for any token."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.api.errors import ApiError
from frontdesk.api.ticket_queries import MAX_ID, SORTS, Cursor

FUZZ = settings(max_examples=400, deadline=None)


def _token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decoded_or_refused(token: str) -> Cursor | None:
    try:
        cursor = Cursor.decode(token)
    except ApiError as refusal:
        assert refusal.status == 400 and refusal.details == {"parameter": "cursor"}
        return None
    assert cursor.sort in SORTS and cursor.value.tzinfo is not None and 0 < cursor.ticket_id <= MAX_ID
    return cursor


@FUZZ
@given(st.text())
def test_any_text_is_a_cursor_or_a_400(token: str) -> None:
    _decoded_or_refused(token)


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


@FUZZ
@given(st.fixed_dictionaries({}, optional={"s": JSON_LEAF | st.sampled_from(sorted(SORTS)),
                                           "v": JSON_LEAF | st.datetimes().map(datetime.isoformat),
                                           "id": JSON_LEAF | st.integers(min_value=-2**70, max_value=2**70)}))
def test_forged_cursor_payloads_are_refused_or_safe(data: dict) -> None:
    _decoded_or_refused(_token(data))


@FUZZ
@given(st.sampled_from(sorted(SORTS)), st.datetimes(timezones=st.just(timezone.utc)), st.integers(1, MAX_ID))
def test_every_cursor_we_hand_out_reads_back(sort: str, value: datetime, ticket_id: int) -> None:
    cursor = Cursor(sort, value, ticket_id)
    assert Cursor.decode(cursor.encode()) == cursor


def test_an_id_beyond_the_id_columns_is_refused() -> None:
    for too_big in (2**31, 2**63):
        token = _token({"s": "-updated_at", "v": "2026-01-01T00:00:00+00:00", "id": too_big})
        assert _decoded_or_refused(token) is None
