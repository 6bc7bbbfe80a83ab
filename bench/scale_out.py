"""Benchmark (issue 12, target 6): two daemons and two workers on one PostgreSQL and one Kafka topic.

    .venv/bin/python bench/scale_out.py [--smtp 400] [--imap 100] [--lease-seconds 15] \
        [--report bench/results/scale_out.md]

Runs the real processes: two ``frontdesk run`` (SMTP, one shared IMAP
mailbox, the outbox relay, a delivery loop each) and two ``frontdesk worker``
in one consumer group, all on one fresh PostgreSQL database and fresh
topics, sharing one data directory (as hosts would share blob storage).
This process is the customer (SMTP to both daemons; every fifth mail is sent
to both, as a sender retrying on the other MX; mail appended to the IMAP
mailbox) and the smarthost (an aiosmtpd sink).

Halfway through the load, the daemon holding the mailbox's lease is killed
with SIGKILL; the rest of the SMTP load goes to the survivor (a mail the
dead daemon did not answer is sent again there, as an MTA would), and half
of the IMAP mail is appended after the kill.  At the end it counts, per
mail: inbound messages stored (duplicates, losses), tickets, and the Ticket
received emails the smarthost accepted (each ticket must get one: the
events were published, handled and the mail sent exactly once), and how long
the mailbox's lease took to move to the survivor.

PostgreSQL from ``--pg-url`` / ``FRONTDESK_TEST_PG_URL``, Kafka from
``--kafka`` / ``FRONTDESK_TEST_KAFKA``, Dovecot from ``--imap-server`` /
``FRONTDESK_TEST_IMAP`` (``deploy/dovecot/start.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import imaplib
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import aiosmtplib  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402
from sqlalchemy import text  # noqa: E402

from frontdesk.storage.database import create_engine  # noqa: E402
from scratch_databases import create_database, drop_database  # noqa: E402

SUPPORT = "support@acme.test"
RECEIVED_PREFIX = "We received your request: "
IMAP_PASSWORD = "test-password"  # deploy/dovecot accepts any t-* user with it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def customer_mail(run: str, kind: str, n: int) -> tuple[str, bytes]:
    """A new ticket's first mail from a customer of its own (so no rate limit holds its auto-reply back)."""
    message_id = f"{run}.{kind}.{n}@customers.test"
    return message_id, (
        f"From: Customer {n} <{kind}{n}.{run}@customers.test>\r\n"
        f"To: Acme Support <{SUPPORT}>\r\n"
        f"Subject: Scale {run} {kind} {n}\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Date: Wed, 02 Dec 2026 05:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello, my order has not arrived yet and the tracking page shows no update.\r\n"
    ).encode()


class Sink:
    """The smarthost: counts the Ticket received emails per customer subject."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        title = str(message["Subject"] or "")
        if title.startswith(RECEIVED_PREFIX):
            self.received[re.sub(r" \[#\d+\]$", "", title[len(RECEIVED_PREFIX):])] += 1
        return "250 2.0.0 accepted"


class Mailbox:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port, self.user = host, int(port), f"t-{uuid.uuid4().hex[:12]}"

    def append(self, raws: list[bytes]) -> None:
        client = imaplib.IMAP4(self.host, self.port)
        try:
            client.login(self.user, IMAP_PASSWORD)
            for raw in raws:
                typ, data = client.append("INBOX", None, None, raw)
                assert typ == "OK", data
        finally:
            client.logout()

    def config(self) -> str:
        return (f'[[imap.mailboxes]]\nname = "support"\nhost = "{self.host}"\nport = {self.port}\n'
                f'username = "{self.user}"\npassword = "{IMAP_PASSWORD}"\nsecurity = "none"\n'
                f'poll_interval = 30\nsupport_address = "{SUPPORT}"\n')


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        with open(log_dir / f"{name}.log", "ab") as log:
            self.popen = subprocess.Popen([sys.executable, "-m", "frontdesk.runtime.cli", *argv], env=env,
                                          cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Daemon(Process):
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.smtp_port, self.http_port = free_port(), free_port()
        super().__init__(name, ["run"], env | {"FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{self.smtp_port}",
                                               "FRONTDESK_HTTP_LISTEN": f"127.0.0.1:{self.http_port}"}, log_dir)

    async def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.popen.returncode}; see its log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2):
                    return
            except OSError:
                await asyncio.sleep(0.3)
        raise SystemExit(f"{self.name} did not become healthy")


async def send(daemons: list[Daemon], raw: bytes, sender: str) -> int:
    """Hand ``raw`` to the first daemon that accepts it, as an MTA would (451 or a dead peer: the next)."""
    attempts = 0
    while True:
        for daemon in daemons:
            if daemon.popen.poll() is not None:
                continue
            attempts += 1
            try:
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.smtp_port, timeout=60)
                await client.connect()
                try:
                    await client.sendmail(sender, [SUPPORT], raw)
                    return attempts
                finally:
                    try:
                        await client.quit()
                    except aiosmtplib.SMTPException:
                        pass
            except (aiosmtplib.SMTPException, OSError):
                continue
        await asyncio.sleep(1)


async def query(engine, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql))]


async def lease_holder_pid(engine) -> int | None:  # type: ignore[no-untyped-def]
    rows = await query(engine, "SELECT holder FROM mailbox_leases WHERE holder IS NOT NULL")
    return int(rows[0][0].split(":")[-2]) if rows else None


async def wait_until(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


async def smtp_load(daemons: list[Daemon], mails: list[tuple[str, bytes]], concurrency: int) -> int:
    """Send ``mails`` spread over the live daemons; every fifth to both. Returns the number of SMTP sessions."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for n, (_, raw) in enumerate(mails):
        queue.put_nowait((n, raw))
    sessions = 0

    async def worker() -> None:
        nonlocal sessions
        while not queue.empty():
            n, raw = queue.get_nowait()
            live = [d for d in daemons if d.popen.poll() is None]
            order = live[n % len(live):] + live[:n % len(live)]
            attempts = await send(order, raw, f"smtp{n}@customers.test")
            if n % 5 == 0 and len(live) > 1:
                attempts += await send(order[1:] + order[:1], raw, f"smtp{n}@customers.test")
            sessions += attempts  # after the awaits: += on a shared total must not span one

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sessions


