"""Benchmark: one intake group commit through an ORM session versus Core statements on a connection.

    .venv/bin/python bench/intake_commit.py [--database sqlite|postgresql] [--pg-url URL] [--commits 300]

The intake commits every accepted mail and webhook body (``ingest.intake``
``commit_payload_rows``).  This times that commit, batches of 1 and of 10
rows of 20 kB, done the way it was (``write_transaction``: an ORM session,
an ORM bulk insert with RETURNING) and the way it is (``write_connection``:
Core insert on the table), and prints wall time per commit and this
process's CPU per row.  SQLite runs with synchronous=FULL; for PostgreSQL
use a cluster with fsync=on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scratch_databases import create_database, drop_database  # noqa: E402


async def bench(args: argparse.Namespace) -> None:
    from sqlalchemy import insert

    from frontdesk.ingest.context import IngestContext
    from frontdesk.ingest.intake import PENDING, commit_payload_rows
    from frontdesk.model import InboundPayload, utcnow
    from frontdesk.storage.database import create_engine, session_factory
    from frontdesk.storage.migrate import upgrade
    from frontdesk.storage.writer import write_transaction

    workdir = Path(tempfile.mkdtemp(prefix="fd-bench-intake-"))
    url, drop = await create_database(args.database, args.pg_url, workdir, "fd_bench_intake")
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        ctx = IngestContext(None, sessions, None)  # type: ignore[arg-type]
        body = os.urandom(20_000)
        serial = iter(range(10**9))

        def rows(count: int) -> list[dict]:
            return [{"channel": "email", "route": "smtp", "blob": f"{next(serial):064x}", "body": body,
                     "headers": {}, "envelope": {"mail_from": "a@customer.test", "rcpt_tos": ["support@acme.test"]}}
                    for _ in range(count)]

        async def orm(batch: list[dict]) -> None:  # the commit as it was before the Core change
            async with write_transaction(sessions) as session:
                result = await session.execute(
                    insert(InboundPayload).returning(InboundPayload.id, sort_by_parameter_order=True),
                    [{**values, "state": PENDING, "received_at": utcnow()} for values in batch])
                result.scalars().all()

        async def core(batch: list[dict]) -> None:
            await commit_payload_rows(ctx, batch, dedupe=False)

        print(f"| {args.database} | batch | way | wall ms per commit | CPU ms per row |")
        for size in (1, 10):
            for name, commit in (("ORM session", orm), ("Core connection", core), ("ORM session", orm)):
                commits = max(1, args.commits // size)
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(commits):
                    await commit(rows(size))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(f"| | {size} | {name} | {1000 * wall / commits:.2f} | {1000 * cpu / (commits * size):.3f} |",
                      flush=True)
    finally:
        await engine.dispose()
        if drop:
            await drop_database(args.pg_url, drop)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--commits", type=int, default=300)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
