"""Conversations (threads on one channel) and the messages and attachments in them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow

INBOUND = "inbound"
OUTBOUND = "outbound"

# Screening verdicts: everything but ACCEPTED is stored, flagged, and never
# creates a ticket or triggers automation.
ACCEPTED = "accepted"
AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"
LOOP = "loop"
REPORT = "report"  # abuse (ARF) reports and read receipts (MDN): stored, no ticket
DUPLICATE = "duplicate"


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_channel_thread", "channel_id", "thread_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    # email: the Message-ID that started the thread; messenger: "page:psid";
    # chat: the provider's session id.
    thread_key: Mapped[str | None] = mapped_column(String(998))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    is_forwarded: Mapped[bool] = mapped_column(default=False)
    # Which inbox the conversation is in (model/inboxes.py); new ones start in the help desk.
    inbox_id: Mapped[int | None] = mapped_column(ForeignKey("inboxes.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_external_id", "external_id"),
        Index("ix_messages_content_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    direction: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    # RFC 5322 Message-ID (without angle brackets) or the channel's own id (Messenger mid).
    external_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(300))
    to_addresses: Mapped[list[Any]] = mapped_column(default=list)
    cc_addresses: Mapped[list[Any]] = mapped_column(default=list)
    headers: Mapped[list[Any]] = mapped_column(default=list)  # [[name, value], ...]
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    reply_text: Mapped[str | None] = mapped_column(Text)  # latest reply, quoted history stripped
    raw_blob: Mapped[str | None] = mapped_column(String(64))  # sha256 of the raw bytes in blob storage
    content_hash: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]  # the Date header, when it parses
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author_kind: Mapped[str] = mapped_column(String(20), default="customer")  # customer, agent, automation, system
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    screening: Mapped[str] = mapped_column(String(20), default=ACCEPTED)
    screening_reason: Mapped[str | None] = mapped_column(Text)
    # Why this message was put on its ticket: rule name plus detail (which
    # header, which token), shown by the API.
    match_rule: Mapped[str | None] = mapped_column(String(50))
    match_detail: Mapped[str | None] = mapped_column(Text)
    is_forwarded: Mapped[bool] = mapped_column(default=False)
    is_automated: Mapped[bool] = mapped_column(default=False)  # our own automated mail
    via_personal_mailbox: Mapped[bool] = mapped_column(default=False)
    bounced_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    defects: Mapped[list[Any]] = mapped_column(default=list)
    delivery_state: Mapped[str | None] = mapped_column(String(20))  # outbound: queued, sent, delivered, read, failed
    source: Mapped[str | None] = mapped_column(String(320))  # "smtp", "imap:<mailbox>", webhook route
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # channel-specific detail (postback payload, ...)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str | None] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    blob: Mapped[str | None] = mapped_column(String(64))  # sha256; None for a remote URL (Messenger media)
    url: Mapped[str | None] = mapped_column(Text)
    content_id: Mapped[str | None] = mapped_column(String(998))
    is_inline: Mapped[bool] = mapped_column(default=False)
    from_tnef: Mapped[bool] = mapped_column(default=False)
