"""Conditional stage properties: what a ticket must carry to be put in a status by hand.

Every path that creates a ticket in a status or moves one into it, API and
bulk alike, calls :func:`check_required_properties` with the values the
ticket will have afterwards.  Moves made by automation are exempt, as in the
reference product (stage properties apply to manual changes).

Also validates values for custom properties against their definitions.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.errors import ApiError
from frontdesk.api.property_registry import (
    BOOLEAN,
    BUILT_IN,
    DATE,
    ENUMERATION,
    NUMBER,
    STRING,
    PropertySpec,
    all_properties,
)
from frontdesk.events import AGENT, AUTOMATION
from frontdesk.model import StageProperty, Status, Ticket

MAX_STRING = 10_000


def ticket_values(ticket: Ticket) -> dict[str, Any]:
    """A ticket's property values by property name (built-in and custom)."""
    values = {name: getattr(ticket, spec.attribute) for name, spec in BUILT_IN.items() if spec.attribute}
    values.update(ticket.custom_properties or {})
    return values


def _value_of(ticket_or_values: Ticket | Mapping[str, Any], name: str) -> Any:
    if isinstance(ticket_or_values, Ticket):
        return ticket_values(ticket_or_values).get(name)
    values = ticket_or_values
    if name in values:
        return values[name]
    spec = BUILT_IN.get(name)
    if spec and spec.attribute and spec.attribute in values:  # e.g. "owner_id" for "owner"
        return values[spec.attribute]
    custom = values.get("custom_properties") or values.get("properties")
    if isinstance(custom, Mapping):
        return custom.get(name)
    return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


async def required_properties(session: AsyncSession, status_id: int) -> list[str]:
    rows = await session.scalars(
        select(StageProperty.property_name)
        .where(StageProperty.status_id == status_id, StageProperty.required.is_(True))
        .order_by(StageProperty.position, StageProperty.id)
    )
    return list(rows.all())


async def check_required_properties(
    session: AsyncSession,
    ticket_or_values: Ticket | Mapping[str, Any],
    target_status_id: int,
    *,
    actor_kind: str,
) -> None:
    """Raise 422 ``required_properties_missing`` unless every required property of the status has a value.

    ``ticket_or_values`` is the ticket as it will be after the change: a
    ``Ticket`` or a mapping of property names (``owner`` or ``owner_id``;
    custom properties directly or under ``custom_properties``).
    """
    if actor_kind == AUTOMATION:
        return
    missing = [
        name for name in await required_properties(session, target_status_id)
        if _missing(_value_of(ticket_or_values, name))
    ]
    if missing:
        label = await session.scalar(select(Status.label).where(Status.id == target_status_id))
        raise ApiError(
            422,
            "required_properties_missing",
            f"status {label!r} requires a value for: {', '.join(missing)}",
            missing=missing,
            status_id=target_status_id,
        )


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(422, "property_value_invalid", f"property {name!r}: {message}", property=name)


def validate_value(spec: PropertySpec, value: Any) -> Any:
    """The value as stored, or 422 naming the property and the rule."""
    if value is None:
        return None
    name = spec.name
    if spec.type == STRING:
        if not isinstance(value, str):
            raise _invalid(name, "must be a string")
        if len(value) > MAX_STRING:
            raise _invalid(name, f"longer than {MAX_STRING} characters")
        return value
    if spec.type == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(name, "must be a number")
        return value
    if spec.type == ENUMERATION:
        if value not in spec.options:
            raise _invalid(name, f"must be one of {', '.join(spec.options)}")
        return value
    if spec.type == DATE:
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise _invalid(name, "must be a date, YYYY-MM-DD") from None
    if spec.type == BOOLEAN:
        if not isinstance(value, bool):
            raise _invalid(name, "must be true or false")
        return value
    raise _invalid(name, f"has type {spec.type!r}, which cannot be set here")


async def validate_custom_values(session: AsyncSession, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check custom property values against their definitions; 422 for unknown or read-only ones."""
    if not isinstance(raw, Mapping):
        raise ApiError(422, "field_invalid", "'properties' must be an object", field="properties")
    registry = await all_properties(session)
    cleaned: dict[str, Any] = {}
    for name, value in raw.items():
        spec = registry.get(name)
        if spec is None or spec.built_in:
            raise ApiError(422, "unknown_property", f"there is no custom property {name!r}", property=name)
        if not spec.settable:
            raise ApiError(422, "property_read_only", f"property {name!r} is read-only", property=name)
        cleaned[name] = validate_value(spec, value)
    return cleaned


async def enforce_stage_properties(session: AsyncSession, ticket: Ticket, status: Status,
                                   changes: Mapping[str, Any]) -> None:
    """The hook ``PATCH /api/v1/tickets/{id}`` calls: the ticket with ``changes`` applied must satisfy ``status``."""
    values = ticket_values(ticket)
    by_attribute = {spec.attribute: name for name, spec in BUILT_IN.items() if spec.attribute}
    for key, value in changes.items():
        values[by_attribute.get(key, key)] = value
    await check_required_properties(session, values, status.id, actor_kind=AGENT)
