"""Benchmark: does the daemon's memory stay flat over a long run at half the sustainable rate?

    .venv/bin/python bench/memory_soak.py [--minutes 20] [--rate R | --probe 600] \
        [--mode embedded|kafka] [--database sqlite|postgresql] [--report bench/results/memory_soak.md]

Issue 12's target 7: RSS grows less than 10% over a 20-minute run at half
the sustainable rate.  It runs the real processes, as ``bench/kafka_latency.py``
does: ``frontdesk run`` (SMTP edge, intake, pipeline, the embedded runner or
the outbox relay, the delivery loop) and, with ``--mode kafka``,
``frontdesk worker``; this process is the customers (aiosmtplib) and the
smarthost (an aiosmtpd sink).

1. **Sustainable rate** (unless ``--rate`` is given): a burst of ``--probe``
   new-ticket mails at 20 sessions; the rate is mails over the time until
   the last one's "Ticket received" reached the smarthost, so it counts the
   whole path, not only the SMTP answer.
2. **Soak**: half that rate, open loop, for ``--minutes``: new tickets and,
   as every second mail, a customer's reply on a ticket made earlier in the
   run.  The resident set size of the server processes (each one with its
   children, e.g. a parser pool) is sampled every 10 seconds.

The growth is the RSS at the end (the highest sample of the last two
minutes) over the RSS once warm (the highest sample of the first two
minutes): caches and pools fill while warming, so that is the baseline a
leak is measured against.  It also reports whether the backlog stayed
bounded (intake rows still pending, outbox rows unpublished at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from aiosmtpd.smtp import SMTP  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from process_tree import tree_rss_kib  # noqa: E402
from kafka_latency import (DEFERRED, Run, Sink, drop_database, free_port, fresh_database, send,  # noqa: E402
                           wait_port, wait_until)
from frontdesk.model import InboundPayload, OutboxEvent  # noqa: E402
from frontdesk.storage.database import create_engine, session_factory  # noqa: E402

SAMPLE_EVERY = 10.0
WINDOW = 120.0  # seconds at each end of the run compared


async def probe_rate(run_: Run, sink: Sink, count: int) -> float:
    """Mails per second the whole path sustains: a burst, timed to its last Ticket received."""
    run = uuid.uuid4().hex[:6]
    numbers = iter(range(count))

    async def session() -> None:
        for n in numbers:
            await send(run_.smtp_port, run, n, {})

    began = time.monotonic()
    await asyncio.gather(*(session() for _ in range(20)))
    await wait_until(lambda: _arrived(sink, run, count), 1800, "the probe's Ticket received emails")
    return count / (time.monotonic() - began)


async def _arrived(sink: Sink, run: str, count: int) -> bool:
    return sum(1 for s in sink.accepted if s.startswith(f"Bench {run}-")) >= count


async def soak(run_: Run, rate: float, seconds: float, samples: list[tuple[float, int]]) -> int:
    """Open loop at ``rate`` for ``seconds``: every second mail a reply on a ticket made earlier."""
    run = uuid.uuid4().hex[:6]
    servers = [p.pid for p in run_.processes]
    start = time.monotonic()
    next_sample = start
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        if now >= next_sample:
            samples.append((now - start, sum(tree_rss_kib(pid) for pid in servers)))
            next_sample += SAMPLE_EVERY
        ticket, reply = divmod(sent, 2)
        if reply and ticket >= 10:
            task = asyncio.create_task(send(run_.smtp_port, run, ticket - 10, {}, reply=True))
        else:
            task = asyncio.create_task(send(run_.smtp_port, run, ticket, {}))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    if pending:
        await asyncio.gather(*pending)
    samples.append((time.monotonic() - start, sum(tree_rss_kib(pid) for pid in servers)))
    return sent


async def backlog(sessions, mode: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Intake rows still pending, and outbox rows not yet handled (embedded) or published (Kafka)."""
    done = OutboxEvent.handled_at if mode == "embedded" else OutboxEvent.published_at
    async with sessions() as session:
        intake = await session.scalar(select(func.count()).select_from(InboundPayload)
                                      .where(InboundPayload.state == "pending"))
        outbox = await session.scalar(select(func.count()).select_from(OutboxEvent).where(done.is_(None)))
    return intake or 0, outbox or 0


