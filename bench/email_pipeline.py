"""Benchmark: CPU per mail of the batched email pipeline alone, no SMTP edge, no automation.

    .venv/bin/python bench/email_pipeline.py --threads 250 --database sqlite,postgresql [--batch 100] [--profile OUT]

The workload is bench/ingest_peer.py's (new mails, replies, replies to
replies, replies ahead of their parents, attachments), fed in arrival
order to ``ingest.pipeline.ingest_emails`` in batches of ``--batch``, in
this process, on a fresh database (SQLite file, or a new database on the
PostgreSQL at ``--pg-url`` / ``FRONTDESK_TEST_PG_URL``).  Parsing runs
in-process, so the process's CPU time is the pipeline's whole cost; a
busy machine inflates it less than wall-clock time.  ``--profile`` writes
cProfile's top functions (cumulative) to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from ingest_peer import SUPPORT, generate_workload  # noqa: E402
from scratch_databases import create_database, drop_database  # noqa: E402


async def run(kind: str, pg_url: str | None, threads: int, batch: int, profile: Path | None) -> dict:
    from sqlalchemy import func, select

    from frontdesk.defaults import ensure_defaults
    from frontdesk.ingest.batch_runner import EmailItem
    from frontdesk.ingest.context import IngestContext
    from frontdesk.ingest.message import Envelope
    from frontdesk.ingest.pipeline import ingest_emails
    from frontdesk.model import Message, Ticket
    from frontdesk.settings import SupportAddress, load_settings
    from frontdesk.storage.blobs import BlobStore
    from frontdesk.storage.database import create_engine, session_factory
    from frontdesk.storage.migrate import upgrade

    mails = generate_workload(threads)
    workdir = Path(tempfile.mkdtemp(prefix="fd-email-pipeline-"))
    url, name = await create_database(kind, pg_url, workdir, "fd_pipeline")
    settings = replace(load_settings(environ={"FRONTDESK_DATA_DIR": str(workdir / "var"),
                                              "FRONTDESK_SECRET_KEY": "bench", "FRONTDESK_PARSE_WORKERS": "0"}),
                       database_url=url, support_addresses=(SupportAddress(SUPPORT),), from_address=SUPPORT)
    engine = create_engine(settings.reveal_database_url())
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        await ensure_defaults(sessions, settings)
        ctx = IngestContext(settings=settings, sessions=sessions, blobs=BlobStore(settings.blob_dir))
        envelope = Envelope(channel="email", source="smtp", mail_from="bench@customers.test", rcpt_tos=(SUPPORT,))
        items = [EmailItem(mail.raw, envelope) for mail in mails]
        profiler = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        kinds: dict[str, int] = {}
        for start in range(0, len(items), batch):
            for outcome in await ingest_emails(ctx, items[start:start + batch]):
                kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
        if profiler:
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
            profile.write_text(text.getvalue())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        async with sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(Message))
            tickets = await session.scalar(select(func.count()).select_from(Ticket))
    finally:
        await engine.dispose()
        if name:
            await drop_database(pg_url, name)
    return {"database": kind, "mails": len(mails), "cpu": cpu, "wall": wall, "outcomes": kinds,
            "stored": stored, "tickets": tickets, "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=250)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    for kind in [d.strip() for d in args.database.split(",") if d.strip()]:
        profile = args.profile.with_suffix(f".{kind}.txt") if args.profile else None
        result = asyncio.run(run(kind, args.pg_url, args.threads, args.batch, profile))
        print(f"{kind}: {result['mails']} mails, CPU {result['cpu']:.2f} s = {1000 * result['cpu'] / result['mails']:.2f} "
              f"ms per mail, wall {result['wall']:.1f} s; {result['stored']} messages, {result['tickets']} tickets; "
              f"{result['outcomes']}; load {result['load'][0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
