"""Benchmark: the webhook processor alone, on a backlog of stored Messenger payloads, with its CPU profile.

    .venv/bin/python bench/webhook_processing.py [--database postgresql|sqlite] [--pg-url URL] \
        [--payloads 1000] [--profile OUT.pstats]

Stores ``--payloads`` distinct signed-and-verified Messenger messages as
pending intake rows (as the edge does), then times the processor draining
them in its batches (``PayloadProcessor.process_batch``): wall time, the
process's CPU per payload, and optionally a cProfile of the drain.  A
hundred senders write in turn, so after the first hundred messages each
threads onto its sender's open ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from scratch_databases import create_database, drop_database  # noqa: E402
from webhooks import APP_SECRET, PAGE_ID, message_body  # noqa: E402


async def drain(args: argparse.Namespace) -> dict:
    from frontdesk.channels.webhooks.app import create_webhook_app, PROCESSOR
    from frontdesk.channels.webhooks.config import parse_webhook_config
    from frontdesk.channels.webhooks.sync import sync_webhook_channels
    from frontdesk.defaults import ensure_defaults
    from frontdesk.ingest.context import IngestContext
    from frontdesk.ingest.intake import PayloadWriter, store_payload
    from frontdesk.settings import Secret, load_settings
    from frontdesk.storage.blobs import BlobStore
    from frontdesk.storage.database import create_engine, session_factory
    from frontdesk.storage.migrate import upgrade

    workdir = Path(tempfile.mkdtemp(prefix="fd-bench-processing-"))
    url, drop = await create_database(args.database, args.pg_url, workdir, "fd_bench_proc")
    engine = create_engine(url)
    try:
        base = load_settings(environ={"FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_SECRET_KEY": "bench"})
        settings = replace(base, database_url=url, secret_key=Secret("bench"), channels={"messenger": [
            {"page_id": PAGE_ID, "app_secret": APP_SECRET, "verify_token": "bench", "page_access_token": "bench"}]})
        await upgrade(engine)
        sessions = session_factory(engine)
        await ensure_defaults(sessions, settings)
        ctx = IngestContext(settings, sessions, BlobStore(settings.blob_dir))
        config = parse_webhook_config(settings)
        await sync_webhook_channels(sessions, config)  # the Page's channel row, as at start-up
        app = create_webhook_app(ctx, config, recover_pending=False)  # its processor, not started
        writer = PayloadWriter(ctx)
        await writer.start()
        ids = [(await store_payload(ctx, channel="messenger", route="messenger", raw=message_body(n % 100 + 1000 * (n // 100), "p"),
                                    headers={"verified_pages": [PAGE_ID]}, writer=writer)).id
               for n in range(args.payloads)]
        await writer.stop()
        processor = app[PROCESSOR]
        profile = cProfile.Profile() if args.profile else None
        started, cpu = time.monotonic(), time.process_time()
        if profile:
            profile.enable()
        for start in range(0, len(ids), processor.batch_size):
            await processor.process_batch(ids[start:start + processor.batch_size])
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        outcomes = [line.split(":")[0] for lines in processor.outcomes.values() for line in lines]
        return {"payloads": len(ids), "seconds": elapsed, "rate": len(ids) / elapsed,
                "cpu_ms_per_payload": cpu * 1000 / len(ids),
                "outcomes": {kind: outcomes.count(kind) for kind in sorted(set(outcomes))}}
    finally:
        await engine.dispose()
        if drop:
            await drop_database(args.pg_url, drop)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--payloads", type=int, default=1000)
    parser.add_argument("--profile", metavar="OUT", help="cProfile the drain into OUT (pstats); prints the top lines")
    args = parser.parse_args()
    result = asyncio.run(drain(args))
    print(result)
    if args.profile:
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
