"""The transactional outbox, applied-effect keys, outbound deliveries and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow


class OutboxEvent(Base):
    """A domain event written in the same transaction as the change it describes."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # publication order
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None]
    body: Mapped[dict[str, Any]] = mapped_column()  # the full serialized event
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    # Embedded mode: when the in-process automation has handled it.
    handled_at: Mapped[datetime | None]


class AppliedEffect(Base):
    """An idempotency key (event id + action id) recorded with the effect it guards.

    The unique key makes a second attempt at the same effect fail inside its
    transaction, so redelivered and replayed events change nothing.
    """

    __tablename__ = "applied_effects"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The key's event part: a batch of events finds all its keys in one indexed query.
    event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    ticket_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One outbound message's journey to its recipient on its channel."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    ticket_id: Mapped[int | None]
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(30))  # agent_reply, template, notification
    # queued -> sent | deferred (retry later) | failed (permanent)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class DeadLetter(Base):
    """An event automation failed on N times; listed and replayed from the CLI."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    body: Mapped[dict[str, Any]] = mapped_column()
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]
