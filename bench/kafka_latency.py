"""Benchmark: from end-of-DATA to the automated status change and the Ticket received email.

    .venv/bin/python bench/kafka_latency.py [--modes kafka,embedded] [--rates 100,10] [--messages 1000] \
        [--database postgresql|sqlite] [--backlog 1000] [--report bench/results/kafka_latency.md]

It runs the real processes: ``frontdesk run`` (SMTP edge, ingest, outbox
relay or the embedded runner, delivery loop) and, through Kafka,
``frontdesk worker``.  This process is the customer (an aiosmtplib client
sending N new-ticket mails at a steady rate, open loop) and the smarthost
(an aiosmtpd sink).  Per ticket it measures, from the moment the client
hands a message to DATA:

* for the customer's first mail, the Ticket received email being accepted
  by the smarthost;
* for the customer's reply on the thread (sent at the same rate once every
  Ticket received arrived), the status change automation commits (the
  customer-replied trigger; the ``ticket.status_changed`` outbox row written
  in the same transaction carries the time).

Then, through Kafka only, the worker's throughput: the worker is stopped, a
backlog of mail is ingested and published, a fresh worker drains it, and
events/s is the number of events it consumed over the drain time.

Kafka comes from ``FRONTDESK_TEST_KAFKA`` (``deploy/kafka/start.sh``), the
PostgreSQL server from ``--pg-url`` or ``FRONTDESK_TEST_PG_URL``; a fresh
database and fresh topics are made for each run.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiosmtplib  # noqa: E402
import asyncpg  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from frontdesk.events import TICKET_STATUS_CHANGED  # noqa: E402
from frontdesk.model import AppliedEffect, Delivery, OutboxEvent, Ticket  # noqa: E402
from frontdesk.storage.database import create_engine, session_factory  # noqa: E402

SUPPORT = "support@acme.test"
RECEIVED_PREFIX = "We received your request: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subject(run: str, n: int) -> str:
    return f"Bench {run}-{n}"


def customer_mail(run: str, n: int, *, reply: bool = False) -> bytes:
    """A new ticket's first mail, or the customer's reply on its thread."""
    threading = f"In-Reply-To: <{run}.{n}@customers.test>\r\nReferences: <{run}.{n}@customers.test>\r\n"
    return (
        f"From: Customer {n} <customer{n}.{run}@customers.test>\r\n"
        f"To: Acme Support <{SUPPORT}>\r\n"
        f"Subject: {'Re: ' if reply else ''}{subject(run, n)}\r\n"
        f"Message-ID: <{'re.' if reply else ''}{run}.{n}@customers.test>\r\n"
        f"{threading if reply else ''}"
        "Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello, my order has not arrived yet and the tracking page shows no update.\r\n"
    ).encode()


class Sink:
    """The smarthost: notes when each Ticket received email was accepted."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}  # the customer's subject -> time accepted

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        at = time.time()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        title = str(message["Subject"] or "")
        if title.startswith(RECEIVED_PREFIX):
            # Outbound mail carries the ticket number: "... [#42]".
            self.accepted.setdefault(re.sub(r" \[#\d+\]$", "", title[len(RECEIVED_PREFIX):]), at)
        return "250 2.0.0 accepted"


@dataclass
class Run:
    mode: str
    database_url: str
    smtp_port: int
    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{self.mode}-{name}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "frontdesk.runtime.cli", *argv], env=self.env, cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}; see its log")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port}")


DEFERRED: list[str] = []  # messages answered 4xx and sent again, as an MTA would


async def send(port: int, run: str, n: int, sent: dict[str, float], *, reply: bool = False) -> None:
    while True:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120)
        await client.connect()
        try:
            await client.ehlo()
            await client.mail(f"customer{n}.{run}@customers.test")
            await client.rcpt(SUPPORT)
            sent[subject(run, n)] = time.time()  # the message goes to DATA now
            await client.data(customer_mail(run, n, reply=reply))
            await client.quit()
            return
        except aiosmtplib.SMTPResponseException as refusal:
            if refusal.code // 100 != 4:
                raise
            DEFERRED.append(subject(run, n))
            client.close()
            await asyncio.sleep(1.0)


async def send_steady(port: int, run: str, count: int, rate: float, sent: dict[str, float], *,
                      reply: bool = False) -> None:
    """Open loop: message i starts at i / rate whatever the earlier ones are doing."""
    start = time.monotonic()
    tasks = []
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(port, run, n, sent, reply=reply)))
    await asyncio.gather(*tasks)


