"""The domain event schema: one module, one version, one class per ``noun.verb`` type.

Each event type is a frozen dataclass with its own typed fields; producers
build them with that constructor and nothing else, and consumers (the worker,
the loop guard, the tests) read fields, never dict keys.  Events are written
to the outbox in the same transaction as the change they describe
(:func:`frontdesk.outbox.record_events`), published keyed by ticket so each
ticket's events keep their order, and consumed by automation.

On the wire an event is the envelope (``type``, ``ticket_id``, ``actor``,
``id``, ``causation_id``, ``correlation_id``, ``depth``, ``occurred_at``,
``version``) plus ``payload``: the type's own fields.  :meth:`DomainEvent.from_dict`
turns a body back into the class its ``type`` names.

``causation_id`` names the event that led to this one and ``depth`` counts
how many automated steps the chain has taken, so automation can refuse to
act on its own consequences beyond a fixed depth (:meth:`DomainEvent.follow_up`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from typing import Any, ClassVar, TypeVar

SCHEMA_VERSION = 1

TICKET_CREATED = "ticket.created"
TICKET_STATUS_CHANGED = "ticket.status_changed"
TICKET_PROPERTY_CHANGED = "ticket.property_changed"
TICKET_DELETED = "ticket.deleted"
TICKET_RESTORED = "ticket.restored"
CONVERSATION_MOVED = "conversation.moved"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_SCREENED = "message.screened"  # auto-reply, bounce, loop: stored, never acted on
MESSAGE_DELIVERY_UPDATED = "message.delivery_updated"
SLA_DUE_SOON = "sla.due_soon"
SLA_OVERDUE = "sla.overdue"
SLA_SETTINGS_CHANGED = "sla.settings_changed"
COMMENT_CREATED = "comment.created"
COMMENT_EDITED = "comment.edited"
COMMENT_DELETED = "comment.deleted"

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

    @classmethod
    def agent(cls, user_id: int | None) -> Actor:
        """An agent, by user id; ``None`` for the operator token, which has no user."""
        return cls(AGENT, None if user_id is None else str(user_id))


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


_ENVELOPE = ("ticket_id", "actor", "id", "causation_id", "correlation_id", "depth", "occurred_at")

E = TypeVar("E", bound="DomainEvent")


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """The envelope every event type shares; subclasses add their payload fields."""

    type: ClassVar[str]
    version: ClassVar[int] = SCHEMA_VERSION

    ticket_id: int | None
    actor: Actor
    id: str = field(default_factory=_new_id)
    causation_id: str | None = None
    correlation_id: str | None = None
    depth: int = 0
    occurred_at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if type(self) is DomainEvent:
            raise EventSchemaError("DomainEvent is the envelope; build one of its event types")
        if self.correlation_id is None:
            # A chain's first event correlates with itself.
            object.__setattr__(self, "correlation_id", self.id)

    @property
    def key(self) -> bytes:
        """The Kafka partition key: the ticket, so its events stay in order."""
        return str(self.ticket_id if self.ticket_id is not None else self.id).encode()

    @property
    def payload(self) -> dict[str, Any]:
        """The type's own fields, as they go on the wire (read fields, not this, in code)."""
        return {name: _plain(getattr(self, name)) for name in _payload_fields(type(self))}

    def follow_up(self, event_type: type[E], *, ticket_id: int | None = None, actor: Actor | None = None,
                  **fields: Any) -> E:
        """An event that this one caused, one automation step deeper, in the same chain."""
        return event_type(
            ticket_id=self.ticket_id if ticket_id is None else ticket_id,
            actor=actor or Actor(AUTOMATION),
            causation_id=self.id,
            correlation_id=self.correlation_id,
            depth=self.depth + 1,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "ticket_id": self.ticket_id,
            "actor": {"kind": self.actor.kind, "id": self.actor.id},
            "payload": self.payload,
            "id": self.id,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "depth": self.depth,
            "occurred_at": self.occurred_at,
            "version": self.version,
        }

    @staticmethod
    def from_dict(body: Mapping[str, Any]) -> DomainEvent:
        """The typed event a wire body describes; :class:`EventSchemaError` if it is not one."""
        try:
            if body["version"] != SCHEMA_VERSION:
                raise EventSchemaError(f"event version {body['version']} is not {SCHEMA_VERSION}")
            event_type = EVENT_CLASSES.get(body["type"])
            if event_type is None:
                raise EventSchemaError(f"unknown event type {body['type']!r}")
            payload = body.get("payload") or {}
            if not isinstance(payload, Mapping):
                raise EventSchemaError("payload is not an object")
            known = set(_payload_fields(event_type))
            return event_type(
                ticket_id=body["ticket_id"],
                actor=Actor(**body["actor"]),
                id=body["id"],
                causation_id=body.get("causation_id"),
                correlation_id=body.get("correlation_id"),
                depth=int(body.get("depth", 0)),
                occurred_at=body["occurred_at"],
                # Fields a newer producer added are ignored; a missing one is an error.
                **{name: value for name, value in payload.items() if name in known},
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, EventSchemaError):
                raise
            raise EventSchemaError(f"malformed event: {error}") from error


