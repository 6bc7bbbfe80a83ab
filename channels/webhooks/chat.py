"""The live-chat contract: one JSON message from a chat provider -> an inbound message.

Contract (documented in ``docs/channels-webhooks.md``)::

    {"session_id": "s-42", "message_id": "m-7",
     "visitor": {"id": "v-1", "name": "Ada", "email": "ada@example.com"},
     "text": "Hello", "attachments": [{"url": "...", "filename": "a.png", "content_type": "image/png"}],
     "timestamp": "2026-11-23T10:00:00Z"}

The session id threads the messages; the provider's message id makes
redeliveries duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from frontdesk.channels.webhooks.validation import InvalidFields, is_email
from frontdesk.ingest.message import InboundAttachment, InboundMessage


@dataclass(frozen=True)
class ChatAttachment:
    url: str
    filename: str | None
    content_type: str


@dataclass(frozen=True)
class ChatMessage:
    session_id: str
    message_id: str
    visitor_id: str
    visitor_name: str | None
    visitor_email: str | None
    text: str | None
    attachments: tuple[ChatAttachment, ...]
    sent_at: datetime


def _text(data: dict[str, Any], key: str, errors: dict[str, str], *, required: bool, limit: int,
          name: str | None = None) -> str | None:
    name = name or key
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[name] = "is required"
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return None
    if len(value) > limit:
        errors[name] = f"must be at most {limit} characters"
        return None
    return value.strip() if key != "text" else value


def _timestamp(value: Any, errors: dict[str, str]) -> datetime:
    now = datetime.now(timezone.utc)
    if value is None:
        errors["timestamp"] = "is required"
        return now
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    errors["timestamp"] = "must be ISO 8601 or Unix seconds"
    return now


def parse_chat_message(data: Any) -> ChatMessage:
    """Validate the contract; raise :class:`InvalidFields` naming every bad field."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    session_id = _text(data, "session_id", errors, required=True, limit=200)
    message_id = _text(data, "message_id", errors, required=True, limit=200)
    visitor = data.get("visitor") if data.get("visitor") is not None else {}
    if not isinstance(visitor, dict):
        errors["visitor"] = "must be an object"
        visitor = {}
    visitor_id = _text(visitor, "id", errors, required=False, limit=200, name="visitor.id")
    visitor_name = _text(visitor, "name", errors, required=False, limit=300, name="visitor.name")
    visitor_email = _text(visitor, "email", errors, required=False, limit=320, name="visitor.email")
    if visitor_email and not is_email(visitor_email):
        errors["visitor.email"] = "is not a valid email address"
    text = _text(data, "text", errors, required=False, limit=100_000)
    attachments: list[ChatAttachment] = []
    raw_attachments = data.get("attachments") or []
    if not isinstance(raw_attachments, list):
        errors["attachments"] = "must be a list"
        raw_attachments = []
    for index, item in enumerate(raw_attachments):
        where = f"attachments[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"].startswith(("http://", "https://")):
            errors[f"{where}.url"] = "must be an http(s) URL"
            continue
        filename = item.get("filename") if isinstance(item.get("filename"), str) else None
        attachments.append(ChatAttachment(url=item["url"], filename=filename or None,
                                          content_type=item["content_type"] if isinstance(item.get("content_type"), str) and item["content_type"]
                                          else "application/octet-stream"))
    if not text and not attachments and "text" not in errors and "attachments" not in errors:
        errors["text"] = "is required when there are no attachments"
    sent_at = _timestamp(data.get("timestamp"), errors)
    if errors:
        raise InvalidFields(errors)
    assert session_id and message_id
    return ChatMessage(session_id=session_id, message_id=message_id,
                       visitor_id=visitor_id or f"session:{session_id}",
                       visitor_name=visitor_name, visitor_email=visitor_email.lower() if visitor_email else None,
                       text=text, attachments=tuple(attachments), sent_at=sent_at)


def to_inbound(chat: ChatMessage, *, slug: str, raw_blob: str, raw: bytes) -> InboundMessage:
    return InboundMessage(
        channel="chat",
        channel_key=slug,
        source=f"webhook:chat/{slug}",
        raw_blob=raw_blob,
        content_hash=hashlib.sha256(raw).hexdigest(),
        # Scoped by session: providers only promise unique ids within one conversation.
        external_id=f"chat:{slug}:{chat.session_id}:{chat.message_id}",
        thread_key=chat.session_id,
        sender_address=chat.visitor_email,
        sender_name=chat.visitor_name,
        sender_external_id=chat.visitor_id,
        text_body=chat.text,
        reply_text=chat.text,
        attachments=[InboundAttachment(filename=a.filename, content_type=a.content_type, url=a.url)
                     for a in chat.attachments],
        sent_at=chat.sent_at,
        extra={"chat": {"session_id": chat.session_id, "message_id": chat.message_id}},
    )