async def bench(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="fd-bench-scale-out-"))
    database_url, pg_name = await create_database("postgresql", args.pg_url, workdir, "fd_scale")
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink, hostname="sink.test"), "127.0.0.1", 0)
    mailbox = Mailbox(args.imap_server)
    (workdir / "frontdesk.toml").write_text(mailbox.config())
    run = uuid.uuid4().hex[:6]
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRONTDESK_")} | {
        "PYTHONPATH": str(REPO), "FRONTDESK_CONFIG": str(workdir / "frontdesk.toml"),
        "FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_AUTO_MIGRATE": "true", "FRONTDESK_SECRET_KEY": "bench-secret",
        "FRONTDESK_SUPPORT_ADDRESSES": SUPPORT, "FRONTDESK_API_TOKEN": "bench-token",
        "FRONTDESK_SMARTHOST": f"127.0.0.1:{server.sockets[0].getsockname()[1]}", "FRONTDESK_SMARTHOST_TLS": "none",
        "FRONTDESK_LOG_LEVEL": "INFO", "FRONTDESK_KAFKA_BOOTSTRAP": args.kafka,
        "FRONTDESK_KAFKA_TOPIC": f"bench.{run}.events", "FRONTDESK_KAFKA_GROUP": f"bench-{run}",
        "FRONTDESK_IMAP_LEASE_SECONDS": str(args.lease_seconds),
    }
    engine = create_engine(database_url)
    processes: list[Process] = []
    smtp_mails = [customer_mail(run, "smtp", n) for n in range(args.smtp)]
    imap_mails = [customer_mail(run, "imap", n) for n in range(args.imap)]
    result: dict = {"logs": str(workdir)}
    try:
        daemons = []
        for name in ("daemon-a", "daemon-b"):  # one after the other: the first migrates
            daemon = Daemon(name, env, workdir)
            processes.append(daemon)
            await daemon.wait_healthy()
            daemons.append(daemon)
        processes += [Process(name, ["worker"], env, workdir) for name in ("worker-1", "worker-2")]
        await wait_until(lambda: lease_holder_pid(engine), 60, "a daemon to take the mailbox lease")
        holder_pid = await lease_holder_pid(engine)
        holder = next(d for d in daemons if d.popen.pid == holder_pid)
        survivor = next(d for d in daemons if d is not holder)

        started = time.monotonic()
        half_smtp, half_imap = args.smtp // 2, args.imap // 2
        await asyncio.to_thread(mailbox.append, [raw for _, raw in imap_mails[:half_imap]])
        sessions = await smtp_load(daemons, smtp_mails[:half_smtp], args.concurrency)
        # Kill the lease holder while the second half is on its way.
        second_half = asyncio.create_task(smtp_load(daemons, smtp_mails[half_smtp:], args.concurrency))
        await asyncio.sleep(0.5)
        holder.popen.kill()
        killed_at = time.monotonic()
        await asyncio.to_thread(mailbox.append, [raw for _, raw in imap_mails[half_imap:]])

        async def survivor_holds() -> bool:
            return await lease_holder_pid(engine) == survivor.popen.pid

        result["takeover_seconds"] = await wait_until(survivor_holds, 120, "the survivor to take the mailbox")

        async def imap_all_accepted() -> bool:
            rows = await query(engine, "SELECT count(*) FROM inbound_payloads WHERE route = 'imap:support'")
            return rows[0][0] >= args.imap

        await wait_until(imap_all_accepted, 300, "every IMAP mail to be accepted")
        result["imap_accepted_after_kill_seconds"] = time.monotonic() - killed_at
        sessions += await second_half
        result["smtp_sessions"] = sessions

        expected = {message_id for message_id, _ in smtp_mails + imap_mails}

        async def done() -> bool:
            stored = await query(engine, "SELECT count(DISTINCT external_id) FROM messages WHERE direction = 'inbound'")
            return stored[0][0] >= len(expected) and len(sink.received) >= len(expected)

        await wait_until(done, args.timeout, "every mail stored and answered")
        result["elapsed_seconds"] = time.monotonic() - started
        await asyncio.sleep(args.settle)  # anything sent twice would arrive now
        stored = dict(await query(engine, "SELECT external_id, count(*) FROM messages "
                                          "WHERE direction = 'inbound' GROUP BY external_id"))
        subjects = {f"Scale {run} {kind} {n}" for kind, count in (("smtp", args.smtp), ("imap", args.imap))
                    for n in range(count)}
        result |= {
            "expected": len(expected),
            "stored": sum(1 for m in expected if m in stored),
            "stored_duplicates": sum(count - 1 for count in stored.values() if count > 1),
            "stored_lost": sum(1 for m in expected if m not in stored),
            "tickets": (await query(engine, "SELECT count(*) FROM tickets"))[0][0],
            "received_mails": sum(sink.received[s] for s in subjects),
            "received_duplicates": sum(sink.received[s] - 1 for s in subjects if sink.received[s] > 1),
            "received_lost": sum(1 for s in subjects if not sink.received[s]),
            "intake_pending": (await query(engine, "SELECT count(*) FROM inbound_payloads "
                                                   "WHERE state = 'pending'"))[0][0],
            "outbox_unpublished": (await query(engine, "SELECT count(*) FROM outbox "
                                                       "WHERE published_at IS NULL"))[0][0],
            "load": os.getloadavg(),
        }
    finally:
        for process in reversed(processes):
            process.stop()
        await engine.dispose()
        server.close()
        if pg_name:
            await drop_database(args.pg_url, pg_name)
    return result


