"""Property values: what a write may store, checked against the property's definition.

The API (typed JSON) goes through :func:`validate_value`; a web form, whose
values are all text, goes through :func:`parse_submitted` first, so "3"
for a number property is stored as ``3`` and "abc" is refused the same way
an API write would be.  Every refusal is a ``DomainError`` naming the property.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.properties import BOOLEAN, DATE, ENUMERATION, NUMBER, STRING, PropertySpec, all_properties

MAX_STRING = 10_000
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def invalid_value(name: str, message: str) -> DomainError:
    return DomainError("property_value_invalid", f"property {name!r}: {message}", property=name)


def validate_value(spec: PropertySpec, value: Any) -> Any:
    """The value as stored, or ``DomainError`` naming the property and the rule."""
    if value is None:
        return None
    name = spec.name
    if spec.type == STRING:
        if not isinstance(value, str):
            raise invalid_value(name, "must be a string")
        if len(value) > MAX_STRING:
            raise invalid_value(name, f"longer than {MAX_STRING} characters")
        return value
    if spec.type == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_value(name, "must be a number")
        return value
    if spec.type == ENUMERATION:
        if value not in spec.options:
            raise invalid_value(name, f"must be one of {', '.join(spec.options)}")
        return value
    if spec.type == DATE:
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise invalid_value(name, "must be a date, YYYY-MM-DD") from None
    if spec.type == BOOLEAN:
        if not isinstance(value, bool):
            raise invalid_value(name, "must be true or false")
        return value
    raise invalid_value(name, f"has type {spec.type!r}, which cannot be set here")


def parse_submitted(spec: PropertySpec, text: str) -> Any:
    """A submitted text value (a web form's) as the type ``spec`` stores, then validated like an API write."""
    value: Any = text
    if spec.type == NUMBER:
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise invalid_value(spec.name, "must be a number") from None
    elif spec.type == ENUMERATION:
        # A form's select may send "High" for the option "high".
        value = next((o for o in spec.options if o.casefold() == text.casefold()), text)
    elif spec.type == BOOLEAN and text.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        value = text.strip().lower() in TRUE_WORDS
    return validate_value(spec, value)


async def validate_custom_values(session: AsyncSession, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check custom property values against their definitions; unknown or read-only ones are refused."""
    if not isinstance(raw, Mapping):
        raise DomainError("field_invalid", "'properties' must be an object", field="properties")
    registry = await all_properties(session)
    cleaned: dict[str, Any] = {}
    for name, value in raw.items():
        spec = registry.get(name)
        if spec is None or spec.built_in:
            raise DomainError("unknown_property", f"there is no custom property {name!r}", property=name)
        if not spec.settable:
            raise DomainError("property_read_only", f"property {name!r} is read-only", property=name)
        cleaned[name] = validate_value(spec, value)
    return cleaned


def typed_submitted_values(registry: Mapping[str, PropertySpec], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Submitted custom values with each defined property's value parsed and checked.

    Names no definition covers are kept as given: a form may collect fields
    nobody has defined as properties yet.
    """
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        spec = registry.get(name)
        if spec is not None and not spec.built_in and isinstance(value, str):
            value = parse_submitted(spec, value)
        typed[name] = value
    return typed


async def submitted_custom_values(session: AsyncSession, raw: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`typed_submitted_values` against the stored definitions; no query when there is nothing to check."""
    if not raw:
        return {}
    return typed_submitted_values(await all_properties(session), raw)
