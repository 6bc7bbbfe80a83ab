"""Intake bookkeeping: raw payloads awaiting processing, the quarantine, IMAP checkpoints and leases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow


class InboundPayload(Base):
    """Raw inbound input (a webhook body, a mail), stored durably before the edge acknowledges it.

    ``state`` goes pending -> processed, or pending -> quarantined; a
    restart picks up whatever is still pending.
    """

    __tablename__ = "inbound_payloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    route: Mapped[str] = mapped_column(String(320))  # webhooks: the channel key in the URL; email: smtp / imap:<mailbox>
    blob: Mapped[str] = mapped_column(String(64), index=True)  # the body's SHA-256: redeliveries are found by it
    # The raw body while pending: committed with the row (one group commit
    # makes many bodies durable at once); the processor moves it to the
    # blob store and clears it.
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # How it arrived, as ingest.message.Envelope.to_dict() (email: mail
    # from, rcpt tos, peer, received at), so processing sees what the edge saw.
    envelope: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class QuarantinedItem(Base):
    """Input that could not be processed, kept raw with a cause so it can be replayed."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(320))
    blob: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(50), index=True)  # a stable code, e.g. "parse_error"
    detail: Mapped[str | None] = mapped_column(Text)
    envelope: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once a replay got the input through (a ticket, a duplicate, a screened message).
    replayed_at: Mapped[datetime | None]
    replay_outcome: Mapped[str | None] = mapped_column(Text)
    # Every replay, failed or not, counts; a failed one leaves the item listed with why.
    replay_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_replay_at: Mapped[datetime | None]
    last_replay_cause: Mapped[str | None] = mapped_column(Text)


class MailboxCheckpoint(Base):
    """How far the IMAP poller got in one mailbox folder."""

    __tablename__ = "mailbox_checkpoints"
    __table_args__ = (UniqueConstraint("mailbox", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int | None]
    last_uid: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MailboxLease(Base):
    """Which daemon polls one IMAP mailbox folder, until when (``channels.imap_leases``).

    The holder renews ``expires_at`` every few seconds; once it has passed,
    any daemon may take the lease over.
    """

    __tablename__ = "mailbox_leases"
    __table_args__ = (UniqueConstraint("mailbox", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(200))
    holder: Mapped[str | None] = mapped_column(String(200))  # host:pid:random of the daemon; None once released
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime | None]  # when the current holder took it