def report(result: dict, args: argparse.Namespace, command: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{value:.1f}" for value in result["load"])
    return "\n".join([
        "# Scale-out benchmark (two daemons, two workers, one PostgreSQL, one Kafka topic)", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at the end {load} (shared with other work)",
        f"- Command: `{command}`",
        f"- Load: {args.smtp} SMTP mails over {args.concurrency} concurrent sessions to both daemons (every fifth "
        f"to both), {args.imap} mails appended to one IMAP mailbox both daemons poll; the lease holder killed "
        f"with SIGKILL halfway; lease {args.lease_seconds:g} s", "",
        "| figure | value |", "|---|---:|",
        f"| mails expected | {result['expected']} |",
        f"| SMTP sessions (incl. mails sent to both, retries after the kill) | {result['smtp_sessions']} |",
        f"| inbound messages stored | {result['stored']} |",
        f"| stored twice (duplicates) | {result['stored_duplicates']} |",
        f"| not stored (losses) | {result['stored_lost']} |",
        f"| tickets | {result['tickets']} |",
        f"| Ticket received emails at the smarthost | {result['received_mails']} |",
        f"| Ticket received twice / missing | {result['received_duplicates']} / {result['received_lost']} |",
        f"| intake rows pending / outbox rows unpublished at the end | {result['intake_pending']} / "
        f"{result['outbox_unpublished']} |",
        f"| lease moved to the survivor after the kill | {result['takeover_seconds']:.1f} s |",
        f"| every IMAP mail (half appended after the kill) in the intake | "
        f"{result['imap_accepted_after_kill_seconds']:.1f} s after the kill |",
        f"| whole run (load start to every reply sent) | {result['elapsed_seconds']:.1f} s |",
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smtp", type=int, default=400)
    parser.add_argument("--imap", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--lease-seconds", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait for late duplicates")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--kafka", default=os.environ.get("FRONTDESK_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--imap-server", default=os.environ.get("FRONTDESK_TEST_IMAP"), metavar="HOST:PORT")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if not args.imap_server:
        raise SystemExit("needs Dovecot: --imap-server host:port or FRONTDESK_TEST_IMAP (deploy/dovecot/start.sh)")
    result = asyncio.run(bench(args))
    text = report(result, args, "python " + " ".join(sys.argv))
    print(text)
    print(f"logs: {result['logs']}")
    if args.report:
        args.report.write_text(text)


if __name__ == "__main__":
    main()
