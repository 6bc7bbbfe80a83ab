"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can do its job right now)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import delete, insert
from sqlalchemy.engine import make_url

from frontdesk.api.app import EXTRAS, Readiness
from frontdesk.api.keys import BLOBS, SESSIONS, SETTINGS
from frontdesk.model import ReadinessProbe
from frontdesk.storage.writer import write_transaction

routes = web.RouteTableDef()
log = structlog.get_logger("frontdesk.health")

DATABASE_TIMEOUT = 5.0

_CHECK_SCHEMA = {
    "type": "object",
    "required": ["ready"],
    "properties": {"ready": {"type": "boolean"}},
    "additionalProperties": True,
}

OPENAPI: dict[str, Any] = {
    "paths": {
        "/healthz": {
            "get": {
                "summary": "Liveness: the process is up and answering",
                "operationId": "getHealth",
                "tags": ["operations"],
                "security": [],
                "responses": {"200": {"description": "Alive.", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"status": {"const": "ok"}}}}}}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: database, blob storage (each with room for a message of the largest size), "
                           "SMTP listener and IMAP mailboxes",
                "operationId": "getReadiness",
                "tags": ["operations"],
                "security": [],
                "responses": {
                    "200": {"description": "Every check passed.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                    "503": {"description": "At least one check failed; the body says which.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Readiness": {
                "type": "object",
                "required": ["ready", "checks"],
                "properties": {
                    "ready": {"type": "boolean"},
                    "checks": {"type": "object", "additionalProperties": _CHECK_SCHEMA},
                },
            }
        }
    },
}


def _free_space(directory: Path, needed: int) -> Readiness:
    """Is there room on ``directory``'s file system for one more message of the largest size?

    A full disk still answers ``SELECT 1`` and still lets us create an empty
    file (that takes an inode, not a block), so neither probe notices it;
    but the next message could not be stored, and SMTP would have to answer
    451.  Readiness says so before a sender has to find out.
    """
    try:
        stats = os.statvfs(directory)
    except OSError as error:
        return Readiness(False, {"error": os.strerror(error.errno) if error.errno else str(error)})
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        return Readiness(False, {"error": "disk full", "free_bytes": free, "needed_bytes": needed})
    return Readiness(True, {"free_bytes": free})


def _sqlite_directory(database_url: str) -> Path | None:
    """The folder of an SQLite database file; None for PostgreSQL or an in-memory database."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve().parent


async def _write_probe(request: web.Request) -> None:
    """Commit one write, in its own short transaction: insert a probe row and delete it again.

    ``SELECT 1`` still succeeds on a PostgreSQL server whose disk is full or
    that went read-only; only a commit shows that a message could be stored.
    Each call inserts its own row (no fixed row to race on) and leaves the
    table empty.
    """
    async with write_transaction(request.app[SESSIONS]) as session:
        probe_id = (await session.execute(insert(ReadinessProbe).returning(ReadinessProbe.id))).scalar_one()
        await session.execute(delete(ReadinessProbe).where(ReadinessProbe.id == probe_id))


async def _database(request: web.Request) -> Readiness:
    # An embedded database lives on a disk we can see: is there room for the
    # next message of the largest size?  (Asked first: it says how full.)
    settings = request.app[SETTINGS]
    directory = _sqlite_directory(settings.database_url)
    if directory is not None:
        space = await asyncio.to_thread(_free_space, directory, _room_needed(settings.smtp.max_message_size))
        if not space.ready:
            return space
    try:
        await asyncio.wait_for(_write_probe(request), DATABASE_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness.database_write_failed", error=type(error).__name__)
        return Readiness(False, {"error": type(error).__name__, "probe": "write"})
    return Readiness(True)


def _room_needed(max_message_size: int) -> int:
    # The message, its parsed parts and the journal or WAL pages of its transaction.
    return 2 * max_message_size


def _writable(directory: Path, needed: int) -> Readiness:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as error:
        return Readiness(False, {"error": os.strerror(error.errno) if error.errno else str(error)})
    return _free_space(directory, needed)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, Readiness] = {
        "database": await _database(request),
        "blob_storage": await asyncio.to_thread(
            _writable, request.app[BLOBS].root, _room_needed(request.app[SETTINGS].smtp.max_message_size)),
    }
    for name, check in request.app[EXTRAS].readiness.items():
        try:
            checks[name] = check()
        except Exception as error:  # noqa: BLE001 - a crashing probe is a failing probe
            checks[name] = Readiness(False, {"error": type(error).__name__})
    ready = all(check.ready for check in checks.values())
    if not ready:
        log.warning("readiness.failed", failed=sorted(n for n, c in checks.items() if not c.ready))
    body = {
        "ready": ready,
        "checks": {name: {"ready": check.ready, **check.detail} for name, check in checks.items()},
    }
    return web.json_response(body, status=200 if ready else 503)
