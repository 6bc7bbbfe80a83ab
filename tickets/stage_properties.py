"""Stage properties: what a ticket must carry to be put in a status by hand, and each status's list.

Every path that creates a ticket in a status or moves one into it, API,
bulk and status deletion alike, calls :func:`check_required_properties` with
the values the ticket will have afterwards.  Moves made by automation are
exempt, as in the reference product (stage properties apply to manual
changes).  A status's list may name only properties users can set.
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import AUTOMATION
from frontdesk.model import StageProperty, Status, Ticket
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.properties import BUILT_IN, PropertySpec, all_properties


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
    """Raise ``required_properties_missing`` unless every required property of the status has a value.

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
        raise DomainError(
            "required_properties_missing",
            f"status {label!r} requires a value for: {', '.join(missing)}",
            missing=missing,
            status_id=target_status_id,
        )


def values_after(ticket: Ticket, built_in: Mapping[str, Any], custom: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket's property values by property name once ``built_in`` (by attribute) and ``custom`` apply."""
    values = ticket_values(ticket)
    by_attribute = {spec.attribute: name for name, spec in BUILT_IN.items() if spec.attribute}
    # Built-in changes are keyed by attribute (owner_id), custom ones by name: kept
    # apart so a custom property called e.g. "team_id" cannot stand in for "team".
    values.update({by_attribute.get(key, key): value for key, value in built_in.items()})
    values.update(custom)
    return values


async def stage_properties(session: AsyncSession, status_id: int) -> list[dict[str, Any]]:
    """A status's stage properties, in order, as ``{property, required}``."""
    rows = (await session.scalars(
        select(StageProperty).where(StageProperty.status_id == status_id)
        .order_by(StageProperty.position, StageProperty.id)
    )).all()
    return [{"property": row.property_name, "required": row.required} for row in rows]


async def check_stage_list(session: AsyncSession, entries: Any) -> list[tuple[str, bool]]:
    """Validate an ordered stage property list: known, settable, each once."""
    if not isinstance(entries, list):
        raise DomainError("field_invalid", "'properties' must be a list of {property, required}")
    registry: dict[str, PropertySpec] = await all_properties(session)
    seen: set[str] = set()
    cleaned: list[tuple[str, bool]] = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"property": entry}
        name = entry.get("property") if isinstance(entry, dict) else None
        spec = registry.get(name) if isinstance(name, str) else None
        if spec is None:
            raise DomainError("unknown_property", f"there is no property {name!r}", property=name)
        if not spec.settable:
            raise DomainError("stage_property_read_only",
                              f"{name!r} is read-only or calculated and cannot be a stage property", property=name)
        if name in seen:
            raise DomainError("stage_property_duplicate", f"{name!r} is listed twice", property=name)
        seen.add(name)
        required = entry.get("required", False)
        if not isinstance(required, bool):
            raise DomainError("field_invalid", "'required' must be true or false", property=name)
        cleaned.append((name, required))
    return cleaned


async def replace_stage_properties(session: AsyncSession, status_id: int, entries: list[tuple[str, bool]]) -> None:
    await session.execute(delete(StageProperty).where(StageProperty.status_id == status_id))
    session.add_all([
        StageProperty(status_id=status_id, property_name=name, position=position, required=required)
        for position, (name, required) in enumerate(entries)
    ])
    await session.flush()
