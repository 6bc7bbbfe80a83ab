"""With no smarthost configured, outbound mail is written as ``.eml`` files to the spool directory.

The file name is derived from the delivery's idempotency key, so a resend
after a crash overwrites the same file instead of adding a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from frontdesk.storage.files import write_atomically


def spool_path(spool_dir: Path, idempotency_key: str) -> Path:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return Path(spool_dir) / f"{digest}.eml"


async def write_to_spool(spool_dir: Path, idempotency_key: str, raw: bytes) -> Path:
    path = spool_path(spool_dir, idempotency_key)
    await asyncio.to_thread(write_atomically, path, raw, suffix=".eml")
    return path
