"""Reading and checking JSON request bodies, so every handler refuses bad input the same way."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from frontdesk.api.errors import ApiError
from frontdesk.api.parameters import MAX_ID, path_id

__all__ = ["bool_field", "int_field", "int_list_field", "json_body", "path_id", "refuse_unknown_fields", "text_field"]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or 400 ``invalid_json``."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    try:
        # JSON may escape a lone surrogate ("\ud800"): Python keeps it, no database stores it.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "the request body holds text that is not valid Unicode") from None
    return body


def text_field(body: dict[str, Any], name: str, *, required: bool = True, max_length: int = 200) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(422, "field_required", f"{name!r} is required", field=name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "field_invalid", f"{name!r} must be a non-empty string", field=name)
    if len(value) > max_length:
        raise ApiError(422, "field_too_long", f"{name!r} is longer than {max_length} characters", field=name)
    return value.strip()


def bool_field(body: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, "field_invalid", f"{name!r} must be true or false", field=name)
    return value


def int_field(body: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(422, "field_required", f"{name!r} is required", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_ID - 1 <= value <= MAX_ID:
        raise ApiError(422, "field_invalid", f"{name!r} must be an integer between {-MAX_ID - 1} and {MAX_ID}", field=name)
    return value


def int_list_field(body: dict[str, Any], name: str) -> list[int]:
    value = body.get(name)
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and -MAX_ID - 1 <= v <= MAX_ID for v in value):
        raise ApiError(422, "field_invalid", f"{name!r} must be a list of integers", field=name)
    return value


def refuse_unknown_fields(body: dict[str, Any], allowed: Any) -> None:
    """422 ``unknown_fields`` naming every key of ``body`` not in ``allowed`` (a typo must not pass silently)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(422, "unknown_fields", f"unknown fields: {', '.join(unknown)}", fields=unknown)
