"""The filter language shared by the ticket list, views and search: text in, a typed filter AST out.

One criterion is ``property:operator[:value]``: ``priority:in:high,urgent``,
``created_at:last_days:7``, ``owner:unknown``, ``plan:contains:gold``.  The
ticket list takes it as repeated ``filter=`` query parameters, a view stores
the same strings in its JSON ``filters`` list, and criteria are ANDed.  List
values are split on ``,`` (write ``\\,`` for a comma inside a value and
``\\\\`` for a backslash); a value may itself contain ``:``.

Parsing is pure and in two steps: :func:`parse_filter` reads the syntax,
:func:`bind_filter` checks it against the property registry (which operators
fit the property's type, which values are valid) and types the values.  Any
refusal is :class:`FilterError` naming the criterion and the part that is
wrong (``property``, ``operator`` or ``value``).  ``tickets.filter_sql``
turns the AST into SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, Iterable, Mapping

from frontdesk.tickets.errors import InvalidQuery
from frontdesk.tickets.properties import (
    BOOLEAN, DATE, DATETIME, ENUMERATION, NUMBER, STRING, TEAM, USER, PropertySpec,
)

MAX_FILTERS = 50
MAX_FILTER_LENGTH = 2000
MAX_LIST_VALUES = 100
MAX_ID = 2**31 - 1
MAX_NUMBER = 1e15  # beyond what any property holds; keeps values inside every database's types
MAX_DAYS = 36_600

PIPELINE = "pipeline"
STATUS = "status"
TICKET_ID = "ticket_id"

# Filterable properties the registry does not list (they are not "properties"
# one sets, but every list filters on them).
EXTRA_PROPERTIES: dict[str, PropertySpec] = {
    spec.name: spec for spec in (
        PropertySpec("id", "Ticket ID", TICKET_ID, True, read_only=True, attribute="id"),
        PropertySpec("pipeline", "Pipeline", PIPELINE, True, attribute="pipeline_id"),
        PropertySpec("status", "Ticket status", STATUS, True, attribute="status_id"),
        PropertySpec("spam", "Marked spam", BOOLEAN, True, attribute="is_spam"),
    )
}

# Operators: is / is not, is any of / is none of, contains, greater / less
# than, between, is known / is unknown, in the last N days, before / after.
EQ, NEQ, IN, NIN, CONTAINS = "eq", "neq", "in", "nin", "contains"
GT, LT, BETWEEN, KNOWN, UNKNOWN = "gt", "lt", "between", "known", "unknown"
LAST_DAYS, BEFORE, AFTER = "last_days", "before", "after"
NO_VALUE = (KNOWN, UNKNOWN)
LIST_OPERATORS = (IN, NIN)

_CHOICE = (EQ, NEQ, IN, NIN, KNOWN, UNKNOWN)
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    STRING: (EQ, NEQ, IN, NIN, CONTAINS, KNOWN, UNKNOWN),
    NUMBER: (EQ, NEQ, IN, NIN, GT, LT, BETWEEN, KNOWN, UNKNOWN),
    ENUMERATION: _CHOICE,
    BOOLEAN: (EQ, NEQ, KNOWN, UNKNOWN),
    DATE: (EQ, BEFORE, AFTER, BETWEEN, LAST_DAYS, KNOWN, UNKNOWN),
    DATETIME: (BEFORE, AFTER, BETWEEN, LAST_DAYS, KNOWN, UNKNOWN),
    USER: _CHOICE,
    TEAM: _CHOICE,
    TICKET_ID: (EQ, NEQ, IN, NIN, GT, LT, BETWEEN),
    PIPELINE: (EQ, NEQ, IN, NIN),
    STATUS: (EQ, NEQ, IN, NIN),
}
ALL_OPERATORS = tuple(dict.fromkeys(op for ops in OPERATORS_BY_TYPE.values() for op in ops))

# ``owner:eq:me``: the caller, resolved when the filter is compiled.
ME = "me"


class FilterError(InvalidQuery):
    """A criterion that cannot be read or does not fit its property (the API answers 400)."""

    def __init__(self, text: str, part: str, message: str) -> None:
        super().__init__("invalid_filter", f"filter {text!r}: {message}", filter=text, part=part)


@dataclass(frozen=True)
class RawFilter:
    """One criterion as written: names and value texts, not yet checked against a property."""

    text: str
    property: str
    operator: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Filter:
    """One checked criterion: the property, the operator and its typed values."""

    spec: PropertySpec
    operator: str
    values: tuple[Any, ...]
    text: str


def split_list(text: str) -> tuple[str, ...]:
    """``a,b\\,c`` -> ``("a", "b,c")``; a trailing lone backslash is kept as written."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return tuple(parts)


def parse_filter(text: str) -> RawFilter:
    """The syntax of one criterion; ``FilterError`` when it is not ``property:operator[:value]``."""
    if not isinstance(text, str):
        raise FilterError(str(text)[:100], "filter", "a filter is a string property:operator[:value]")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(text[:100], "filter", f"longer than {MAX_FILTER_LENGTH} characters")
    if "\x00" in text:  # no text column can hold it (PostgreSQL refuses it outright)
        raise FilterError(text, "filter", "a filter cannot contain a NUL character")
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise FilterError(text, "property", "expected property:operator[:value]")
    operator, has_value, value = rest.partition(":")
    if operator not in ALL_OPERATORS:
        raise FilterError(text, "operator", f"unknown operator {operator!r}; one of {', '.join(ALL_OPERATORS)}")
    if operator in NO_VALUE:
        if has_value:
            raise FilterError(text, "value", f"{operator} takes no value")
        return RawFilter(text, name, operator, ())
    if not has_value or value == "":
        raise FilterError(text, "value", f"{operator} needs a value")
    values = split_list(value) if operator in LIST_OPERATORS + (BETWEEN,) else (value,)
    if len(values) > MAX_LIST_VALUES:
        raise FilterError(text, "value", f"at most {MAX_LIST_VALUES} values")
    if operator == BETWEEN and len(values) != 2:
        raise FilterError(text, "value", "between takes two values: low,high")
    return RawFilter(text, name, operator, values)