async def send_burst(port: int, run: str, count: int, concurrency: int, sent: dict[str, float]) -> None:
    numbers = iter(range(count))

    async def session() -> None:
        for n in numbers:
            await send(port, run, n, sent)

    await asyncio.gather(*(session() for _ in range(concurrency)))


def epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


async def status_changes(sessions, run: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The customer's subject -> when automation committed the ticket's first status change."""
    async with sessions() as session:
        rows = (await session.execute(
            select(Ticket.name, func.min(OutboxEvent.created_at))
            .join(OutboxEvent, OutboxEvent.ticket_id == Ticket.id)
            .where(OutboxEvent.type == TICKET_STATUS_CHANGED, Ticket.name.like(f"Bench {run}-%"))
            .group_by(Ticket.name))).all()
    return {name: epoch(at) for name, at in rows}


async def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ms = sorted(v * 1000 for v in values)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return statistics.median(ms), cuts[98], ms[-1]


async def latency(run_: Run, sink: Sink, sessions, *, count: int, rate: float) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    warm = uuid.uuid4().hex[:6]
    await send_steady(run_.smtp_port, warm, 20, 10, {})  # start-up costs stay out of the figures
    await wait_until(lambda: _have(sink, warm, 20), 120, "the warm-up mail")
    run = uuid.uuid4().hex[:6]
    sent: dict[str, float] = {}
    DEFERRED.clear()
    began = time.monotonic()
    await send_steady(run_.smtp_port, run, count, rate, sent)
    offered = count / (time.monotonic() - began)
    await wait_until(lambda: _have(sink, run, count), 300, "every Ticket received email")
    # New tickets stay in their first status; the customer's reply on the
    # thread is what moves them (the customer-replied trigger).
    replied: dict[str, float] = {}
    await send_steady(run_.smtp_port, run, count, rate, replied, reply=True)
    changed: dict[str, float] = {}

    async def all_changed() -> bool:
        changed.update(await status_changes(sessions, run))
        return len(changed) >= count
    await wait_until(all_changed, 120, "every status change")
    missing = [s for s in sent if s not in sink.accepted or s not in changed or s not in replied]
    if missing:
        raise SystemExit(f"no measurement for {missing[:5]}; sink has {sorted(sink.accepted)[:5]}")
    return {
        "status change committed (customer's reply)": percentiles([changed[s] - replied[s] for s in sent]),
        "Ticket received accepted by the smarthost": percentiles(
            [sink.accepted[s] - sent[s] for s in sent]),
        "rate": (rate, offered, len(set(DEFERRED))),
    }


async def _have(sink: Sink, run: str, count: int) -> bool:
    return sum(1 for s in sink.accepted if s.startswith(f"Bench {run}-")) >= count


async def throughput(run_: Run, sink: Sink, sessions, *, count: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Events one worker consumes per second, draining a backlog it did not see being built."""
    worker = run_.processes[-1]
    run_.stop(worker)
    async with sessions() as session:
        marker = await session.scalar(select(func.max(OutboxEvent.id))) or 0
    run = uuid.uuid4().hex[:6]
    await send_burst(run_.smtp_port, run, count, 8, {})

    async def published() -> bool:
        async with sessions() as session:
            return not await session.scalar(select(func.count()).select_from(OutboxEvent)
                                            .where(OutboxEvent.published_at.is_(None)))
    await wait_until(published, 300, "the backlog to be published")
    started = datetime.now(timezone.utc)
    run_.spawn("worker-drain", "worker")

    async def drained() -> bool:
        async with sessions() as session:
            handled = await session.scalar(select(func.count()).select_from(Delivery)
                                           .where(Delivery.kind == "template", Delivery.created_at >= started))
            unpublished = await session.scalar(select(func.count()).select_from(OutboxEvent)
                                               .where(OutboxEvent.published_at.is_(None)))
        return handled >= count and not unpublished and await _quiet(sessions)
    await wait_until(drained, 900, "the worker to drain the backlog")
    async with sessions() as session:
        events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.id > marker))
        first, last = (await session.execute(select(func.min(AppliedEffect.created_at),
                                                    func.max(AppliedEffect.created_at))
                                             .where(AppliedEffect.created_at >= started))).one()
    return events, events / max(1e-9, epoch(last) - epoch(first))


async def _quiet(sessions) -> bool:  # type: ignore[no-untyped-def]
    """No automation effect in the last two seconds: the worker has caught up."""
    async with sessions() as session:
        last = await session.scalar(select(func.max(AppliedEffect.created_at)))
    return last is not None and time.time() - epoch(last) > 2.0


