"""Find the text and HTML bodies of a MIME tree, decode them, and derive text from HTML when needed.

A leaf is body when it is ``text/plain`` or ``text/html``, not marked as an
attachment and without a file name; everything else (including attached
messages, DSN parts and ``text/calendar``) is left to
:mod:`ingest.email_parts.attachments`.  Attached ``message/rfc822`` parts are
not descended into: a forwarded or bounced message is an attachment, not our
sender's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement

from frontdesk.ingest.email_parts.charset import decode_bytes

MAX_DEPTH = 50  # deeper MIME nesting is read, but noted as a defect

_TAGS = re.compile(r"<[^>]*>")
_INVISIBLE = re.compile(r"<(head|script|style|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLANK_RUNS = re.compile(r"\n{3,}")
# inscriptis drops <hr>; mail clients put one between a reply and the
# quoted message's headers, so it must at least break the line.
_CSS = {**CSS_PROFILES["relaxed"], "hr": HtmlElement(display=Display.block, margin_before=1, margin_after=1)}
_INSCRIPTIS = ParserConfig(css=_CSS)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)


@dataclass
class MimeLayout:
    """The leaves of a message sorted into body candidates and attachment parts."""

    text_parts: list[Message] = field(default_factory=list)
    html_parts: list[Message] = field(default_factory=list)
    attachment_parts: list[Message] = field(default_factory=list)


def content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # a Content-Type the structured parser chokes on
        return "application/octet-stream"


def disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def raw_filename(part: Message) -> str | None:
    """The part's file name as declared (RFC 2231 / 2047 handled by the caller), or None."""
    for getter in (lambda: part.get_filename(), lambda: part.get_param("name")):
        try:
            value = getter()
        except Exception:
            continue
        if isinstance(value, tuple):  # undecoded RFC 2231 triple
            value = value[2]
        if value:
            return str(value)
    return None


def layout(msg: Message, defects: list[str]) -> MimeLayout:
    """Sort the leaves of ``msg`` in document order; iterative, so no nesting depth can overflow the stack."""
    found = MimeLayout()
    stack: list[tuple[Message, int]] = [(msg, 0)]
    deepest = 0
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        children = _children(part, found, defects)
        stack.extend((child, depth + 1) for child in reversed(children))
    if deepest > MAX_DEPTH:
        defects.append(f"mime: nested {deepest} levels deep")
    return found


def _children(part: Message, found: MimeLayout, defects: list[str]) -> list[Message]:
    """The sub-parts to visit next, after filing ``part`` itself if it is a leaf."""
    ctype = content_type(part)
    if part.is_multipart() and not ctype.startswith("message/"):
        payload = part.get_payload()
        if isinstance(payload, list):
            return [child for child in payload if isinstance(child, Message)]
    if ctype.startswith("multipart/"):
        # A multipart without a usable boundary: its content is all we have.
        defects.append(f"mime: {ctype} without parts, read as text")
        found.text_parts.append(part)
    elif ctype.startswith("message/"):
        found.attachment_parts.append(part)
    elif ctype in ("text/plain", "text/html") and disposition(part) != "attachment" and raw_filename(part) is None:
        (found.text_parts if ctype == "text/plain" else found.html_parts).append(part)
    else:
        found.attachment_parts.append(part)
    return []


def payload_bytes(part: Message) -> bytes:
    """The part's content with its transfer encoding undone; never raises."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def decode_part_text(part: Message, defects: list[str], where: str) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    if charset is None:
        try:
            charset = part.get_param("charset")
            charset = charset if isinstance(charset, str) else None
        except Exception:
            charset = None
    data = payload_bytes(part)
    if charset is None and content_type(part) == "text/html":
        # HTML often declares its charset only in a <meta> tag.
        meta = _META_CHARSET.search(data[:4096])
        charset = meta.group(1).decode("ascii") if meta else None
    decoded = decode_bytes(data, charset, where=where)
    defects.extend(decoded.defects)
    return decoded.text.replace("\r\n", "\n").replace("\r", "\n")


def joined_text(parts: list[Message], defects: list[str], where: str) -> str | None:
    texts = [decode_part_text(part, defects, where) for part in parts]
    texts = [text for text in texts if text.strip()]
    return "\n\n".join(texts) if texts else None


def html_to_text(html: str, defects: list[str]) -> str:
    """Readable text from HTML via inscriptis; a crude tag strip only if inscriptis fails."""
    try:
        text = get_text(html, _INSCRIPTIS)
    except Exception as exc:  # broken markup
        defects.append(f"html: inscriptis failed ({type(exc).__name__}), tags stripped instead")
        text = _TAGS.sub(" ", html)
    if not text.strip():
        # lxml gives up silently on absurdly deep nesting; keep the words anyway.
        stripped = _TAGS.sub(" ", _INVISIBLE.sub(" ", html))
        if stripped.strip():
            defects.append("html: no text from inscriptis, tags stripped instead")
            text = stripped
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
