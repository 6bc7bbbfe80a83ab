"""``/readyz`` goes 503 when the disk that holds the embedded database and the blobs is full.

A full disk still answers ``SELECT 1`` and still lets a probe create an empty
file, so the probes alone never noticed it.  These tests fill a real (small)
file system: a tmpfs mounted for the test, which needs root, as the test
machines and CI run.
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from api_harness import listen
from frontdesk.api.app import create_app
from frontdesk.settings import load_settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.storage.migrate import upgrade

MAX_MESSAGE = 4 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the test machines and CI run as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system has no space left."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a partial last write must not leave bytes for close() to fail on.
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


async def _readyz(app) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    runner, url = await listen(app)
    try:
        async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as response:
            return response.status, await response.json()
    finally:
        await runner.cleanup()


async def test_readyz_is_503_while_the_disk_is_full_and_200_again_after(small_disk) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{small_disk / 'frontdesk.db'}"
    engine = create_engine(url)
    await upgrade(engine)
    # The embedded default: the database and the blobs on one disk.
    embedded = load_settings(environ={"FRONTDESK_DATA_DIR": str(small_disk / "var"), "FRONTDESK_DATABASE_URL": url,
                                      "FRONTDESK_SECRET_KEY": "k", "FRONTDESK_API_TOKEN": "t"})
    embedded = replace(embedded, smtp=replace(embedded.smtp, max_message_size=MAX_MESSAGE))
    app = create_app(embedded, session_factory(engine), BlobStore(embedded.blob_dir))
    try:
        status, body = await _readyz(app)
        assert status == 200, body

        filler = fill(small_disk)
        status, body = await _readyz(app)
        assert status == 503
        assert body["checks"]["database"]["ready"] is False
        assert body["checks"]["database"]["error"] == "disk full"
        assert body["checks"]["blob_storage"]["ready"] is False

        filler.unlink()
        status, body = await _readyz(app)
        assert status == 200, body
    finally:
        await engine.dispose()
