"""Parse stage: raw RFC 5322 bytes to a normalized :class:`InboundMessage`, never crashing on real mail.

Parsing uses the stdlib ``email`` package with ``policy.default``; every
header and body read goes through :mod:`ingest.email_parts`, which decodes
defensively and records what was wrong in ``defects`` instead of raising.
Only input with nothing recognisable as a message (no headers at all) is
quarantined.
"""

from __future__ import annotations

import hashlib
import re
from email import errors
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy

from frontdesk.ingest.email_parts import headers as hdr
from frontdesk.ingest.email_parts.attachments import to_attachments
from frontdesk.ingest.email_parts.bodies import content_type, html_to_text, joined_text, layout
from frontdesk.ingest.email_parts.forwarded import is_forwarded
from frontdesk.ingest.email_parts.quotes import latest_reply
from frontdesk.ingest.message import Envelope, InboundAttachment, InboundMessage, QuarantineMessage

MAX_DEFECTS = 200


def parse_email(raw: bytes, *, envelope: Envelope, raw_blob: str) -> InboundMessage:
    """Everything we can read from ``raw``; raises only ``QuarantineMessage("parse_error", ...)``."""
    if not raw or not raw.strip():
        raise QuarantineMessage("parse_error", "empty message")
    try:
        msg = _parse_bytes(raw)
        message = _normalize(msg, raw, envelope=envelope, raw_blob=raw_blob)
    except QuarantineMessage:
        raise
    except Exception as exc:  # a parser bug must end in the quarantine, not in a lost message
        raise QuarantineMessage("parse_error", f"{type(exc).__name__}: {exc}"[:500]) from exc
    return message


_BOM = b"\xef\xbb\xbf"
# RFC 822's obsolete syntax allowed blanks before the colon ("From  : x");
# the stdlib parser then sees no headers at all.
_OBS_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)


class _ParseHeadersOncePolicy(EmailPolicy):
    """``policy.default``, except that a header value is parsed into its structured object only once.

    ``policy.default`` parses a header again on every read; reading a
    part's type, charset, disposition and file name reads its Content-Type
    header about a dozen times per message.  Header objects are immutable,
    so one per (name, value) can be shared.  One instance per message, so
    the cache lives exactly as long as the message.
    """

    def __init__(self) -> None:
        super().__init__(header_factory=policy.default.header_factory)
        object.__setattr__(self, "_parsed", {})

    def header_fetch_parse(self, name, value):  # type: ignore[no-untyped-def]
        if not isinstance(value, str) or hasattr(value, "name"):
            return super().header_fetch_parse(name, value)
        key = (name, value)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parsed[key] = super().header_fetch_parse(name, value)
        return parsed


def _parse_bytes(raw: bytes) -> Message:
    parser = BytesParser(policy=_ParseHeadersOncePolicy())
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    bare_cr = b"\n" not in raw and b"\r" in raw
    if bare_cr:
        # Classic Mac OS line ends: the MIME boundary scanner only knows LF / CRLF.
        raw = raw.replace(b"\r", b"\n")
    msg = parser.parsebytes(raw)
    if bare_cr:
        msg.defects.append(BareCarriageReturnsDefect("CR-only line endings read as LF"))
    if not list(msg.raw_items()) and _OBS_FIELD_NAME.match(raw):
        head, *rest = re.split(rb"(\r?\n\r?\n|\r\r)", raw, maxsplit=1)
        msg = parser.parsebytes(_OBS_FIELD_NAME.sub(rb"\1:", head) + b"".join(rest))
        msg.defects.append(ObsoleteHeaderSyntaxDefect("field names followed by blanks before the colon"))
    return msg


class BareCarriageReturnsDefect(errors.MessageDefect):
    """Lines ended by CR alone were converted before parsing."""


class ObsoleteHeaderSyntaxDefect(errors.MessageDefect):
    """RFC 822 obsolete header syntax was repaired before parsing."""


