"""Shared fixtures: every database-backed test runs on SQLite and on PostgreSQL.

The backends come from ``FRONTDESK_TEST_DATABASES`` (default: ``sqlite``, plus
``postgresql`` when ``FRONTDESK_TEST_PG_URL`` is set, which ``make test`` does
after starting the cluster from ``deploy/postgres``).  Each test gets a fresh,
fully migrated database: a copy of a template migrated once per session.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from frontdesk.defaults import ensure_defaults
from frontdesk.settings import Secret, Settings, SupportAddress, load_settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.storage.migrate import upgrade

from _servers import servers_required


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Do the worker's end-of-run garbage collection before it reports itself finished.

    pytest collects garbage again at unconfigure, after an xdist worker has
    told the controller it finished.  The controller then gives the worker 5
    seconds to end before execnet sends it SIGINT, and a full collection over
    the heap a whole run leaves takes longer than that on a loaded two-core
    machine: the interrupt then lands in a garbage-collector callback and is
    printed after the last test.  Collecting here, and freezing what survives
    so later collections skip it, leaves the worker almost nothing to do once
    it has reported.
    """
    gc.collect()
    gc.freeze()


REPO = Path(__file__).resolve().parents[1]
CORPUS = (REPO.parent / "shared" / "corpus").resolve()
PG_URL = os.environ.get("FRONTDESK_TEST_PG_URL")


def _backends() -> list[str]:
    configured = os.environ.get("FRONTDESK_TEST_DATABASES")
    if configured:
        return [b.strip() for b in configured.split(",") if b.strip()]
    # Without a PostgreSQL URL only SQLite runs, unless the servers are
    # required: then the PostgreSQL tests fail on the missing URL.
    return ["sqlite", "postgresql"] if PG_URL or servers_required() else ["sqlite"]


def _pg_admin_dsn() -> str:
    assert PG_URL, "FRONTDESK_TEST_PG_URL is not set: run deploy/postgres/start.sh"
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_url_for(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def _pg_execute(sql: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend, copied for each test."""
    templates: dict[str, str] = {}
    backends = _backends()
    if "sqlite" in backends:
        path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        templates["sqlite"] = str(path)
    if "postgresql" in backends:
        name = f"fd_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
        asyncio.run(_migrate(_pg_url_for(name)))
        templates["postgresql"] = name
    yield templates
    if "postgresql" in templates:
        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{templates["postgresql"]}" WITH (FORCE)'))


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, migrated_templates: dict[str, str], tmp_path: Path) -> Iterator[str]:
    backend = request.param
    if backend == "sqlite":
        target = tmp_path / "frontdesk.db"
        shutil.copyfile(migrated_templates["sqlite"], target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    name = f"fd_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_templates["postgresql"]}"'))
    yield _pg_url_for(name)
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test installation with two support addresses."""
    base = load_settings(environ={"FRONTDESK_DATA_DIR": str(tmp_path / "var"),
                                  "FRONTDESK_SECRET_KEY": "test-secret-key",
                                  "FRONTDESK_API_TOKEN": "test-api-token",
                                  # No parse pool in a test daemon: in-process parsing is cheaper here.
                                  "FRONTDESK_PARSE_WORKERS": "0"})
    return replace(
        base,
        database_url=database_url,
        support_addresses=(
            SupportAddress("support@acme.test"),
            SupportAddress("billing@acme.test"),
        ),
        from_address="support@acme.test",
        secret_key=Secret("test-secret-key"),
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator:
    engine = create_engine(settings.reveal_database_url())
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(engine, settings: Settings):
    factory = session_factory(engine)
    await ensure_defaults(factory, settings)
    return factory


@pytest.fixture
def blobs(settings: Settings) -> BlobStore:
    return BlobStore(settings.blob_dir)


@pytest.fixture
def corpus() -> Path:
    assert CORPUS.is_dir(), f"the shared corpus is missing at {CORPUS}"
    return CORPUS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test that uses the Kafka broker on one xdist worker.

    ``make test`` runs the suite on two workers (``--dist loadgroup``); the
    broker is shared and some tests restart it, which must not happen under
    another worker's Kafka test.
    """
    for item in items:
        if item.get_closest_marker("kafka") or "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("kafka"))