@cache
def _payload_fields(event_type: type[DomainEvent]) -> tuple[str, ...]:
    """The names of a type's own fields, in declaration order (cached: events are built in bursts)."""
    return tuple(f.name for f in dataclasses.fields(event_type) if f.name not in _ENVELOPE)


_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:  # most payload fields: skip the abstract-class checks below
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- tickets -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TicketCreated(DomainEvent):
    """A ticket was created: by a channel's first message, by hand, or by a form."""

    type: ClassVar[str] = TICKET_CREATED
    pipeline_id: int
    status_id: int
    source: str  # the channel kind ("email", "messenger", "chat", "form") or "manual"
    channel_id: int | None = None
    contact_id: int | None = None
    origin_conversation_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class TicketStatusChanged(DomainEvent):
    """A ticket moved to another status (by hand, in bulk, or by a trigger)."""

    type: ClassVar[str] = TICKET_STATUS_CHANGED
    pipeline_id: int
    from_status_id: int
    to_status_id: int
    from_status: str
    to_status: str
    is_closed: bool
    reopened: bool
    reason: str | None = None  # why an admin moved it (a status deleted, a bulk move)
    rule: str | None = None  # which trigger moved it


@dataclass(frozen=True, kw_only=True)
class TicketPropertyChanged(DomainEvent):
    """Properties of a ticket changed: ``changes`` maps each name to ``{"from": ..., "to": ...}``."""

    type: ClassVar[str] = TICKET_PROPERTY_CHANGED
    changes: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class TicketDeleted(DomainEvent):
    """A ticket was soft-deleted: out of every list until an admin restores it."""

    type: ClassVar[str] = TICKET_DELETED
    pipeline_id: int
    owner_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class TicketRestored(DomainEvent):
    """An admin restored a deleted ticket."""

    type: ClassVar[str] = TICKET_RESTORED
    pipeline_id: int
    owner_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class ConversationMoved(DomainEvent):
    """A conversation moved to another inbox, maybe reassigned; ``ticket_id`` is its ticket, if any."""

    type: ClassVar[str] = CONVERSATION_MOVED
    conversation_id: int
    from_inbox_id: int | None
    to_inbox_id: int
    owner_id: int | None = None
    ticket_created: bool = False  # moving into the help desk gave the conversation a ticket


# --- messages ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MessageReceived(DomainEvent):
    """An accepted inbound message (or a Messenger echo of our page) was stored on a ticket."""

    type: ClassVar[str] = MESSAGE_RECEIVED
    message_id: int
    conversation_id: int | None
    channel: str
    channel_id: int | None
    direction: str
    author_kind: str
    sender: str | None
    match_rule: str | None
    ticket_created: bool  # this message opened the ticket
    on_origin_thread: bool  # on the conversation the ticket was created from
    ticket_reopened: bool  # the ticket was closed and reopened before
    is_forwarded: bool = False
    is_automated: bool = False
    via_personal_mailbox: bool = False


