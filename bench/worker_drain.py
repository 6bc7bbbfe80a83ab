"""Benchmark: how fast one ``frontdesk worker`` drains a backlog of real events on Kafka.

    .venv/bin/python bench/worker_drain.py [--tickets 1000] [--database postgresql|sqlite] \
        [--handlers standin,real] [--profile DIR] [--report bench/results/worker_drain.md]

One run builds the backlog once: a fresh database, ``--tickets`` customers
who each write in and reply on their thread, ingested in this process by the
real pipeline (ticket.created, message.received and the reply's
message.received in the outbox: three events a ticket).  Then, per handler,
the outbox rows are published to a fresh topic (the relay, as the daemon
does) and a fresh worker process in its own consumer group drains it:

* ``standin``: the test suite's stand-in handler (``tests/kafka/_kafka_standin.py``:
  one idempotency key per event, nothing else), the transport's ceiling;
* ``real``: ``python -m frontdesk.runtime.worker``, the production worker
  (triggers, status actions, Ticket received queued and sent to a local
  sink smarthost, SLA clocks).

The drain rate is events / (last effect - first effect), effects being the
``applied_effects`` rows the worker wrote (each run's own kinds); the worker's
start-up and group join are outside it.  ``--profile DIR`` records the real
worker with py-spy during the drain (``DIR/worker.txt``: the top frames by
own and by total samples).

Kafka comes from ``FRONTDESK_TEST_KAFKA``, PostgreSQL from ``--pg-url`` or
``FRONTDESK_TEST_PG_URL``.  To measure another checkout's worker (a
before/after), run this file with that checkout's ``.venv/bin/python`` and
``FRONTDESK_BENCH_REPO=<checkout>``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

# FRONTDESK_BENCH_REPO runs another checkout's code (with that checkout's .venv/bin/python): a before/after.
REPO = Path(os.environ.get("FRONTDESK_BENCH_REPO") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from kafka_latency import SUPPORT, customer_mail  # noqa: E402
from scratch_databases import create_database, drop_database  # noqa: E402
from frontdesk.automation.kafka_config import KafkaTopics, ensure_topics  # noqa: E402
from frontdesk.automation.relay import OutboxRelay  # noqa: E402
from frontdesk.defaults import ensure_defaults  # noqa: E402
from frontdesk.ingest.context import IngestContext  # noqa: E402
from frontdesk.ingest.message import Envelope  # noqa: E402
from frontdesk.ingest.pipeline import ingest_email  # noqa: E402
from frontdesk.model import AppliedEffect, OutboxEvent, utcnow  # noqa: E402
from frontdesk.settings import Secret, SupportAddress, load_settings  # noqa: E402
from frontdesk.storage.blobs import BlobStore  # noqa: E402
from frontdesk.storage.database import create_engine, session_factory  # noqa: E402
from frontdesk.storage.migrate import upgrade  # noqa: E402

STANDIN_KINDS = ("standin_ticket_received", "standin_handled_by")


async def build_backlog(ctx: IngestContext, tickets: int, concurrency: int = 4) -> None:
    run = uuid.uuid4().hex[:6]
    for reply in (False, True):
        queue = iter(range(tickets))

        async def session() -> None:
            for n in queue:
                envelope = Envelope(channel="email", source="smtp", mail_from=f"customer{n}.{run}@customers.test",
                                    rcpt_tos=(SUPPORT,), received_at=utcnow())
                await ingest_email(ctx, customer_mail(run, n, reply=reply), envelope)

        await asyncio.gather(*(session() for _ in range(concurrency)))


class Sink:
    """The smarthost: accepts everything."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 OK"


async def effect_span(sessions, kinds: tuple[str, ...] | None, exclude: tuple[str, ...]) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    query = select(func.count(), func.min(AppliedEffect.created_at), func.max(AppliedEffect.created_at))
    query = query.where(AppliedEffect.kind.in_(kinds)) if kinds else query.where(AppliedEffect.kind.not_in(exclude))
    async with sessions() as session:
        count, first, last = (await session.execute(query)).one()
    return int(count), (last - first).total_seconds() if first and last else 0.0


