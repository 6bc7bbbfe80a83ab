"""The ticket property registry: built-in properties in code, custom ones from ``property_definitions``.

Each property says its type and whether users may set it.  Read-only and
calculated properties (timestamps, counts, scores) can be shown but never
chosen as stage properties or given a value by hand.  :func:`check_definition`
is the rule for defining a custom one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import PropertyDefinition
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.pipelines import valid_internal_name

STRING = "string"
NUMBER = "number"
ENUMERATION = "enumeration"
DATE = "date"
DATETIME = "datetime"
BOOLEAN = "boolean"
USER = "user"
TEAM = "team"
CUSTOM_TYPES = (STRING, NUMBER, ENUMERATION, DATE, BOOLEAN)

PRIORITIES = ("low", "medium", "high", "urgent")


@dataclass(frozen=True)
class PropertySpec:
    name: str
    label: str
    type: str
    built_in: bool
    read_only: bool = False
    calculated: bool = False
    options: tuple[str, ...] = ()
    description: str = ""
    # For built-ins: the Ticket attribute holding the value.
    attribute: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settable(self) -> bool:
        return not (self.read_only or self.calculated)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "built_in": self.built_in,
            "read_only": self.read_only,
            "calculated": self.calculated,
            "options": list(self.options),
            "description": self.description,
        }


BUILT_IN: dict[str, PropertySpec] = {
    spec.name: spec
    for spec in (
        PropertySpec("name", "Ticket name", STRING, True, attribute="name"),
        PropertySpec("description", "Description", STRING, True, attribute="description"),
        PropertySpec("priority", "Priority", ENUMERATION, True, options=PRIORITIES, attribute="priority"),
        PropertySpec("category", "Category", STRING, True, attribute="category"),
        PropertySpec("owner", "Ticket owner", USER, True, attribute="owner_id"),
        PropertySpec("team", "Team", TEAM, True, attribute="team_id"),
        PropertySpec("source", "Source", STRING, True, read_only=True, attribute="source_channel",
                     description="The channel the ticket came from; set by the system"),
        PropertySpec("created_at", "Create date", DATETIME, True, read_only=True, calculated=True,
                     attribute="created_at"),
        PropertySpec("updated_at", "Last modified", DATETIME, True, read_only=True, calculated=True,
                     attribute="updated_at"),
        PropertySpec("closed_at", "Close date", DATETIME, True, read_only=True, calculated=True,
                     attribute="closed_at"),
        PropertySpec("reopened_at", "Reopen date", DATETIME, True, read_only=True, calculated=True,
                     attribute="reopened_at"),
        PropertySpec("message_count", "Number of messages", NUMBER, True, read_only=True, calculated=True),
        PropertySpec("time_to_close", "Time to close (seconds)", NUMBER, True, read_only=True, calculated=True),
    )
}


def custom_spec(definition: PropertyDefinition) -> PropertySpec:
    return PropertySpec(
        name=definition.name,
        label=definition.label,
        type=definition.type,
        built_in=False,
        read_only=definition.read_only,
        calculated=definition.calculated,
        options=tuple(definition.options or ()),
    )


async def all_properties(session: AsyncSession) -> dict[str, PropertySpec]:
    """Every property, built-in first, then custom ones by name."""
    custom = (await session.scalars(select(PropertyDefinition).order_by(PropertyDefinition.name))).all()
    registry = dict(BUILT_IN)
    for definition in custom:
        registry[definition.name] = custom_spec(definition)
    return registry


async def property_spec(session: AsyncSession, name: str) -> PropertySpec | None:
    if name in BUILT_IN:
        return BUILT_IN[name]
    definition = await session.scalar(select(PropertyDefinition).where(PropertyDefinition.name == name))
    return custom_spec(definition) if definition else None


def check_definition(name: str, type_: str, options: Any) -> list[str]:
    """The options of a valid custom property definition, or ``DomainError`` naming the rule."""
    if not valid_internal_name(name) or name in BUILT_IN:
        raise DomainError("property_name_invalid",
                          f"{name!r} must be lowercase letters, digits and _ and not a built-in property name")
    if type_ not in CUSTOM_TYPES:
        raise DomainError("property_type_invalid", f"type must be one of {', '.join(CUSTOM_TYPES)}")
    options = options or []
    if not isinstance(options, list) or not all(isinstance(o, str) and o for o in options):
        raise DomainError("property_options_invalid", "options must be a list of non-empty strings")
    if type_ == ENUMERATION and not options:
        raise DomainError("property_options_required", "an enumeration needs at least one option")
    if len(set(options)) != len(options):
        raise DomainError("property_options_invalid", "options must be distinct")
    return options
