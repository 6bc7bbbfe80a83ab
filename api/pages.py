"""Keyset pages over ids, newest first, with an opaque cursor: the contact, company and deleted-ticket lists.

The ticket list pages by its sort column (``api.ticket_queries.Cursor``);
lists that only ever go newest first page by id alone, here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web
from sqlalchemy import Select

from frontdesk.api.parameters import MAX_ID, bad_parameter, query_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

# OpenAPI parameters of such a list.
PAGE_PARAMETERS = [
    {"name": "limit", "in": "query", "required": False, "description": f"Per page (1-{MAX_LIMIT}, default {DEFAULT_LIMIT}).",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
    {"name": "cursor", "in": "query", "required": False, "description": "The previous answer's next_cursor.",
     "schema": {"type": "string"}},
]


def _encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).decode().rstrip("=")


def _decode(token: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))["id"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise bad_parameter("cursor", "cursor is not one this API handed out")
    return value


def paged(request: web.Request, statement: Select[Any], id_column: Any) -> tuple[Select[Any], int]:
    """``statement`` limited to the page ``limit`` and ``cursor`` ask for (one row more, to tell if there are more)."""
    limit = query_int(request, "limit", maximum=MAX_LIMIT) or DEFAULT_LIMIT
    if request.query.get("cursor"):
        statement = statement.where(id_column < _decode(request.query["cursor"]))
    return statement.order_by(id_column.desc()).limit(limit + 1), limit


def page_end(rows: list[Any], limit: int, last_id: Any) -> tuple[list[Any], str | None]:
    """The page's rows and its ``next_cursor`` (None on the last page); ``last_id(row)`` is a row's id."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode(last_id(rows[-1]))
