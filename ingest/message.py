"""The normalized inbound message every channel produces, and what ingesting it yields.

Email parsing, Messenger, chat and form webhooks all end in an
:class:`InboundMessage`; threading and persistence never look at the wire
format again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from frontdesk.model.messages import ACCEPTED, INBOUND


@dataclass
class InboundAttachment:
    filename: str | None
    content_type: str
    data: bytes | None = None  # stored to blob storage by persist
    url: str | None = None  # remote media (Messenger) instead of bytes
    content_id: str | None = None
    is_inline: bool = False
    from_tnef: bool = False

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0


@dataclass
class Envelope:
    """How a message reached us, independent of its content."""

    channel: str  # email, messenger, chat, form
    source: str  # "smtp", "imap:<mailbox>", "webhook:<route>"
    mail_from: str | None = None
    rcpt_tos: tuple[str, ...] = ()
    channel_key: str | None = None  # the support address / page id / chat or form slug
    peer: str | None = None
    received_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "source": self.source,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "channel_key": self.channel_key,
            "peer": self.peer,
            "received_at": self.received_at.isoformat() if self.received_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        received = data.get("received_at")
        return cls(
            channel=data["channel"],
            source=data["source"],
            mail_from=data.get("mail_from"),
            rcpt_tos=tuple(data.get("rcpt_tos") or ()),
            channel_key=data.get("channel_key"),
            peer=data.get("peer"),
            received_at=datetime.fromisoformat(received) if received else None,
        )


@dataclass
class InboundMessage:
    channel: str
    channel_key: str | None  # resolved support address / page id / slug
    source: str
    raw_blob: str  # sha256 of the stored raw bytes
    content_hash: str  # sha256 of the raw bytes (exact-duplicate detection)
    external_id: str | None = None  # Message-ID without <> / Messenger mid / provider message id
    thread_key: str | None = None  # non-email threads: "page:psid", chat session id
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    subject: str | None = None
    sender_address: str | None = None  # email address, lower-cased
    sender_name: str | None = None
    sender_external_id: str | None = None  # PSID, chat visitor id
    reply_to: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    text_body: str | None = None
    html_body: str | None = None
    reply_text: str | None = None  # latest reply, quoted history stripped
    attachments: list[InboundAttachment] = field(default_factory=list)
    sent_at: datetime | None = None
    defects: list[str] = field(default_factory=list)
    is_forwarded: bool = False
    direction: str = INBOUND  # Messenger echoes of our own sends are outbound
    author_kind: str = "customer"
    # Screening verdict (frontdesk.model.messages.ACCEPTED, AUTO_REPLY, BOUNCE, LOOP, DUPLICATE)
    screening: str = ACCEPTED
    screening_reason: str | None = None
    bounced_refs: list[str] = field(default_factory=list)  # Message-IDs a bounce reports on
    # Forms: properties for the new ticket and its contact.
    ticket_fields: dict[str, Any] = field(default_factory=dict)
    contact_fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one inbound message; channels log it, tests assert on it."""

    # "ticket_created", "threaded", "screened", "duplicate", "quarantined", "no_ticket", or
    # "skipped" (its intake row was already settled, or is held by another processor)
    kind: str  # (or "queued": IMAP handed it to the intake, processed later)
    ticket_id: int | None = None
    message_id: int | None = None  # our messages.id
    quarantine_id: int | None = None
    reason: str | None = None  # match rule, screening reason or quarantine cause


class QuarantineMessage(Exception):
    """A stage cannot process this input; keep it raw under ``cause``.

    Raised by stages, caught in exactly one place (the pipeline runner).
    """

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Raised in the parse pool's worker processes and pickled back.
        return type(self), (self.cause, self.detail)
