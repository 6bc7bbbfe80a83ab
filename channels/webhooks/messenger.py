"""Messenger Platform webhook bodies -> what ingest takes (pure functions, no I/O).

Every ``entry[].messaging[]`` item becomes one :class:`MessengerEvent`
whose ``kind`` says what we do with it; :func:`to_ingest` turns a handled
event into an :class:`~ingest.message.InboundMessage` (a customer's message
or postback) or an :class:`~ingest.updates.MessageUpdate` (echo, receipt,
edit, unsend).  What is handled and what is deliberately ignored, and why,
is the table in ``docs/channels-webhooks.md``; the reasons below are the
ones logged and tested.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from frontdesk.ingest import updates
from frontdesk.ingest.message import InboundAttachment, InboundMessage
from frontdesk.ingest.updates import MessageUpdate
from frontdesk.model.channels import MESSENGER
from frontdesk.outbound.messenger import ECHO_METADATA_PREFIX  # "fd:<message id>" in the Send API metadata

# Handled kinds.
MESSAGE = "message"  # a customer's message (text, attachments, quick reply, reply-to)
POSTBACK = "postback"  # a customer tapped a button; recorded as their message
ECHO = "echo"  # a message the Page sent (our own send, or from the Page inbox)
DELIVERY = "delivery"  # delivery receipt for our messages
READ = "read"  # read receipt (watermark) for our messages
EDIT = "edit"  # the customer edited a message we stored
DELETE = "delete"  # the customer unsent a message we stored
IGNORED = "ignored"

IGNORED_REASONS = {
    "reaction": "emoji reactions carry no support content; the message reacted to is unchanged",
    "referral": "a referral (ad, m.me link) says how the person arrived, not what they need; "
                "their first message follows separately",
    "optin": "plugin opt-ins and one-time notification tokens are marketing consent, not a support message",
    "account_linking": "account linking is a login flow of the Page's own app",
    "policy-enforcement": "policy enforcement notices concern the app, not a customer; operators read them in Meta's tools",
    "policy_enforcement": "policy enforcement notices concern the app, not a customer; operators read them in Meta's tools",
    "app_roles": "app role changes concern the handover configuration, not a conversation",
    "pass_thread_control": "handover protocol: thread ownership changes are not messages; "
                           "we answer whatever reaches the messaging field",
    "take_thread_control": "handover protocol: thread ownership changes are not messages; "
                           "we answer whatever reaches the messaging field",
    "request_thread_control": "handover protocol: thread ownership changes are not messages; "
                              "we answer whatever reaches the messaging field",
    "checkout_update": "Messenger payments (checkout updates) are not supported by a helpdesk",
    "payment": "Messenger payments are not supported by a helpdesk",
    "game_play": "instant game events are not support conversations",
}
STANDBY_REASON = ("standby: another app is the thread owner (handover protocol) and answers it; "
                  "we neither reply to nor record these")
CHANGES_REASON = "Page feed/ratings/mention changes are not Messenger conversations"
NO_SENDER_REASON = "the event names no sender"
USER_REF_PREFIX = "user_ref:"
UNKNOWN_PAGE_REASON = "the entry's Page id is not a configured channel signed with this app secret"


@dataclass(frozen=True)
class MessengerAttachment:
    type: str  # image, video, audio, file, location, fallback, template, sticker...
    url: str | None
    title: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        media = {"image": "image/*", "video": "video/*", "audio": "audio/*", "file": "application/octet-stream"}
        return media.get(self.type, f"application/x-messenger-{self.type}")


@dataclass(frozen=True)
class MessengerEvent:
    kind: str
    page_id: str
    psid: str | None  # the person (for an echo: the recipient)
    reason: str | None = None  # why it is ignored
    mid: str | None = None
    text: str | None = None
    attachments: tuple[MessengerAttachment, ...] = ()
    sent_at: datetime | None = None
    watermark: datetime | None = None  # read / delivery receipts
    receipt_mids: tuple[str, ...] = ()
    metadata: str | None = None  # echoes: what we put in the Send API call
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def thread_key(self) -> str | None:
        return f"{self.page_id}:{self.psid}" if self.psid else None

    @property
    def content_hash(self) -> str:
        canonical = json.dumps(self.raw, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()

    @property
    def external_id(self) -> str | None:
        """The Messenger mid, or for old-style postbacks without one a stable stand-in."""
        if self.mid:
            return self.mid
        if self.kind == POSTBACK and self.sent_at:
            return f"postback:{self.page_id}:{self.psid}:{int(self.sent_at.timestamp() * 1000)}"
        return None


def _id(value: Any) -> str | None:
    """An id: a string or a whole number (``{"id": ...}`` objects unwrapped); anything else is no id."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value) or None


