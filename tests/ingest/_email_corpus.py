"""The email corpus, parsed once per test session and shared by the parse and screening tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from frontdesk.ingest.message import Envelope, InboundMessage, QuarantineMessage
from frontdesk.ingest.parse_email import parse_email

EMAIL = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "email"
SUPPORT = "support@example.test"
ENVELOPE = Envelope(channel="email", source="smtp", channel_key=SUPPORT)


@lru_cache(maxsize=None)
def parsed(path: Path) -> InboundMessage | QuarantineMessage:
    """``parse_email`` of a corpus file, or the quarantine it raised (never mutate the result)."""
    try:
        return parse_email(path.read_bytes(), envelope=ENVELOPE, raw_blob="0" * 64)
    except QuarantineMessage as quarantined:
        return quarantined