async def run_soak(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="fd-soak-"))
    database_url, pg_name = await fresh_database(args.database, args.pg_url, workdir)
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink, hostname="sink.test"),
                                                            "127.0.0.1", 0)
    smtp_port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(REPO),
        "FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_AUTO_MIGRATE": "true", "FRONTDESK_SECRET_KEY": "bench-secret",
        "FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "FRONTDESK_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "FRONTDESK_SUPPORT_ADDRESSES": "support@acme.test",
        "FRONTDESK_SMARTHOST": f"127.0.0.1:{server.sockets[0].getsockname()[1]}",
        "FRONTDESK_SMARTHOST_TLS": "none", "FRONTDESK_LOG_LEVEL": "WARNING",
    }
    env.pop("FRONTDESK_KAFKA_BOOTSTRAP", None)
    if args.mode == "kafka":
        env |= {"FRONTDESK_KAFKA_BOOTSTRAP": args.kafka, "FRONTDESK_KAFKA_TOPIC": f"soak.{uuid.uuid4().hex[:8]}",
                "FRONTDESK_KAFKA_GROUP": f"soak-{uuid.uuid4().hex[:8]}"}
    run_ = Run(args.mode, database_url, smtp_port, env, workdir)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    result: dict = {"mode": args.mode, "database": args.database, "logs": str(workdir)}
    try:
        daemon = run_.spawn("daemon", "run")
        await wait_port(smtp_port, daemon, "frontdesk run")
        if args.mode == "kafka":
            run_.spawn("worker", "worker")
        sustainable = args.rate * 2 if args.rate else await probe_rate(run_, sink, args.probe)
        result["sustainable"] = None if args.rate else sustainable
        result["rate"] = rate = args.rate or sustainable / 2
        print(f"soaking at {rate:.1f} msg/s for {args.minutes} min", flush=True)
        DEFERRED.clear()
        samples: list[tuple[float, int]] = []
        result["sent"] = await soak(run_, rate, args.minutes * 60, samples)
        result["deferred"] = len(set(DEFERRED))
        result["samples"] = samples
        result["backlog"] = await backlog(sessions, args.mode)
    finally:
        for process in reversed(run_.processes):
            run_.stop(process)
        await engine.dispose()
        server.close()
        if pg_name:
            await drop_database(args.pg_url, pg_name)
    return result


def growth(samples: list[tuple[float, int]]) -> tuple[int, int, float]:
    """(RSS once warm, RSS at the end, growth in %): the highest sample of the first and of the last window."""
    total = samples[-1][0]
    warm = max(rss for at, rss in samples if at <= WINDOW)
    end = max(rss for at, rss in samples if at >= total - WINDOW)
    return warm, end, 100.0 * (end - warm) / warm


def report(result: dict, command: str) -> str:
    warm, end, percent = growth(result["samples"])
    load = os.getloadavg()
    lines = [
        f"Command: `{command}`",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, load before the run "
        f"{result['load_before'][0]:.2f}, after {load[0]:.2f}",
        "",
        f"Mode {result['mode']}, {result['database']}. Sustainable rate (whole path, 20 sessions): "
        + (f"{result['sustainable']:.1f} msg/s" if result["sustainable"] else "not probed (--rate given)")
        + f"; soak at {result['rate']:.1f} msg/s, {result['sent']} mails sent, {result['deferred']} deferred (451).",
        "",
        "| RSS once warm (first 2 min) | RSS at the end (last 2 min) | growth | target |",
        "|---|---|---|---|",
        f"| {warm / 1024:.1f} MiB | {end / 1024:.1f} MiB | {percent:+.1f}% | < 10%: "
        f"{'met' if percent < 10 else 'not met'} |",
        "",
        f"Backlog at the end: {result['backlog'][0]} intake rows pending, {result['backlog'][1]} outbox rows "
        f"not yet {'handled' if result['mode'] == 'embedded' else 'published'}.",
        "",
        "RSS samples (s, MiB): " + ", ".join(f"{at:.0f}: {rss / 1024:.1f}" for at, rss in result["samples"][::6]),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--rate", type=float, default=None, help="soak rate in msg/s (default: half the probed rate)")
    parser.add_argument("--probe", type=int, default=600, help="mails in the sustainable-rate burst")
    parser.add_argument("--mode", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--kafka", default=os.environ.get("FRONTDESK_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "memory_soak.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = asyncio.run(run_soak(args))
    result["load_before"] = load_before
    text = report(result, "python " + subprocess.list2cmdline(sys.argv))
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)


if __name__ == "__main__":
    main()
