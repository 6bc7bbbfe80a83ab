"""Read header values safely: decoded text, addresses, message ids and dates that never raise.

The stdlib's structured header objects raise on real mail (group syntax
such as ``unlisted-recipients:;`` gives an ``AttributeError``; RFC 2047 words
in unknown charsets give ``LookupError``), so every read here starts from the
raw header string and does its own decoding with :mod:`ingest.email_parts.charset`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from frontdesk.ingest.email_parts.charset import decode_bytes

MAX_HEADERS = 1000
MAX_HEADER_CHARS = 65_536  # per value; longer values are cut (a defect) before parsing
MAX_ID_CHARS = 998  # RFC 5322 line limit; ids are stored in columns of this size

_SURROGATES = re.compile("[\udc80-\udcff]")
_FOLD = re.compile(r"\r?\n[ \t]*|\r[ \t]*")
_ANGLE_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_BARE_ID = re.compile(r"[^\s<>,;\"()]+@[^\s<>,;\"()]+")


def raw_headers(msg: Message, defects: list[str]) -> list[tuple[str, str]]:
    """The message's headers as (name, raw value), bounded in count and size."""
    # raw_items() is the one accessor that does not run the policy's
    # structured parser (which is what raises); it is what the generator uses.
    items = list(msg.raw_items())
    if len(items) > MAX_HEADERS:
        defects.append(f"headers: {len(items)} headers, kept the first {MAX_HEADERS}")
        items = items[:MAX_HEADERS]
    bounded: list[tuple[str, str]] = []
    for name, value in items:
        value = value if isinstance(value, str) else str(value)
        if len(value) > MAX_HEADER_CHARS:
            cut = value[:MAX_HEADER_CHARS]
            # End at a separator, so the last address or id is not a truncated, wrong one.
            boundary = max(cut.rfind(","), cut.rfind(" "), cut.rfind("\n"))
            cut = cut[:boundary] if boundary > MAX_HEADER_CHARS // 2 else cut
            defects.append(f"headers: {name} is {len(value)} characters, cut to {len(cut)}")
            value = cut
        bounded.append((str(name), value))
    return bounded


def first(headers: list[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def all_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


def unfold(value: str) -> str:
    return _FOLD.sub(" ", value).strip()


def _undo_surrogates(value: str, where: str, defects: list[str]) -> str:
    """8-bit header bytes arrive as surrogate escapes; decode them as RFC 6532 UTF-8 (or detect)."""
    if not _SURROGATES.search(value):
        return value
    raw = value.encode("ascii", "surrogateescape")
    decoded = decode_bytes(raw, None, where=where)
    defects.extend(d for d in decoded.defects if "undeclared 8-bit text decoded as UTF-8" not in d)
    return decoded.text


def decode_value(value: str, *, where: str = "header", defects: list[str] | None = None) -> str:
    """A header value as text: unfolded, 8-bit bytes and RFC 2047 words decoded."""
    sink = defects if defects is not None else []
    text = _undo_surrogates(unfold(value), where, sink)
    if "=?" not in text:
        return text
    try:
        chunks = decode_header(text)
    except Exception as exc:  # malformed encoded words: keep the text as it came
        sink.append(f"{where}: RFC 2047 decoding failed ({type(exc).__name__})")
        return text
    parts: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
            continue
        if charset is None:
            parts.append(chunk.decode("ascii", "replace") if chunk.isascii() else decode_bytes(chunk, None, where=where).text)
            continue
        decoded = decode_bytes(chunk, charset, where=where)
        sink.extend(decoded.defects)
        parts.append(decoded.text)
    return "".join(parts)


def addresses(value: str | None, *, where: str, defects: list[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; groups, garbage and empties are skipped."""
    if not value:
        return []
    text = _undo_surrogates(unfold(value), where, defects)
    try:
        # Split before decoding display names: a decoded name may contain commas.
        pairs = getaddresses([text])
    except Exception as exc:
        defects.append(f"{where}: unparseable address list ({type(exc).__name__})")
        return []
    found: dict[str, str] = {}
    for name, address in pairs:
        address = address.strip().strip("<>").strip().lower()
        if "@" in address and address not in found:
            found[address] = decode_value(name, where=where, defects=defects).strip() if name else ""
    lowered = text.lower()
    if "@" in text and (not found or any(address not in lowered for address in found)):
        # getaddresses gives up on some malformed lists, or glues words onto
        # an address ("a@b.com www.b.com"): take the addresses that are
        # literally there instead.
        salvaged = {m.group(0).strip(".").lower(): "" for m in _BARE_ID.finditer(text)}
        if salvaged:
            defects.append(f"{where}: malformed address list, salvaged {len(salvaged)} address(es)")
            found = {address: found.get(address, "") for address in salvaged}
    return [(name, address) for address, name in found.items()]


def message_ids(value: str | None) -> list[str]:
    """Message ids without angle brackets, in order, de-duplicated; garbage between them ignored."""
    if not value:
        return []
    text = unfold(value)
    ids = [m.group(1) for m in _ANGLE_ID.finditer(text)]
    if not ids:
        ids = [m.group(0) for m in _BARE_ID.finditer(text)]
    seen: dict[str, None] = {}
    for item in ids:
        if len(item) <= MAX_ID_CHARS and not _SURROGATES.search(item) and "\x00" not in item:
            seen.setdefault(item, None)
    return list(seen)


def sent_at(value: str | None, defects: list[str]) -> datetime | None:
    """The Date header as an aware datetime; None (and a defect) when it does not parse."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(unfold(value))
    except (TypeError, ValueError, IndexError, OverflowError) as exc:
        defects.append(f"date: unparseable Date header ({type(exc).__name__})")
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        # RFC 5322 "-0000": time is UTC, local zone unknown.
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed
