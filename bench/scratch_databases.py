"""A benchmark's throwaway database: a SQLite file in its work folder, or a fresh PostgreSQL database dropped afterwards (on a durable scratch cluster if asked)."""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def _admin_dsn(pg_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(database: str, pg_url: str | None, workdir: Path, prefix: str, *,
                          template: str | None = None) -> tuple[str, str | None]:
    """The database URL, and the PostgreSQL database's name to drop (None for SQLite); ``template`` copies one."""
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'frontdesk.db'}", None
    import asyncpg
    from sqlalchemy.engine import make_url

    if not pg_url:
        raise SystemExit("PostgreSQL needs --pg-url or FRONTDESK_TEST_PG_URL")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(_admin_dsn(pg_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
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


@contextlib.contextmanager
def durable_cluster(port: int) -> Iterator[str]:
    """A throwaway PostgreSQL cluster with fsync=on and synchronous_commit=on, for benchmarks; yields its URL.

    The development cluster (``deploy/postgres``) runs with fsync off, which
    flatters every commit.  This one lives in a temporary folder under
    /var/tmp (the postgres user must reach it when we are root) and is
    removed on exit.
    """
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))[-1]
    root = os.geteuid() == 0
    as_pg = ["runuser", "-u", "postgres", "--"] if root else []
    data = Path(tempfile.mkdtemp(prefix="fd-bench-pg-", dir="/var/tmp"))
    if root:
        shutil.chown(data, "postgres", "postgres")
    run = functools.partial(subprocess.run, check=True, cwd="/", stdout=subprocess.DEVNULL)
    try:
        run([*as_pg, f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        run([*as_pg, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-w", "-t", "60", "start",
             "-o", f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c fsync=on "
                   "-c synchronous_commit=on -c full_page_writes=on -c max_connections=200"])
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], cwd="/",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(data, ignore_errors=True)
