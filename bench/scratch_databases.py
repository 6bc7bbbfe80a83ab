"""A benchmark's throwaway database: a SQLite file in its work folder, or a fresh PostgreSQL database dropped afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path


def _admin_dsn(pg_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(database: str, pg_url: str | None, workdir: Path, prefix: str) -> tuple[str, str | None]:
    """The database URL, and the PostgreSQL database's name to drop (None for SQLite)."""
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'frontdesk.db'}", None
    import asyncpg
    from sqlalchemy.engine import make_url

    if not pg_url:
        raise SystemExit("PostgreSQL needs --pg-url or FRONTDESK_TEST_PG_URL")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(_admin_dsn(pg_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False), name


async def drop_database(pg_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_dsn(pg_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