def _normalize(msg: Message, raw: bytes, *, envelope: Envelope, raw_blob: str) -> InboundMessage:
    defects: list[str] = []
    raw_items = hdr.raw_headers(msg, defects)
    if not raw_items:
        raise QuarantineMessage("parse_error", "no header lines: not an email message")

    first = lambda name: hdr.first(raw_items, name)  # noqa: E731
    decoded_headers = [(name, hdr.decode_value(value, where=f"header {name}", defects=defects)) for name, value in raw_items]
    subject = (hdr.first(decoded_headers, "subject") or "").strip() or None

    senders = hdr.addresses(first("from"), where="from", defects=defects)
    if not senders:
        senders = hdr.addresses(first("sender"), where="sender", defects=defects)
        if first("from") is None:
            defects.append("from: missing")
    sender_name, sender_address = senders[0] if senders else (None, None)
    if sender_address is None and envelope.mail_from and "@" in envelope.mail_from:
        # No usable From/Sender: the SMTP envelope still says who sent it, and
        # without a sender the customer would get no acknowledgement at all.
        sender_address = envelope.mail_from.strip().strip("<>").lower()
        defects.append("from: taken from the envelope sender")
    reply_to = hdr.addresses(first("reply-to"), where="reply-to", defects=defects)

    in_reply_to: list[str] = []
    for value in hdr.all_values(raw_items, "in-reply-to"):
        in_reply_to += [i for i in hdr.message_ids(value) if i not in in_reply_to]
    references: list[str] = []
    for value in hdr.all_values(raw_items, "references"):
        references += [i for i in hdr.message_ids(value) if i not in references]
    own_ids = hdr.message_ids(first("message-id"))

    mime = layout(msg, defects)
    text_body = joined_text(mime.text_parts, defects, "text body")
    html_body = joined_text(mime.html_parts, defects, "html body")
    attachments: list[InboundAttachment] = []
    for part in mime.attachment_parts:
        found, tnef_contents = to_attachments(part, defects)
        attachments += found
        if tnef_contents is not None:
            html_body = html_body or tnef_contents.html_body
            text_body = text_body or tnef_contents.text_body
    if text_body is None and html_body:
        text_body = html_to_text(html_body, defects)

    to = [address for _, address in hdr.addresses(first("to"), where="to", defects=defects)]
    cc = [address for _, address in hdr.addresses(first("cc"), where="cc", defects=defects)]
    sent_at = hdr.sent_at(first("date"), defects)
    forwarded = is_forwarded(
        subject, text_body, attachments, raw_items, is_report=content_type(msg) == "multipart/report"
    )
    defects += _parser_defects(msg)
    if len(defects) > MAX_DEFECTS:
        defects = defects[:MAX_DEFECTS] + [f"... {len(defects) - MAX_DEFECTS} more defects"]

    message = InboundMessage(
        channel="email",
        channel_key=envelope.channel_key,
        source=envelope.source,
        raw_blob=raw_blob,
        content_hash=hashlib.sha256(raw).hexdigest(),
        external_id=own_ids[0] if own_ids else None,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        sender_address=sender_address,
        sender_name=sender_name or None,
        reply_to=reply_to[0][1] if reply_to else None,
        to=to,
        cc=cc,
        headers=decoded_headers,
        text_body=text_body,
        html_body=html_body,
        reply_text=latest_reply(text_body),
        attachments=attachments,
        sent_at=sent_at,
        defects=defects,
        is_forwarded=forwarded,
    )
    return _storable(message)


def _storable(message: InboundMessage) -> InboundMessage:
    """Text the databases accept: no NUL characters (PostgreSQL rejects them) and no lone surrogates.

    The raw bytes are stored untouched, so nothing is lost by cleaning the
    decoded copy.
    """
    changed = False

    def clean(text: str | None) -> str | None:
        nonlocal changed
        if text is None:
            return None
        cleaned = text.replace("\x00", "")
        if _SURROGATE.search(cleaned):
            cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
        changed = changed or cleaned != text
        return cleaned

    message.subject = clean(message.subject)
    message.sender_name = clean(message.sender_name)
    message.text_body = clean(message.text_body)
    message.html_body = clean(message.html_body)
    message.reply_text = clean(message.reply_text)
    message.sender_address = clean(message.sender_address)
    message.reply_to = clean(message.reply_to)
    message.to = [clean(address) or "" for address in message.to]
    message.cc = [clean(address) or "" for address in message.cc]
    message.headers = [(clean(name) or "", clean(value) or "") for name, value in message.headers]
    for attachment in message.attachments:
        attachment.filename = clean(attachment.filename)
        attachment.content_type = clean(attachment.content_type) or "application/octet-stream"
        attachment.content_id = clean(attachment.content_id)
    if changed:
        message.defects.append("text: NUL characters or lone surrogates removed")
    return _within_column_sizes(message)


# Column sizes of frontdesk.model.messages (PostgreSQL enforces VARCHAR(n)).
MAX_NAME = 300
MAX_ADDRESS = 320
MAX_CONTENT_TYPE = 255


def _within_column_sizes(message: InboundMessage) -> InboundMessage:
    if message.sender_name and len(message.sender_name) > MAX_NAME:
        message.sender_name = message.sender_name[:MAX_NAME]
        message.defects.append(f"from: display name cut to {MAX_NAME} characters")
    for field in ("sender_address", "reply_to"):
        value = getattr(message, field)
        if value and len(value) > MAX_ADDRESS:
            # A cut address would be someone else's; no address is honest.
            setattr(message, field, None)
            message.defects.append(f"{field}: address longer than {MAX_ADDRESS} characters dropped")
    for attachment in message.attachments:
        attachment.content_type = attachment.content_type[:MAX_CONTENT_TYPE]
    return message


_SURROGATE = re.compile("[\ud800-\udfff]")


def _parser_defects(msg: Message) -> list[str]:
    """The stdlib parser's own findings (missing boundaries, bad base64, ...), by class name."""
    found: list[str] = []
    try:
        for part in msg.walk():
            for defect in getattr(part, "defects", ()):
                name = type(defect).__name__
                if name not in found:
                    found.append(name)
    except RecursionError:
        found.append("mime: nesting too deep to inspect")
    return [f"parser: {name}" for name in found]