def _text(value: Any) -> str | None:
    """A text field as Meta documents it (a string); a number is taken as its digits, anything else as absent.

    Payloads are written by others: a ``text`` that is a number, an object
    or a list must not reach a stage that expects a string.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _person(value: Any) -> str | None:
    """A PSID, or ``user_ref:<ref>`` for a guest of the chat plugin (Send API ``recipient.user_ref``)."""
    if isinstance(value, dict) and value.get("id") in (None, "") and value.get("user_ref") not in (None, ""):
        return f"{USER_REF_PREFIX}{value['user_ref']}"
    return _id(value)


def _millis(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return datetime.fromtimestamp(float(value) / 1000, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _attachments(message: dict[str, Any]) -> tuple[MessengerAttachment, ...]:
    found = []
    for item in _list(message.get("attachments")):
        if not isinstance(item, dict):
            continue
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
        url = _text(payload.get("url")) or _text(item.get("url"))
        found.append(MessengerAttachment(type=_text(item.get("type")) or "unknown", url=url or None,
                                         title=_text(item.get("title")), payload=payload))
    return tuple(found)


def _message_event(page_id: str, item: dict[str, Any], message: dict[str, Any]) -> MessengerEvent:
    sender, recipient = _person(item.get("sender")), _person(item.get("recipient"))
    sent_at = _millis(item.get("timestamp"))
    mid = _id(message.get("mid"))
    if message.get("is_echo"):
        return MessengerEvent(ECHO, page_id, recipient, mid=mid, text=_text(message.get("text")),
                              attachments=_attachments(message), sent_at=sent_at,
                              metadata=_text(message.get("metadata")),
                              extra={"app_id": _id(message.get("app_id"))}, raw=item)
    if message.get("is_deleted"):
        return MessengerEvent(DELETE, page_id, sender, mid=mid, sent_at=sent_at, raw=item)
    extra: dict[str, Any] = {}
    if isinstance(message.get("quick_reply"), dict):
        extra["quick_reply_payload"] = message["quick_reply"].get("payload")
    if isinstance(message.get("reply_to"), dict):
        extra["reply_to_mid"] = _id(message["reply_to"].get("mid"))
    if message.get("is_unsupported"):
        # Still a customer writing to us: record it so an agent sees it, flagged.
        extra["unsupported"] = True
    if message.get("sticker_id"):
        extra["sticker_id"] = _id(message.get("sticker_id"))
    if item.get("prior_message"):
        extra["prior_message"] = item["prior_message"]
    if message.get("nlp"):
        extra["nlp"] = message["nlp"]
    attachments = _attachments(message)
    if any(a.url is None for a in attachments):
        extra["attachment_payloads"] = [{"type": a.type, "title": a.title, "payload": a.payload}
                                        for a in attachments if a.url is None]
    return MessengerEvent(MESSAGE, page_id, sender, mid=mid, text=_text(message.get("text")),
                          attachments=attachments, sent_at=sent_at, extra=extra, raw=item)


def classify_messaging(page_id: str, item: dict[str, Any]) -> MessengerEvent:
    """One ``messaging[]`` item -> what it is and what we do with it."""
    sender = _person(item.get("sender"))
    sent_at = _millis(item.get("timestamp"))
    if isinstance(item.get("message"), dict):
        event = _message_event(page_id, item, item["message"])
        if event.psid is None:
            return MessengerEvent(IGNORED, page_id, None, reason=NO_SENDER_REASON, raw=item)
        return event
    for key, reason in IGNORED_REASONS.items():
        if key in item:
            return MessengerEvent(IGNORED, page_id, sender, reason=f"{key}: {reason}", raw=item)
    if sender is None:
        return MessengerEvent(IGNORED, page_id, None, reason=NO_SENDER_REASON, raw=item)
    if isinstance(item.get("postback"), dict):
        postback = item["postback"]
        title = _text(postback.get("title"))
        return MessengerEvent(POSTBACK, page_id, sender, mid=_id(postback.get("mid")),
                              text=title or _text(postback.get("payload")), sent_at=sent_at,
                              extra={"postback": {k: postback.get(k) for k in ("title", "payload", "referral")
                                                  if postback.get(k) is not None}},
                              raw=item)
    if isinstance(item.get("delivery"), dict):
        delivery = item["delivery"]
        mids = tuple(mid for m in _list(delivery.get("mids")) if (mid := _id(m)))
        return MessengerEvent(DELIVERY, page_id, sender, receipt_mids=mids,
                              watermark=_millis(delivery.get("watermark")), sent_at=sent_at, raw=item)
    if isinstance(item.get("read"), dict):
        return MessengerEvent(READ, page_id, sender, watermark=_millis(item["read"].get("watermark")),
                              sent_at=sent_at, raw=item)
    if isinstance(item.get("message_edit"), dict):
        edit = item["message_edit"]
        num_edit = edit.get("num_edit")
        return MessengerEvent(EDIT, page_id, sender, mid=_id(edit.get("mid")), text=_text(edit.get("text")),
                              sent_at=sent_at, raw=item,
                              extra={"num_edit": num_edit if isinstance(num_edit, int) and not isinstance(num_edit, bool)
                                     else None})
    known = sorted(set(item) - {"sender", "recipient", "timestamp"})
    return MessengerEvent(IGNORED, page_id, sender, reason=f"unknown messaging event {known}", raw=item)


@dataclass(frozen=True)
class ClassifiedPayload:
    events: tuple[MessengerEvent, ...]
    ignored_reason: str | None = None  # the whole payload is not for us


def classify_payload(data: Any, pages: set[str]) -> ClassifiedPayload:
    """A whole webhook body -> its events; ``pages`` are the Page ids we may act for."""
    if not isinstance(data, dict):
        return ClassifiedPayload((), "the body is not a JSON object")
    if data.get("object") != "page":
        return ClassifiedPayload((), f"object {data.get('object')!r} is not a Messenger Page webhook "
                                     "(Instagram, WhatsApp, user and permission webhooks are not channels here)")
    events: list[MessengerEvent] = []
    for entry in _list(data.get("entry")):
        if not isinstance(entry, dict):
            continue
        page_id = _id(entry.get("id")) or ""
        for item in _list(entry.get("messaging")):
            if not isinstance(item, dict):
                continue
            if page_id not in pages:
                events.append(MessengerEvent(IGNORED, page_id, _id(item.get("sender")),
                                             reason=UNKNOWN_PAGE_REASON, raw=item))
            else:
                events.append(classify_messaging(page_id, item))
        for item in _list(entry.get("standby")):
            if isinstance(item, dict):
                events.append(MessengerEvent(IGNORED, page_id, _id(item.get("sender")),
                                             reason=STANDBY_REASON, raw=item))
        for item in _list(entry.get("changes")):
            if isinstance(item, dict):
                events.append(MessengerEvent(IGNORED, page_id, None,
                                             reason=f"{CHANGES_REASON} (field {item.get('field')!r})", raw=item))
    if not events:
        return ClassifiedPayload((), "the payload holds no messaging events")
    return ClassifiedPayload(tuple(events))


def entry_page_ids(data: Any) -> set[str]:
    """The Page ids a body's entries name (to route and to refuse unknown Pages)."""
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        return set()
    return {pid for entry in data["entry"] if isinstance(entry, dict) and (pid := _id(entry.get("id")))}


