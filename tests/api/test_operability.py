"""Probes, metrics, the OpenAPI document and the JSON error shape, over real HTTP."""

from __future__ import annotations

import re
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from openapi_spec_validator import validate
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from frontdesk.api.app import AppExtras, Readiness, create_app
from api_harness import OPERATOR, listen
from frontdesk.api.keys import OPENAPI_DOCUMENT
from frontdesk.api.openapi import METHODS
from frontdesk.api.request_body import path_template
from frontdesk.channels.webhooks.app import openapi_paths as webhook_openapi_paths
from frontdesk.model import ReadinessProbe
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import StorageUnavailable, create_engine, session_factory


def webhook_standin() -> web.Application:
    """A sub-app shaped like the webhook channels: public, reads bodies, may fail."""
    app = web.Application()

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await request.read())})

    async def storage_down(request: web.Request) -> web.Response:
        raise StorageUnavailable("disk full")

    async def bug(request: web.Request) -> web.Response:
        raise KeyError("boom")

    app.router.add_post("/echo", echo)
    app.router.add_post("/storage-down", storage_down)
    app.router.add_post("/bug", bug)
    return app


WEBHOOK_OPENAPI = {"paths": {"/webhooks/echo": {"post": {
    "summary": "Echo", "operationId": "echo", "security": [],
    "responses": {"200": {"description": "ok"}}}}}}


@pytest.fixture
def app_extras() -> AppExtras:
    return AppExtras(
        subapps=[("/webhooks/", webhook_standin())],
        openapi=[WEBHOOK_OPENAPI],
        readiness={
            "smtp": lambda: Readiness(True, {"listening": "127.0.0.1:2525"}),
            "imap:helpdesk": lambda: Readiness(True, {"state": "idle"}),
        },
    )


async def readyz(app: web.Application) -> tuple[int, dict]:
    """Serve ``app`` on a free port just long enough to ask it /readyz."""
    runner, url = await listen(app)
    try:
        async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as response:
            return response.status, await response.json()
    finally:
        await runner.cleanup()


async def test_healthz_answers_without_a_token(client) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
        assert response.headers["X-Request-Id"]


async def test_readyz_reports_every_component(client) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/readyz") as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "blob_storage", "smtp", "imap:helpdesk"}
    assert body["checks"]["smtp"] == {"ready": True, "listening": "127.0.0.1:2525"}
    assert body["checks"]["imap:helpdesk"]["state"] == "idle"