async def consumer_lag(bootstrap: str, topic: str, group: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        ends = await consumer.end_offsets(partitions)
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far: a figure the machine's other load inflates less than time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def top_frames(raw: Path, limit: int = 25) -> str:
    """py-spy's collapsed stacks as two tables: own samples and total samples per frame."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    out = [f"{samples} samples", "", "own:"]
    out += [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in own.most_common(limit)]
    out += ["", "total:"]
    out += [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in total.most_common(limit)]
    return "\n".join(out)


async def drain(kind: str, args: argparse.Namespace, settings, sessions, workdir: Path, sink_port: int,  # type: ignore[no-untyped-def]
                events: int) -> dict:
    run = uuid.uuid4().hex[:8]
    topics = KafkaTopics(bootstrap=args.kafka, events=f"bench.{run}.events", group=f"bench-{run}")
    await ensure_topics(topics)
    async with sessions.begin() as session:  # the same backlog again, on this run's topic
        await session.execute(update(OutboxEvent).values(published_at=None))
    relay = OutboxRelay(sessions, topics.bootstrap, topic=topics.events, batch_size=1000)
    while await relay.publish_pending():
        pass
    await relay.stop()
    env = {
        **os.environ, "PYTHONPATH": str(REPO),
        "FRONTDESK_DATABASE_URL": settings.reveal_database_url(),
        "FRONTDESK_DATA_DIR": str(settings.data_dir), "FRONTDESK_SECRET_KEY": settings.secret_key.reveal(),
        "FRONTDESK_KAFKA_BOOTSTRAP": topics.bootstrap, "FRONTDESK_KAFKA_TOPIC": topics.events,
        "FRONTDESK_KAFKA_GROUP": topics.group, "FRONTDESK_KAFKA_PARTITIONS": str(topics.partitions),
        "FRONTDESK_LOG_LEVEL": "WARNING", "FRONTDESK_SMARTHOST": f"127.0.0.1:{sink_port}",
        "FRONTDESK_SMARTHOST_TLS": "none", "FRONTDESK_SUPPORT_ADDRESSES": SUPPORT, "FRONTDESK_FROM_ADDRESS": SUPPORT,
    }
    argv = ([sys.executable, str(REPO / "tests" / "kafka" / "_kafka_standin.py")] if kind == "standin"
            else [sys.executable, "-m", "frontdesk.runtime.worker"])
    log = open(workdir / f"worker-{kind}.log", "wb")
    worker = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    spy = None
    kinds = STANDIN_KINDS[:1] if kind == "standin" else None
    started = time.monotonic()
    try:
        while (await effect_span(sessions, kinds, STANDIN_KINDS))[0] == 0:
            if worker.poll() is not None:
                raise SystemExit(f"the {kind} worker exited: see {workdir}/worker-{kind}.log")
            await asyncio.sleep(0.05)
        cpu_at_first = cpu_seconds(worker.pid)
        if args.profile and kind == "real":
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker.pid), "--format", "raw", "--rate", "200",
                                    "--output", str(args.profile / "worker.raw")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while await consumer_lag(topics.bootstrap, topics.events, topics.group) > 0:
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"the {kind} worker did not drain in {args.timeout} s")
            await asyncio.sleep(0.5)
        wall = time.monotonic() - started
        cpu = cpu_seconds(worker.pid) - cpu_at_first
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    effects, span = await effect_span(sessions, kinds, STANDIN_KINDS)
    result = {"handler": kind, "events": events, "effects": effects, "span": span,
              "rate": events / span if span else float("nan"), "wall": wall, "cpu": cpu}
    if spy is not None and (args.profile / "worker.raw").exists():
        (args.profile / "worker.txt").write_text(top_frames(args.profile / "worker.raw"))
    return result


async def bench(args: argparse.Namespace) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="fd-drain-"))
    url, drop = await create_database(args.database, args.pg_url, workdir, "fd_drain")
    base = load_settings(environ={"FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_SECRET_KEY": "bench"})
    settings = replace(base, database_url=url, support_addresses=(SupportAddress(SUPPORT),),
                       from_address=SUPPORT, secret_key=Secret("bench-secret"))
    engine = create_engine(url)
    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        await ensure_defaults(sessions, settings)
        ctx = IngestContext(settings=settings, sessions=sessions, blobs=BlobStore(settings.blob_dir))
        started = time.monotonic()
        await build_backlog(ctx, args.tickets)
        async with sessions() as session:
            events = await session.scalar(select(func.count()).select_from(OutboxEvent))
        print(f"backlog: {events} events from {args.tickets} tickets in {time.monotonic() - started:.0f} s",
              flush=True)
        results = []
        for kind in args.handlers.split(","):
            results.append(await drain(kind, args, settings, sessions, workdir, port, events))
            print(results[-1], flush=True)
        results.append({"sent": sink.count})
        return results
    finally:
        controller.stop()
        await engine.dispose()
        if drop:
            await drop_database(args.pg_url, drop)


def report(results: list[dict], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [
        "# Worker drain benchmark", "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
        f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        f"- Database: {args.database}; Kafka: single node (deploy/kafka), one worker process, 8 partitions",
        f"- Command: `python {' '.join(sys.argv)}`",
        "", "| handler | events | drain s (first to last effect) | events/s | wall s (incl. start-up) "
            "| worker CPU s in the drain | events per CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "handler" in r:
            lines.append(f"| {r['handler']} | {r['events']} | {r['span']:.1f} | {r['rate']:.0f} | {r['wall']:.1f} "
                         f"| {r['cpu']:.1f} | {r['events'] / r['cpu'] if r['cpu'] else float('nan'):.0f} |")
    sent = [r["sent"] for r in results if "sent" in r]
    if sent:
        lines += ["", f"Ticket received emails accepted by the sink smarthost: {sent[0]}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--kafka", default=os.environ.get("FRONTDESK_TEST_KAFKA"))
    parser.add_argument("--handlers", default="standin,real")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if not args.kafka:
        raise SystemExit("Kafka needs --kafka or FRONTDESK_TEST_KAFKA")
    text = report(asyncio.run(bench(args)), args)
    print(text)
    if args.report:
        args.report.write_text(text)


if __name__ == "__main__":
    main()
