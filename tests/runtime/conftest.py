"""Fixtures for the runtime tests: an empty PostgreSQL database for a real ``frontdesk`` process to use."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("FRONTDESK_TEST_PG_URL")


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("FRONTDESK_TEST_PG_URL is not set")
    name = f"fd_cli_{uuid.uuid4().hex[:10]}"
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
