"""The domain event schema: one module, one version, ``noun.verb`` names.

Events are written to the outbox in the same transaction as the change they
describe (:func:`frontdesk.outbox.record_event`), published keyed by ticket
so each ticket's events keep their order, and consumed by automation.

``causation_id`` names the event that led to this one and ``depth`` counts
how many automated steps the chain has taken, so automation can refuse to
act on its own consequences beyond a fixed depth.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

SCHEMA_VERSION = 1

TICKET_CREATED = "ticket.created"
TICKET_STATUS_CHANGED = "ticket.status_changed"
TICKET_PROPERTY_CHANGED = "ticket.property_changed"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_SCREENED = "message.screened"  # auto-reply, bounce, loop: stored, never acted on
MESSAGE_DELIVERY_UPDATED = "message.delivery_updated"

EVENT_TYPES = frozenset(
    {
        TICKET_CREATED,
        TICKET_STATUS_CHANGED,
        TICKET_PROPERTY_CHANGED,
        MESSAGE_RECEIVED,
        MESSAGE_SENT,
        MESSAGE_SCREENED,
        MESSAGE_DELIVERY_UPDATED,
    }
)

# Who caused a change.
CUSTOMER = "customer"
AGENT = "agent"
AUTOMATION = "automation"
SYSTEM = "system"
ACTOR_KINDS = frozenset({CUSTOMER, AGENT, AUTOMATION, SYSTEM})


class EventSchemaError(ValueError):
    """An event body that does not match this schema version."""


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise EventSchemaError(f"unknown actor kind {self.kind!r}")


@dataclass(frozen=True)
class DomainEvent:
    type: str
    ticket_id: int | None
    actor: Actor
    payload: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    causation_id: str | None = None
    correlation_id: str | None = None
    depth: int = 0
    occurred_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise EventSchemaError(f"unknown event type {self.type!r}")
        if self.correlation_id is None:
            # A chain's first event correlates with itself.
            object.__setattr__(self, "correlation_id", self.id)

    @property
    def key(self) -> bytes:
        """The Kafka partition key: the ticket, so its events stay in order."""
        return str(self.ticket_id if self.ticket_id is not None else self.id).encode()

    def caused(self, type: str, *, ticket_id: int | None = None, actor: Actor | None = None,
               payload: Mapping[str, Any] | None = None) -> DomainEvent:
        """A follow-up event that this one caused, one automation step deeper."""
        return DomainEvent(
            type=type,
            ticket_id=self.ticket_id if ticket_id is None else ticket_id,
            actor=actor or Actor(AUTOMATION),
            payload=dict(payload or {}),
            causation_id=self.id,
            correlation_id=self.correlation_id,
            depth=self.depth + 1,
        )

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["payload"] = dict(self.payload)
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> DomainEvent:
        try:
            if body["version"] != SCHEMA_VERSION:
                raise EventSchemaError(f"event version {body['version']} is not {SCHEMA_VERSION}")
            return cls(
                type=body["type"],
                ticket_id=body["ticket_id"],
                actor=Actor(**body["actor"]),
                payload=dict(body.get("payload") or {}),
                id=body["id"],
                causation_id=body.get("causation_id"),
                correlation_id=body.get("correlation_id"),
                depth=int(body.get("depth", 0)),
                occurred_at=body["occurred_at"],
                version=body["version"],
            )
        except (KeyError, TypeError) as error:
            raise EventSchemaError(f"malformed event: {error}") from error
