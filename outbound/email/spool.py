"""With no smarthost configured, outbound mail is written as ``.eml`` files to the spool directory.

The file name is derived from the delivery's idempotency key, so a resend
after a crash overwrites the same file instead of adding a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path


def spool_path(spool_dir: Path, idempotency_key: str) -> Path:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return Path(spool_dir) / f"{digest}.eml"


def _write(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def write_to_spool(spool_dir: Path, idempotency_key: str, raw: bytes) -> Path:
    path = spool_path(spool_dir, idempotency_key)
    await asyncio.to_thread(_write, path, raw)
    return path
