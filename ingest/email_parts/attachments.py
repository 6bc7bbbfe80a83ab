"""Turn non-body MIME parts into attachments: file names decoded and made safe, inline images marked, TNEF unpacked."""

from __future__ import annotations

import re
from email.message import Message
from email.policy import default as default_policy

from frontdesk.ingest.email_parts import tnef
from frontdesk.ingest.email_parts.bodies import content_type, disposition, payload_bytes, raw_filename
from frontdesk.ingest.email_parts.headers import decode_value, message_ids
from frontdesk.ingest.message import InboundAttachment

MAX_FILENAME = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(value: str | None, defects: list[str]) -> str | None:
    """Decoded, without directories or control characters; None when nothing usable is left."""
    if not value:
        return None
    name = decode_value(value, where="attachment filename", defects=defects)
    # "C:\\Users\\x\\report.pdf" and "../../etc/passwd" both name a file, not a place.
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE.sub("", name).strip()
    if name in {".", ".."}:
        return None
    return name[:MAX_FILENAME] or None


def _render(message: Message) -> bytes | None:
    for render in (
        lambda: message.as_bytes(policy=default_policy),
        lambda: message.as_string(policy=default_policy).encode("utf-8", "surrogateescape"),
    ):
        try:
            return render()
        except Exception:
            continue
    return None


def _message_bytes(part: Message, defects: list[str]) -> bytes:
    """An attached message, a DSN's status blocks, or an over-deep multipart, serialized back to bytes."""
    payload = part.get_payload()
    if content_type(part).startswith("message/") and isinstance(payload, list):
        # message/rfc822 holds one message; message/delivery-status holds one
        # header block per recipient, and every block matters.
        items = payload[:1] if content_type(part) in ("message/rfc822", "message/global") else payload
    else:
        items = [part]
    rendered = [_render(item) for item in items if isinstance(item, Message)]
    if any(r is None for r in rendered):
        defects.append("attachment: attached message could not be serialized")
    return b"".join(r for r in rendered if r)


def _subject_of(part: Message) -> str | None:
    try:
        inner = part.get_payload(0)
        subject = inner.get("subject") if isinstance(inner, Message) else None
    except Exception:
        return None
    return str(subject) if subject else None


def to_attachments(part: Message, defects: list[str]) -> tuple[list[InboundAttachment], tnef.TnefContents | None]:
    """The attachment(s) one MIME part becomes; TNEF parts also yield their unpacked bodies."""
    ctype = content_type(part)
    filename = safe_filename(raw_filename(part), defects)
    if ctype.startswith("message/") and part.is_multipart() or ctype.startswith("multipart/"):
        data = _message_bytes(part, defects)
        if filename is None and ctype in ("message/rfc822", "message/global"):
            subject = _subject_of(part)
            # A subject is not a path: keep "a/b" whole rather than as "b".
            filename = safe_filename(re.sub(r"[\\/]", "-", subject) + ".eml", defects) if subject else None
    else:
        data = payload_bytes(part)
    try:
        cid_header = part.get("content-id", failobj=None)
    except Exception:
        cid_header = None
    content_ids = message_ids(str(cid_header)) if cid_header else []
    content_id = content_ids[0] if content_ids else None
    disp = disposition(part)
    is_inline = disp == "inline" or (disp is None and content_id is not None and ctype.startswith("image/"))

    if tnef.is_tnef(ctype, filename):
        contents = tnef.unpack(data, defects)
        if contents is not None and (contents.attachments or contents.html_body or contents.text_body):
            # The raw message is kept in blob storage, so the container adds nothing for agents.
            return contents.attachments, contents
    return [
        InboundAttachment(
            filename=filename,
            content_type=ctype,
            data=data,
            content_id=content_id,
            is_inline=is_inline,
        )
    ], None