async def test_readyz_is_503_when_a_mailbox_is_failing(settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    def failing() -> Readiness:
        return Readiness(False, {"state": "failing", "error": "authentication failed"})

    extras = AppExtras(readiness={"imap:helpdesk": failing, "smtp": lambda: Readiness(True)})
    status, body = await readyz(create_app(settings, sessions, blobs, extra=extras))
    assert status == 503
    assert body["ready"] is False
    assert body["checks"]["imap:helpdesk"] == {"ready": False, "state": "failing", "error": "authentication failed"}
    assert body["checks"]["database"]["ready"] is True


@pytest.mark.parametrize(
    "unreachable",
    ["postgresql+asyncpg://frontdesk@127.0.0.1:9/frontdesk", "sqlite+aiosqlite:////nonexistent/dir/frontdesk.db"],
    ids=["postgresql", "sqlite"],
)
async def test_readyz_is_503_when_the_database_is_unreachable(settings, tmp_path, unreachable) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(unreachable)
    blobs = BlobStore(tmp_path / "blobs")
    try:
        status, body = await readyz(
            create_app(replace(settings, database_url=unreachable), session_factory(engine), blobs))
    finally:
        await engine.dispose()
    assert status == 503
    assert body["checks"]["database"]["ready"] is False
    assert body["checks"]["blob_storage"]["ready"] is True


async def _read_only(engine, database: str, on: bool) -> None:  # type: ignore[no-untyped-def]
    """Make PostgreSQL refuse every write to ``database`` (new connections), as a full disk would."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("SET SESSION default_transaction_read_only = off"))
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        await connection.execute(text(f'ALTER DATABASE "{database}" {setting}'))
    await engine.dispose()  # the pool's connections reconnect with the database's new default


async def test_readyz_is_503_while_postgresql_cannot_commit_a_write(settings, engine, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    url = make_url(settings.database_url)
    if not url.drivername.startswith("postgresql"):
        pytest.skip("the failing write is provoked on PostgreSQL; SQLite's full disk is tests/api/test_disk_full.py")
    app = create_app(settings, sessions, blobs)
    assert (await readyz(app))[0] == 200
    await _read_only(engine, url.database, on=True)
    try:
        status, body = await readyz(app)
        assert status == 503, body
        # SELECT 1 would still pass: the failing commit is what shows.
        assert body["checks"]["database"] == {"ready": False, "error": "DBAPIError", "probe": "write"}
        runner, base = await listen(app)
        try:
            async with aiohttp.ClientSession() as http, http.get(base + "/healthz") as response:
                assert response.status == 200  # alive: restarting it would not help
        finally:
            await runner.cleanup()
    finally:
        await _read_only(engine, url.database, on=False)
    status, body = await readyz(app)
    assert status == 200, body


async def test_the_write_probe_leaves_nothing_behind(settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings, sessions, blobs)
    for _ in range(2):
        assert (await readyz(app))[0] == 200
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ReadinessProbe)) == 0


async def test_readyz_is_503_when_blob_storage_is_not_writable(settings, sessions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the blob directory should be")
    status, body = await readyz(create_app(settings, sessions, BlobStore(blocker / "blobs")))
    assert status == 503
    assert body["checks"]["blob_storage"]["ready"] is False


async def test_metrics_expose_request_counts(client) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/healthz"):
        pass
    async with client.get("/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert 'frontdesk_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "frontdesk_http_request_duration_seconds_bucket" in text


async def test_openapi_document_is_valid_and_covers_every_route(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert "post" in document["paths"]["/webhooks/echo"]  # the daemon's extra fragment is merged in

    for route in create_app(settings, sessions, blobs).router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        # aiohttp writes path parameters with their pattern ({id:\d+}); the spec names them plainly.
        path = path_template(route.resource.canonical)
        assert route.method.lower() in document["paths"].get(path, {}), f"{route.method} {path} is not documented"


def test_every_answer_with_a_body_has_a_schema(settings) -> None:  # type: ignore[no-untyped-def]
    """Every response an operation documents, except 204 and redirects, says what its body is.

    Walks the document the daemon serves (the webhook channels' operations
    included), so a later endpoint cannot forget its answer's schema.
    """
    app = create_app(settings, None, BlobStore(settings.blob_dir),  # type: ignore[arg-type]
                     extra=AppExtras(openapi=[webhook_openapi_paths()]))
    document = app[OPENAPI_DOCUMENT]
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if status == "204" or status.startswith("3"):
                    continue
                content = response.get("content", {})
                if not content or not all("schema" in media for media in content.values()):
                    missing.append(f"{method.upper()} {path} {status}")
    assert missing == []


async def test_unknown_routes_and_methods_answer_json(client) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/api/v1/nothing-here", headers=OPERATOR) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with client.delete("/healthz") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
        assert "GET" in response.headers["Allow"]


async def test_oversized_bodies_are_413_json(client, settings) -> None:  # type: ignore[no-untyped-def]
    async with client.post("/webhooks/echo", data=b"x" * 100) as response:
        assert response.status == 200 and await response.json() == {"bytes": 100}
    async with client.post("/webhooks/echo", data=b"x" * (settings.http.max_body_size + 1)) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_storage_outage_is_503_and_bugs_are_500_json(client) -> None:  # type: ignore[no-untyped-def]
    async with client.post("/webhooks/storage-down") as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "storage_unavailable"
        assert response.headers["Retry-After"]
    async with client.post("/webhooks/bug") as response:
        assert response.status == 500
        body = await response.json()
        assert body["error"]["code"] == "internal_error" and "boom" not in str(body)


async def test_request_id_is_echoed_when_sane(client) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/healthz", headers={"X-Request-Id": "abc-123"}) as response:
        assert response.headers["X-Request-Id"] == "abc-123"
    async with client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"}) as response:
        assert response.headers["X-Request-Id"] != "bad id\twith spaces"