# Messenger event kind -> the neutral update kind ingest applies.
UPDATE_KINDS = {ECHO: updates.ECHO, DELIVERY: updates.DELIVERED, READ: updates.READ,
                EDIT: updates.EDITED, DELETE: updates.UNSENT}


def _source(event: MessengerEvent) -> str:
    return f"webhook:messenger/{event.page_id}"


def messenger_inbound(event: MessengerEvent, raw_blob: str) -> InboundMessage:
    """A customer's message or postback -> the inbound message the message pipeline takes."""
    extra: dict[str, Any] = {"messenger": {"page_id": event.page_id, **event.extra}}
    if event.kind == POSTBACK:
        extra["messenger"]["kind"] = "postback"
    return InboundMessage(
        channel=MESSENGER,
        channel_key=event.page_id,
        source=_source(event),
        raw_blob=raw_blob,
        content_hash=event.content_hash,
        external_id=event.external_id,
        thread_key=event.thread_key,
        sender_external_id=event.psid,
        text_body=event.text,
        reply_text=event.text,
        attachments=[InboundAttachment(filename=a.title, content_type=a.content_type, url=a.url)
                     for a in event.attachments if a.url],
        sent_at=event.sent_at,
        extra=extra,
    )


def _our_message_id(metadata: str | None) -> int | None:
    """Our message id from the ``fd:<id>`` marker our Send API calls carry, echoed back by Meta."""
    if metadata and metadata.startswith(ECHO_METADATA_PREFIX):
        ident = metadata.removeprefix(ECHO_METADATA_PREFIX)
        if ident.isdigit():
            return int(ident)
    return None


def messenger_update(event: MessengerEvent, *, channel_id: int, raw_blob: str) -> MessageUpdate:
    """An echo, receipt, edit or unsend -> the update the update pipeline applies."""
    extra: dict[str, Any] = {}
    if event.kind == ECHO:
        extra = {"echo": True, "app_id": event.extra.get("app_id")}
        if event.metadata:
            extra["metadata"] = event.metadata
        if event.attachments:
            extra["attachments"] = [{"type": a.type, "url": a.url} for a in event.attachments]
    return MessageUpdate(
        kind=UPDATE_KINDS[event.kind],
        channel=MESSENGER,
        channel_id=channel_id,
        thread_key=event.thread_key,
        source=_source(event),
        raw_blob=raw_blob,
        provider_message_id=event.mid,
        receipt_message_ids=event.receipt_mids,
        watermark=event.watermark,
        sent_at=event.sent_at,
        text=event.text,
        edit_count=event.extra.get("num_edit") if event.kind == EDIT else None,
        our_message_id=_our_message_id(event.metadata) if event.kind == ECHO else None,
        content_hash=event.content_hash if event.kind == ECHO else None,
        extra=extra,
    )


def to_ingest(event: MessengerEvent, *, channel_id: int, raw_blob: str) -> InboundMessage | MessageUpdate:
    """A handled (not ignored) event -> a customer message or an update of messages we hold."""
    if event.kind in (MESSAGE, POSTBACK):
        return messenger_inbound(event, raw_blob)
    if event.kind in UPDATE_KINDS:
        return messenger_update(event, channel_id=channel_id, raw_blob=raw_blob)
    raise ValueError(f"Messenger event kind {event.kind!r} is not handled")