@dataclass(frozen=True, kw_only=True)
class MessageSent(DomainEvent):
    """We queued a message to the customer: an agent's reply or an automated template."""

    type: ClassVar[str] = MESSAGE_SENT
    message_id: int
    conversation_id: int | None
    channel: str
    from_ticket: bool  # sent from the ticket (not from a contact record)
    automated: bool
    direction: str = "outbound"
    delivery_id: int | None = None
    template: str | None = None
    action_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class MessageScreened(DomainEvent):
    """An inbound message was stored but screened out (auto-reply, bounce, loop, ...)."""

    type: ClassVar[str] = MESSAGE_SCREENED
    message_id: int
    verdict: str
    reason: str | None = None
    bounced_message_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MessageDeliveryUpdated(DomainEvent):
    """An outbound message's delivery moved on: sent, deferred, failed, delivered, read."""

    type: ClassVar[str] = MESSAGE_DELIVERY_UPDATED
    message_id: int
    channel: str
    state: str
    source: str = "delivery"  # "delivery" (our send loop) or "receipt" (the provider told us)
    delivery_id: int | None = None
    attempts: int | None = None
    error: str | None = None


# --- SLA ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SlaTimerFired(DomainEvent):
    """A ticket's SLA clock reached a moment: the subclasses say which."""

    type: ClassVar[str] = ""
    clock_id: int
    clock: str  # first_response, next_response, time_to_close
    due_at: str  # ISO instant


@dataclass(frozen=True, kw_only=True)
class SlaDueSoon(SlaTimerFired):
    """An SLA clock is within its due-soon threshold of its due time."""

    type: ClassVar[str] = SLA_DUE_SOON


@dataclass(frozen=True, kw_only=True)
class SlaOverdue(SlaTimerFired):
    """An SLA clock passed its due time while still running."""

    type: ClassVar[str] = SLA_OVERDUE


@dataclass(frozen=True, kw_only=True)
class SlaSettingsChanged(DomainEvent):
    """A super admin changed the SLA settings, making ``settings_version``; the running clocks are recomputed after.

    ``clocks_to_recompute`` counts the clocks running at the change; the timer
    scanner recomputes them in batches and fires none at an outdated moment.
    """

    type: ClassVar[str] = SLA_SETTINGS_CHANGED
    enabled: bool
    settings_version: int
    clocks_to_recompute: int
# --- comments ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _CommentWritten(DomainEvent):
    """A comment's text was written; ``new_mentions`` are the users it mentions for the first time."""

    comment_id: int
    author_user_id: int | None
    new_mentions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "new_mentions", tuple(self.new_mentions))  # a JSON list on the wire


@dataclass(frozen=True, kw_only=True)
class CommentCreated(_CommentWritten):
    """An internal comment was added to a ticket."""

    type: ClassVar[str] = COMMENT_CREATED


@dataclass(frozen=True, kw_only=True)
class CommentEdited(_CommentWritten):
    """A comment's text changed; ``new_mentions`` leaves out users it already mentioned."""

    type: ClassVar[str] = COMMENT_EDITED


@dataclass(frozen=True, kw_only=True)
class CommentDeleted(DomainEvent):
    """A comment was deleted by its author."""

    type: ClassVar[str] = COMMENT_DELETED
    comment_id: int
    author_user_id: int | None


EVENT_CLASSES: dict[str, type[DomainEvent]] = {
    cls.type: cls
    for cls in (
        TicketCreated,
        TicketStatusChanged,
        TicketPropertyChanged,
        TicketDeleted,
        TicketRestored,
        ConversationMoved,
        MessageReceived,
        MessageSent,
        MessageScreened,
        MessageDeliveryUpdated,
        SlaDueSoon,
        SlaOverdue,
        SlaSettingsChanged,
        CommentCreated,
        CommentEdited,
        CommentDeleted,
    )
}
EVENT_TYPES = frozenset(EVENT_CLASSES)
