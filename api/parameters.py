"""Integer path and query parameters: the one parser, with bounds, so no handler calls ``int()`` on input.

Only ASCII digits count (``str.isdigit`` also accepts ``²`` or ``٣``, which
``int()`` then refuses or reads as another number), an optional leading ``-``
for query values, and nothing beyond the database's integer columns: a
30-digit id never reaches the database driver (which overflows into a 500).

- A path id (``/tickets/{ticket_id}``) that is not 1..2**31-1 names nothing
  that can exist: ``404 not_found``, exactly like an id that does not exist.
- A query value that is not an integer in its bounds is
  ``400 invalid_parameter`` naming the ``parameter``.

Any query value holding a NUL or text that is not valid Unicode is refused
the same way by :func:`query_text_middleware`, for every endpoint: no
database stores it (PostgreSQL's driver answers it with an error, a 500).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from frontdesk.api.errors import ApiError

# Every id column is an INTEGER: on PostgreSQL that is 32 bits, and asyncpg
# refuses a larger value with an error, not an empty result.
MAX_ID = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_MAX_DIGITS = len(str(MAX_ID))

# OpenAPI schema of an id, in a path, a query or a body.
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def parse_int(raw: str, *, minimum: int, maximum: int) -> int | None:
    """``raw`` as an integer within [minimum, maximum]; None when it is not one."""
    if not _INTEGER.fullmatch(raw) or len(raw.lstrip("-")) > _MAX_DIGITS + 1:
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def is_id(raw: str) -> bool:
    """Whether ``raw`` is written as an id (ASCII digits), whatever its size."""
    return _INTEGER.fullmatch(raw) is not None and not raw.startswith("-")


def bad_parameter(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, parameter=name)


def path_id(request: web.Request, name: str) -> int:
    """The id in the path; 404 when it is no id that can exist."""
    value = parse_int(request.match_info[name], minimum=1, maximum=MAX_ID)
    if value is None:
        raise ApiError(404, "not_found", f"{name} not found")
    return value


def query_int(request: web.Request, name: str, *, minimum: int = 1, maximum: int = MAX_ID,
              default: int | None = None) -> int | None:
    """An integer query parameter within bounds; ``default`` when absent; else (even empty) 400 naming it."""
    raw = request.query.get(name)
    if raw is None:
        return default
    return checked_int(name, raw, minimum=minimum, maximum=maximum)


def checked_int(name: str, raw: str, *, minimum: int = 1, maximum: int = MAX_ID) -> int:
    value = parse_int(raw, minimum=minimum, maximum=maximum)
    if value is None:
        raise bad_parameter(name, f"{name} must be an integer between {minimum} and {maximum}")
    return value


def query_id(request: web.Request, name: str) -> int | None:
    """An id in the query; None when absent; 400 when it is no id."""
    return query_int(request, name, minimum=1, maximum=MAX_ID)


@web.middleware
async def query_text_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """400 ``invalid_parameter`` for a query value with a NUL or a lone surrogate, before any handler reads it."""
    for name, value in request.query.items():
        shown = name.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
        try:
            (name + value).encode("utf-8")
        except UnicodeEncodeError:
            raise bad_parameter(shown, f"{shown!r} is not valid Unicode text") from None
        if "\x00" in name or "\x00" in value:
            raise bad_parameter(shown, f"{shown!r} holds a NUL character")
    return await handler(request)