# --- binding: values typed for their property ---------------------------------

def _bad(raw: RawFilter, message: str) -> FilterError:
    return FilterError(raw.text, "value", message)


def _id(raw: RawFilter, value: str, *, allow_me: bool = False) -> int | str:
    if allow_me and value == ME:
        return ME
    if value.isascii() and value.isdigit() and len(value) <= 10 and 0 < int(value) <= MAX_ID:
        return int(value)
    raise _bad(raw, f"{value!r} is not an id" + (" or 'me'" if allow_me else ""))


def _number(raw: RawFilter, value: str) -> float | int:
    try:
        number = int(value) if value.strip().lstrip("-").isdigit() and len(value) < 20 else float(value)
    except ValueError:
        raise _bad(raw, f"{value!r} is not a number") from None
    if isinstance(number, float) and not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise _bad(raw, f"{value!r} is not a number within ±{MAX_NUMBER:.0e}")
    return number


def _moment(raw: RawFilter, value: str, *, end_of_day: bool = False) -> datetime:
    """A date (``2026-03-01``, the start of that UTC day, or its end) or an ISO datetime (UTC when no zone)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(raw, f"{value!r} is not a date (YYYY-MM-DD) or an ISO datetime") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise _bad(raw, f"{value!r} is out of range") from None
    return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=timezone.utc)


def _day(raw: RawFilter, value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise _bad(raw, f"{value!r} is not a date (YYYY-MM-DD)") from None


def _typed(raw: RawFilter, spec: PropertySpec, value: str, index: int) -> Any:
    kind = spec.type
    if raw.operator == LAST_DAYS:
        if not (value.isascii() and value.isdigit() and len(value) <= 6 and 1 <= int(value) <= MAX_DAYS):
            raise _bad(raw, f"last_days takes a number of days, 1 to {MAX_DAYS}")
        return int(value)
    if kind in (USER, TEAM, TICKET_ID):
        if kind == TICKET_ID and raw.operator in (GT, LT, BETWEEN):
            return int(_number(raw, value))
        return _id(raw, value, allow_me=kind == USER)
    if kind in (PIPELINE, STATUS):
        return _id(raw, value) if value.isascii() and value.isdigit() else value
    if kind == NUMBER:
        return _number(raw, value)
    if kind == BOOLEAN:
        if value.lower() not in ("true", "false"):
            raise _bad(raw, "a boolean is true or false")
        return value.lower() == "true"
    if kind == ENUMERATION:
        match = next((o for o in spec.options if o.casefold() == value.casefold()), None)
        if match is None:
            raise _bad(raw, f"{value!r} is not one of {', '.join(spec.options)}")
        return match
    if kind == DATE:
        return _day(raw, value)
    if kind == DATETIME:
        return _moment(raw, value, end_of_day=raw.operator == BETWEEN and index == 1)
    return value


def bind_filter(raw: RawFilter, registry: Mapping[str, PropertySpec]) -> Filter:
    """``raw`` checked against its property: an operator that fits its type and values it can hold."""
    spec = registry.get(raw.property) or EXTRA_PROPERTIES.get(raw.property)
    if spec is None:
        raise FilterError(raw.text, "property", f"there is no property {raw.property!r}")
    allowed = OPERATORS_BY_TYPE.get(spec.type, ())
    if spec.built_in and spec.attribute is None:
        allowed = ()  # calculated without a stored column (message_count): not filterable yet
    if raw.operator not in allowed:
        fits = ", ".join(allowed) if allowed else "none: it cannot be filtered on"
        raise FilterError(raw.text, "operator",
                          f"{raw.operator} does not fit {raw.property} ({spec.type}); operators: {fits}")
    values = tuple(_typed(raw, spec, value, i) for i, value in enumerate(raw.values))
    if raw.operator == BETWEEN and values[0] > values[1]:
        raise _bad(raw, "between takes low,high with low <= high")
    return Filter(spec, raw.operator, values, raw.text)


def parse_filters(texts: Iterable[Any], registry: Mapping[str, PropertySpec]) -> list[Filter]:
    """Every criterion parsed and bound (ANDed by the caller); the first wrong one raises."""
    texts = list(texts)
    if len(texts) > MAX_FILTERS:
        raise FilterError(f"{len(texts)} filters", "filter", f"at most {MAX_FILTERS} filters")
    return [bind_filter(parse_filter(text), registry) for text in texts]


def filterable(registry: Mapping[str, PropertySpec]) -> dict[str, tuple[str, ...]]:
    """Property name -> the operators it takes: what a client may offer in a filter builder."""
    found: dict[str, tuple[str, ...]] = {}
    for name, spec in {**EXTRA_PROPERTIES, **registry}.items():
        if spec.built_in and spec.attribute is None:
            continue
        found[name] = OPERATORS_BY_TYPE.get(spec.type, ())
    return found
