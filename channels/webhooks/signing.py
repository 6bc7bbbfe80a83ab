"""Request signatures: Meta's ``X-Hub-Signature-256`` and our timestamped chat/form recipe.

Both compare in constant time (``hmac.compare_digest``) over the raw body
exactly as received: re-serialized JSON would not match what was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Iterable

from frontdesk.settings import Secret
from frontdesk.outbound.chat import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_timestamped

HUB_SIGNATURE_HEADER = "X-Hub-Signature-256"


def hub_signature(secret: str, raw: bytes) -> str:
    """The header value Meta sends: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def hub_signature_matches(raw: bytes, header: str | None, secrets: Iterable[Secret]) -> bool:
    """True when ``header`` is the body's signature under any of ``secrets`` (rotation)."""
    if not header or not header.startswith("sha256="):
        return False
    try:
        given = bytes.fromhex(header[7:].strip())
    except ValueError:
        return False
    matched = False
    for secret in secrets:
        # Check every secret (no early exit) so timing does not tell which matched.
        matched |= hmac.compare_digest(hmac.digest(secret.reveal().encode(), raw, "sha256"), given)
    return matched


def timestamped_signature(secret: str, timestamp: str, raw: bytes) -> str:
    """Chat and form recipe, shared with outbound chat replies: HMAC over ``"{timestamp}." + body``."""
    return sign_timestamped(secret, timestamp, raw)


class SignatureRefused(Exception):
    """Why a timestamped signature was not accepted (a stable code for the 403 body)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_UNIX_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def check_timestamped(
    raw: bytes, timestamp: str | None, signature: str | None, secret: Secret, max_skew_seconds: int,
    *, now: float | None = None,
) -> None:
    """Raise :class:`SignatureRefused` unless the request is signed and fresh.

    The timestamp is inside the signed bytes, so an old request cannot be
    replayed with a new timestamp; refusing stale ones bounds the window in
    which an exact replay can arrive (and such a replay is then a duplicate).
    """
    if not timestamp or not signature:
        raise SignatureRefused("signature_missing", f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    expected = timestamped_signature(secret.reveal(), timestamp, raw)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureRefused("signature_invalid", "the signature does not match the body")
    # Digits only: float() would also take "nan" (never stale, so a signed
    # request could be replayed forever), "inf" and "1e309".
    if not _UNIX_SECONDS.fullmatch(timestamp.strip()):
        raise SignatureRefused("timestamp_invalid", f"{TIMESTAMP_HEADER} must be Unix seconds")
    sent = float(timestamp)
    current = time.time() if now is None else now
    if abs(current - sent) > max_skew_seconds:
        raise SignatureRefused("timestamp_stale", f"the request timestamp is more than {max_skew_seconds}s away")