async def fresh_database(kind: str, pg_url: str | None, workdir: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'frontdesk.db'}", None
    assert pg_url, "PostgreSQL needs --pg-url or FRONTDESK_TEST_PG_URL"
    name = f"fd_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False), name


async def drop_database(pg_url: str, name: str) -> None:
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def bench_mode(mode: str, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"fd-bench-{mode}-"))
    database_url, pg_name = await fresh_database(args.database, args.pg_url, workdir)
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink, hostname="sink.test"),
                                                            "127.0.0.1", 0)
    sink_port = server.sockets[0].getsockname()[1]
    smtp_port = free_port()
    topic = f"bench.{uuid.uuid4().hex[:8]}.events"
    env = {
        **os.environ, "PYTHONPATH": str(REPO),
        "FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_AUTO_MIGRATE": "true", "FRONTDESK_SECRET_KEY": "bench-secret",
        "FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "FRONTDESK_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "FRONTDESK_SUPPORT_ADDRESSES": SUPPORT, "FRONTDESK_SMARTHOST": f"127.0.0.1:{sink_port}",
        "FRONTDESK_SMARTHOST_TLS": "none", "FRONTDESK_LOG_LEVEL": "WARNING",
    }
    env.pop("FRONTDESK_KAFKA_BOOTSTRAP", None)
    if mode == "kafka":
        env |= {"FRONTDESK_KAFKA_BOOTSTRAP": args.kafka, "FRONTDESK_KAFKA_TOPIC": topic,
                "FRONTDESK_KAFKA_GROUP": f"bench-{uuid.uuid4().hex[:8]}"}
    run_ = Run(mode, database_url, smtp_port, env, workdir)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    result: dict = {"mode": mode}
    try:
        daemon = run_.spawn("daemon", "run")
        await wait_port(smtp_port, daemon, "frontdesk run")
        if mode == "kafka":
            run_.spawn("worker", "worker")
        result["latency"] = {rate: await latency(run_, sink, sessions, count=args.messages, rate=rate)
                             for rate in args.rates}
        if mode == "kafka" and args.backlog:
            result["throughput"] = await throughput(run_, sink, sessions, count=args.backlog)
    finally:
        for process in reversed(run_.processes):
            run_.stop(process)
        await engine.dispose()
        server.close()
        if pg_name:
            await drop_database(args.pg_url, pg_name)
    result["logs"] = str(workdir)
    return result


def report(results: list[dict], args: argparse.Namespace, command: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [
        "# Kafka latency benchmark", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; shared with other work while it ran",
        f"- Database: {args.database}; Kafka: Apache Kafka 4.1.0 single node (deploy/kafka), one worker",
        f"- Command: `{command}`",
        f"- Load: {args.messages} new-ticket emails per rate, one SMTP connection each, open loop "
        "(a message refused with 451 is sent again a second later, timed from its accepted attempt), "
        "after 20 unmeasured warm-up emails", "",
        "| mode | asked msg/s | sent msg/s | deferred (451) | latency from end-of-DATA to | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for result in results:
        for figures in result["latency"].values():
            asked, offered, deferred = figures["rate"]
            for what, values in figures.items():
                if what != "rate":
                    p50, p99, worst = values
                    lines.append(f"| {result['mode']} | {asked:g} | {offered:.0f} | {deferred} | {what} "
                                 f"| {p50:.0f} | {p99:.0f} | {worst:.0f} |")
    for result in results:
        if "throughput" in result:
            events, rate = result["throughput"]
            lines += ["", f"Worker throughput ({result['mode']}): {events} events drained from a backlog of "
                          f"{args.backlog} new tickets at {rate:.0f} events/s (one worker process)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="kafka,embedded")
    parser.add_argument("--rates", default="100", help="comma-separated msg/s, each measured in turn")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--database", default="postgresql" if os.environ.get("FRONTDESK_TEST_PG_URL") else "sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--kafka", default=os.environ.get("FRONTDESK_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    args.rates = [float(rate) for rate in args.rates.split(",")]

    async def all_modes() -> list[dict]:
        return [await bench_mode(mode.strip(), args) for mode in args.modes.split(",") if mode.strip()]

    results = asyncio.run(all_modes())
    text = report(results, args, "python " + " ".join(sys.argv))
    print(text)
    for result in results:
        print(f"logs of the {result['mode']} run: {result['logs']}")
    if args.report:
        args.report.write_text(text)


if __name__ == "__main__":
    main()
