"""Benchmark: the CPU one batch of real events costs the automation handler, in this process, without Kafka.

    .venv/bin/python bench/worker_batch.py [--tickets 200] [--batch 500] [--repeat 3] [--deliver] \
        [--database postgresql|sqlite] [--profile OUT.prof]

``bench/worker_drain.py`` measures the whole worker process on Kafka; this
one isolates what the handler does per event, so each change to the hot
path can be measured in seconds.  It ingests the same backlog once (``--tickets``
customers who write in and reply: three events a ticket) into a template
database, then per repeat copies it (``CREATE DATABASE ... TEMPLATE``, so
every repeat starts from the same state) and applies the outbox's events
in order through :func:`automation.handlers.handle_events`, ``--batch`` at
a time, as the worker's ``take_events`` hands them over.  ``--deliver``
then sends the queued mail with the production ``DeliveryLoop`` to a sink
smarthost running in a child process (so its CPU is not counted).  It
prints events per CPU second of this process (every thread: blob writes
run in threads) for the handler and for the delivery loop.  ``--profile``
writes a cProfile of the last repeat's handler (``python -m pstats``, or
``snakeviz``).  PostgreSQL only for the copies; SQLite rebuilds the backlog
per repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from kafka_latency import SUPPORT, free_port  # noqa: E402
from scratch_databases import create_database, drop_database  # noqa: E402
from worker_drain import build_backlog  # noqa: E402
from frontdesk.automation.event_processor import decode_row  # noqa: E402
from frontdesk.automation.handlers import handle_events  # noqa: E402
from frontdesk.automation.services import AutomationServices  # noqa: E402
from frontdesk.defaults import ensure_defaults  # noqa: E402
from frontdesk.ingest.context import IngestContext  # noqa: E402
from frontdesk.model import AppliedEffect, Delivery, OutboxEvent  # noqa: E402
from frontdesk.outbound.deliveries import DeliveryLoop  # noqa: E402
from frontdesk.runtime.logs import configure_logging  # noqa: E402
from frontdesk.settings import Secret, SupportAddress, load_settings  # noqa: E402
from frontdesk.storage.blobs import BlobStore  # noqa: E402
from frontdesk.storage.database import create_engine, session_factory  # noqa: E402
from frontdesk.storage.migrate import upgrade  # noqa: E402

SINK = """
import sys, time
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(3600)
"""


async def backlog(args: argparse.Namespace, settings, workdir: Path) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    url, name = await create_database(args.database, args.pg_url, workdir, "fd_batch_template")
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        await ensure_defaults(sessions, replace(settings, database_url=url))
        ctx = IngestContext(settings=replace(settings, database_url=url), sessions=sessions,
                            blobs=BlobStore(settings.blob_dir))
        await build_backlog(ctx, args.tickets)
    finally:
        await engine.dispose()
    return url, name


async def one_run(args: argparse.Namespace, settings, url: str, profile: cProfile.Profile | None) -> dict:  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    sessions = session_factory(engine)
    services = AutomationServices(settings=settings, sessions=sessions, blobs=BlobStore(settings.blob_dir))
    try:
        async with sessions() as session:
            rows = (await session.execute(select(OutboxEvent.event_id, OutboxEvent.body)
                                          .order_by(OutboxEvent.id))).all()
        events = [decode_row(event_id, body).event for event_id, body in rows]
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        for start in range(0, len(events), args.batch):
            await handle_events(services, events[start:start + args.batch])
        if profile:
            profile.disable()
        result = {"events": len(events), "handler_cpu": time.process_time() - cpu,
                  "handler_wall": time.perf_counter() - wall}
        async with sessions() as session:
            result["effects"] = await session.scalar(select(func.count()).select_from(AppliedEffect))
            result["deliveries"] = await session.scalar(select(func.count()).select_from(Delivery))
        if args.deliver:
            loop = DeliveryLoop(settings, sessions, services.blobs)
            cpu, wall = time.process_time(), time.perf_counter()
            sent = 0
            if profile:
                profile.enable()
            while attempted := await loop.deliver_due():
                sent += attempted
            if profile:
                profile.disable()
            result.update(sent=sent, deliver_cpu=time.process_time() - cpu,
                          deliver_wall=time.perf_counter() - wall)
            await loop.smarthost.close()
        return result
    finally:
        await engine.dispose()


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="fd-batch-"))
    port = free_port()
    # As the worker runs in production: warnings only.
    environ = {"FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_SECRET_KEY": "bench",
               "FRONTDESK_LOG_LEVEL": "WARNING"}
    if args.deliver:
        environ.update(FRONTDESK_SMARTHOST=f"127.0.0.1:{port}", FRONTDESK_SMARTHOST_TLS="none")
    settings = replace(load_settings(environ=environ), support_addresses=(SupportAddress(SUPPORT),),
                       from_address=SUPPORT, secret_key=Secret("bench-secret"))
    configure_logging(settings)
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE) if args.deliver else None
    if sink is not None:
        assert sink.stdout is not None
        sink.stdout.readline()
    profile = cProfile.Profile() if args.profile else None
    try:
        url, template = await backlog(args, settings, workdir)
        for repeat in range(args.repeat):
            if template is None:  # SQLite: a fresh backlog each time
                if repeat:
                    os.unlink(make_url(url).database)
                    url, template = await backlog(args, settings, workdir)
                copy, name = url, None
            else:
                copy, name = await create_database(args.database, args.pg_url, workdir, "fd_batch",
                                                   template=template)
            try:
                result = await one_run(args, replace(settings, database_url=copy), copy,
                                       profile if repeat == args.repeat - 1 else None)
            finally:
                if name:
                    await drop_database(args.pg_url, name)
            line = (f"repeat {repeat}: {result['events']} events, {result['effects']} effects, "
                    f"{result['deliveries']} deliveries; handler {result['handler_cpu']:.2f} CPU s "
                    f"({result['events'] / result['handler_cpu']:.0f} events per CPU s), "
                    f"{result['handler_wall']:.2f} s wall")
            if args.deliver:
                line += (f"; delivery {result['sent']} sent, {result['deliver_cpu']:.2f} CPU s "
                         f"({result['sent'] / max(result['deliver_cpu'], 1e-9):.0f} per CPU s), "
                         f"{result['deliver_wall']:.2f} s wall")
            print(line, flush=True)
        if template:
            await drop_database(args.pg_url, template)
    finally:
        if sink is not None:
            sink.kill()
    if profile is not None:
        profile.dump_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deliver", action="store_true")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--profile", type=Path)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
