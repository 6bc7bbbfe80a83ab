"""Decoding and field-level validation shared by the webhook contracts.

:func:`decode_json` is the one JSON decoder of webhook bodies, at the edge
and in the processor; :class:`InvalidFields` is answered as 422.
"""

from __future__ import annotations

import json
import re

import orjson
from typing import Any

# Deliberately simple: one @, no spaces, a dot in the domain.  Delivery is
# the real test; this only catches what is plainly not an address.
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
PHONE = re.compile(r"^\+?[0-9 ()./-]{3,40}$")
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


class InvalidFields(Exception):
    """One or more fields are missing or invalid; ``errors`` maps field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def is_email(value: str) -> bool:
    return len(value) <= 320 and EMAIL.match(value) is not None


def decode_json(raw: bytes) -> Any:
    """A webhook body as JSON; ``ValueError`` (``UnicodeDecodeError`` included) when it is not.

    Called once per request at the edge and once per processing pass; the
    decoded value travels on from there.  Refuses what ``json`` would let
    through but nothing downstream can store or compare: ``NaN`` and
    ``Infinity`` (not JSON, and PostgreSQL's JSON refuses them), and nesting
    deep enough to exhaust the interpreter's stack (a RecursionError is no
    client error, so it must not escape as one).
    """
    # orjson decodes a body four times faster than ``json``, and every
    # webhook request decodes one.  It is stricter (no NaN, no lone
    # surrogate, at most 1,024 levels), so what it refuses gets ``json``'s
    # answer below, exactly as before; and it reads an integer beyond 64 bits
    # as a float, so a body with 19 digits in a row goes to ``json`` too.
    if not _LONG_NUMBER.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
