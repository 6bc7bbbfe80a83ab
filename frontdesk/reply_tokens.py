"""Signed Message-IDs and reply tokens that name the ticket they belong to.

Our outbound mail carries ``Message-ID: <fd.{ticket}.{nonce}.{sig}@{domain}>``
where ``sig`` is a truncated HMAC-SHA256 over ticket and nonce.  A reply
quoting it in In-Reply-To or References threads onto that ticket even if
our database lost the outbound record, and nobody can forge a token for a
ticket they were never sent mail about.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_TOKEN = re.compile(r"fd\.(\d{1,12})\.([A-Za-z0-9_-]{8,32})\.([A-Za-z0-9_-]{16,64})@")


def _signature(key: bytes, ticket_id: int, nonce: str) -> str:
    digest = hmac.new(key, f"{ticket_id}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def make_message_id(key: bytes, ticket_id: int, domain: str) -> str:
    """A fresh signed Message-ID (without angle brackets) for mail on ``ticket_id``."""
    nonce = secrets.token_urlsafe(9)
    return f"fd.{ticket_id}.{nonce}.{_signature(key, ticket_id, nonce)}@{domain}"


def ticket_from_message_id(key: bytes, message_id: str) -> int | None:
    """The ticket a Message-ID of ours names, or None if it is not ours or is forged."""
    match = _TOKEN.search(message_id)
    if not match:
        return None
    ticket_id, nonce, signature = int(match.group(1)), match.group(2), match.group(3)
    if hmac.compare_digest(signature, _signature(key, ticket_id, nonce)):
        return ticket_id
    return None
