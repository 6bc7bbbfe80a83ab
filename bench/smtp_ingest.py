"""Benchmark: SMTP ingest through the full Frontdesk pipeline versus a bare aiosmtpd server.

    .venv/bin/python bench/smtp_ingest.py --messages 2000 --database sqlite,postgresql \
        [--pg-url postgresql+asyncpg://postgres@127.0.0.1:54329/postgres] [--profile 500] \
        [--report bench/results/smtp_ingest.md]

For each database it sends N messages at C concurrent sessions, one message
per connection, first to a bare aiosmtpd server that answers 250 at once,
then to Frontdesk's SMTP channel (recipient check, ingest pipeline, blob
store, database commit).  The server runs in this process; the client runs
in a child process, so on a two-core machine each gets a core.  SMTP
answers 250 once the mail is committed to the intake, so it reports
Frontdesk's acceptance rate (until the last 250) and its end-to-end rate
(until every accepted mail is processed: stored, threaded, its events in
the outbox), the server's CPU per message (the parse pool's workers
included), the ratio to the bare server, checks every message was stored exactly once,
and with ``--profile`` reruns the full pipeline under cProfile to show
where the time goes.  The PostgreSQL URL comes from ``--pg-url`` or
``FRONTDESK_TEST_PG_URL``; a fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import multiprocessing
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RECIPIENT = "support@acme.test"


# -- the client (child process) ---------------------------------------------

# A realistic support mix, by n % 10: 4 first messages in plain text, 2
# replies that quote the previous message under an "On ... wrote:" line,
# 1 Outlook-style reply (HTML + text alternative, "From: / Sent:" history
# header), 2 HTML newsletters-style first messages (multipart/alternative),
# 1 HTML-only message (text derived with inscriptis).  Replies carry
# In-Reply-To / References to an earlier message of the same run.
_PARAGRAPH = ("Hello, my order has not arrived yet and the tracking page shows no update since Tuesday. "
              "Could you check with the carrier and tell me when I can expect it? ")


def _body_text(n: int) -> str:
    return "\r\n\r\n".join([_PARAGRAPH * (1 + n % 3), "Thanks in advance,", f"Customer {n % 500}"]) + "\r\n"


def _html(text: str) -> str:
    paragraphs = "".join(f"<p style=\"margin:0 0 8px\">{p}</p>" for p in text.split("\r\n\r\n"))
    return ("<html><head><meta charset=\"utf-8\"><style>p{font-family:Arial}</style></head>"
            f"<body><div dir=\"ltr\">{paragraphs}</div><div class=\"signature\"><table><tr><td>"
            "<b>Customer</b><br>Phone: +1 555 0100</td></tr></table></div></body></html>")


def make_message(run: str, n: int) -> bytes:
    sender = f"customer{n % 500}@customers.test"
    kind = n % 10
    text = _body_text(n)
    threading = ""
    if kind in (4, 5, 6) and n >= 10:
        parent = f"<{run}.{n - 10}@customers.test>"
        threading = f"In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
        previous = _body_text(n - 10)
        if kind == 6:
            text = (text + "\r\n________________________________\r\n"
                    f"From: Acme Support <{RECIPIENT}>\r\nSent: Monday, November 23, 2026 2:00 AM\r\n"
                    f"To: Customer <{sender}>\r\nSubject: Re: Order {run}-{n - 10}\r\n\r\n{previous}")
        else:
            quoted = "".join(f"> {line}\r\n" for line in previous.split("\r\n"))
            text = f"{text}\r\nOn Mon, 23 Nov 2026 at 02:00, Acme Support <{RECIPIENT}> wrote:\r\n{quoted}"
    if kind in (0, 1, 2, 3, 4, 5):
        content = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
    elif kind == 9:
        content = f"Content-Type: text/html; charset=utf-8\r\n\r\n{_html(text)}\r\n"
    else:
        boundary = f"=_alt_{run}_{n}"
        content = (f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
                   f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{text}\r\n"
                   f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{_html(text)}\r\n"
                   f"--{boundary}--\r\n")
    return (
        f"From: Customer {n % 500} <{sender}>\r\n"
        f"To: Acme Support <{RECIPIENT}>\r\n"
        f"Subject: {'Re: ' if threading else ''}Order {run}-{n - 10 if threading else n} has not arrived\r\n"
        f"Message-ID: <{run}.{n}@customers.test>\r\n"
        f"{threading}"
        "Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        f"{content}"
    ).encode()


async def _send_all(port: int, run: str, count: int, concurrency: int) -> tuple[float, int, list[str]]:
    import aiosmtplib

    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    failures: list[str] = []
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while not queue.empty():
            n = queue.get_nowait()
            sender = f"customer{n % 500}@customers.test"
            try:
                # One message per connection, like independent sending servers.
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as client:
                    await client.sendmail(sender, [RECIPIENT], make_message(run, n))
                sent += 1
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                failures.append(f"{n}: {error!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, sent, failures[:5]


def client_process(port: int, run: str, count: int, concurrency: int, results) -> None:  # type: ignore[no-untyped-def]
    results.put(asyncio.run(_send_all(port, run, count, concurrency)))


async def drive_client(port: int, run: str, count: int, concurrency: int) -> tuple[float, int, list[str]]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=client_process, args=(port, run, count, concurrency, results))
    child.start()
    # The server shares this event loop: wait without blocking it.
    while True:
        try:
            return results.get_nowait()
        except Exception:  # queue.Empty
            if not child.is_alive() and results.empty():
                raise RuntimeError("benchmark client died")
            await asyncio.sleep(0.05)


# -- the servers (this process) -----------------------------------------------

class AnswerOnly:
    """The baseline: aiosmtpd doing nothing but answering."""

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "250 OK"


async def bare_rate(count: int, concurrency: int) -> tuple[float, int, list[str], float]:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(AnswerOnly(), hostname="bench"), "127.0.0.1", 0)
    try:
        cpu = time.process_time()
        elapsed, sent, failures = await drive_client(server.sockets[0].getsockname()[1], uuid.uuid4().hex[:8],
                                                     count, concurrency)
        return elapsed, sent, failures, time.process_time() - cpu
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Installation:
    settings: object
    engine: object
    sessions: object
    blobs: object
    drop: str | None  # PostgreSQL database to drop afterwards


async def install(database: str, pg_url: str | None, workdir: Path) -> Installation:
    import asyncpg
    from sqlalchemy.engine import make_url

    from frontdesk.defaults import ensure_defaults
    from frontdesk.settings import Secret, SupportAddress, load_settings
    from frontdesk.storage.blobs import BlobStore
    from frontdesk.storage.database import create_engine, session_factory
    from frontdesk.storage.migrate import upgrade

    drop = None
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'frontdesk.db'}"
    else:
        if not pg_url:
            raise SystemExit("PostgreSQL needs --pg-url or FRONTDESK_TEST_PG_URL")
        drop = f"fd_bench_{uuid.uuid4().hex[:10]}"
        admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{drop}"')
        finally:
            await conn.close()
        url = make_url(pg_url).set(database=drop).render_as_string(hide_password=False)
    base = load_settings(environ={"FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_SECRET_KEY": "bench"})
    settings = replace(base, database_url=url, support_addresses=(SupportAddress(RECIPIENT),),
                       from_address=RECIPIENT, secret_key=Secret("bench-secret"))
    engine = create_engine(url)
    await upgrade(engine)
    sessions = session_factory(engine)
    await ensure_defaults(sessions, settings)
    return Installation(settings, engine, sessions, BlobStore(settings.blob_dir), drop)


async def uninstall(installation: Installation, pg_url: str | None) -> None:
    await installation.engine.dispose()
    if installation.drop:
        import asyncpg
        from sqlalchemy.engine import make_url

        admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{installation.drop}" WITH (FORCE)')
        finally:
            await conn.close()


def parse_pool_cpu() -> dict[int, float]:
    """CPU seconds so far of each parse-pool worker process (they do the parsing, off this process)."""
    from frontdesk.ingest import parse_pool

    pool = parse_pool._pool
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in list(getattr(pool, "_processes", None) or {}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


async def full_rate(installation: Installation, count: int, concurrency: int,
                    profiler: cProfile.Profile | None = None) -> tuple[float, int, list[str], int, float, float]:
    """(end-to-end seconds, sent, failures, stored, server CPU seconds incl. parse workers, acceptance seconds)."""
    from sqlalchemy import func, select

    from frontdesk.channels.smtp import SmtpChannel
    from frontdesk.model.messages import Message
    from frontdesk.ingest.context import IngestContext

    ctx = IngestContext(settings=installation.settings, sessions=installation.sessions, blobs=installation.blobs)
    channel = SmtpChannel(ctx, replace(installation.settings.smtp, host="127.0.0.1", port=0))
    await channel.start()
    run = uuid.uuid4().hex[:8]
    try:
        if profiler:
            profiler.enable()
        cpu = time.process_time()  # this process (threads included) and the parse workers: the server side
        workers_before = parse_pool_cpu()
        elapsed, sent, failures = await drive_client(channel.port, run, count, concurrency)
        accepted = elapsed
        # The 250 now means "committed to the intake"; the pipeline runs
        # behind it.  The end-to-end rate counts until every accepted mail
        # is processed (stored, threaded, its events in the outbox).
        drain_started = time.perf_counter()
        await channel.intake.drained()
        elapsed += time.perf_counter() - drain_started
        workers_after = parse_pool_cpu()
        cpu = time.process_time() - cpu + sum(t - workers_before.get(pid, 0.0) for pid, t in workers_after.items())
    finally:
        if profiler:
            profiler.disable()
        await channel.stop(grace=10)
    async with installation.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.external_id.like(f"{run}.%"))
        )
    return elapsed, sent, failures, stored, cpu, accepted


def configure_logging(path: Path) -> None:
    """Production-like: JSON log lines to a file (the channel logs one per message)."""
    import logging

    import structlog

    handle = path.open("w")
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                    structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=handle),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    logging.basicConfig(level=logging.WARNING, stream=handle)


def top_of_profile(profiler: cProfile.Profile, limit: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    text = out.getvalue()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    return "By cumulative time:\n" + text + "\nBy own time:\n" + out.getvalue()


async def bench_database(database: str, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"fd-bench-{database}-"))
    configure_logging(workdir / "server.log")
    installation = await install(database, args.pg_url, workdir)
    try:
        # Warm-up: imports, connection pool, the first ticket's defaults.
        await full_rate(installation, min(50, args.messages), args.concurrency)
        bare_elapsed, bare_sent, bare_failures, bare_cpu = await bare_rate(args.messages, args.concurrency)
        full_elapsed, full_sent, full_failures, stored, full_cpu, accepted = await full_rate(
            installation, args.messages, args.concurrency)
        profile_text = None
        if args.profile:
            profiler = cProfile.Profile()
            await full_rate(installation, args.profile, args.concurrency, profiler)
            profile_text = top_of_profile(profiler)
    finally:
        await uninstall(installation, args.pg_url)
        shutil.rmtree(workdir, ignore_errors=True)
    bare = bare_sent / bare_elapsed
    full = full_sent / full_elapsed
    return {
        "database": database, "bare_rate": bare, "full_rate": full, "ratio": full / bare,
        "accept_rate": full_sent / accepted,
        "bare_sent": bare_sent, "full_sent": full_sent, "stored": stored,
        "bare_cpu_ms": 1000 * bare_cpu / max(1, bare_sent), "full_cpu_ms": 1000 * full_cpu / max(1, full_sent),
        "failures": bare_failures + full_failures, "profile": profile_text,
    }


def machine_facts() -> str:
    def run(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "(unavailable)"
    return (f"- `nproc`: {run(['nproc'])}\n"
            f"- `free -g`:\n\n```\n{run(['free', '-g'])}\n```\n"
            f"- Python {platform.python_version()} on {platform.platform()}\n"
            f"- load when the report was written (`uptime`): {run(['uptime'])}; the machine is shared, "
            "so other work competes for the same two cores\n")


def report(results: list[dict], args: argparse.Namespace, command: str) -> str:
    lines = ["# SMTP ingest benchmark", "", "## Machine", "", machine_facts(), "## Command", "",
             f"```\n{command}\n```", "",
             f"{args.messages} messages per run, {args.concurrency} concurrent sessions, one message per "
             "connection; the client runs in a separate process.  The messages are a support mix "
             "(`make_message`): 40% plain-text first messages, 20% replies quoting the previous message "
             "under an \"On ... wrote:\" line, 10% Outlook-style replies (HTML + text, \"From: / Sent:\" "
             "history), 20% HTML + text first messages, 10% HTML only.", "",
             "## Results", "",
             "End-to-end is from the first connection until every accepted mail is processed (stored, "
             "threaded, its events in the outbox); acceptance until the last 250.  Server CPU includes "
             "the parse pool's worker processes.", "",
             "| database | bare aiosmtpd (msg/s) | Frontdesk acceptance (msg/s) | Frontdesk end-to-end (msg/s) "
             "| ratio end-to-end / bare | server CPU per message, bare / full (ms) | stored exactly once |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        once = "yes" if r["stored"] == r["full_sent"] == args.messages else f"no ({r['stored']}/{args.messages})"
        lines.append(f"| {r['database']} | {r['bare_rate']:.0f} | {r['accept_rate']:.0f} | {r['full_rate']:.0f} "
                     f"| {r['ratio']:.2f} | {r['bare_cpu_ms']:.1f} / {r['full_cpu_ms']:.1f} | {once} |")
    for r in results:
        if r["failures"]:
            lines += ["", f"Failures on {r['database']} (first few): " + "; ".join(r["failures"])]
    for r in results:
        if r["profile"]:
            lines += ["", f"## Profile of the full pipeline on {r['database']} ({args.profile} messages, cProfile)",
                      "", "```", r["profile"].strip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, or both comma-separated")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--profile", type=int, default=0, help="also profile the full pipeline on this many messages")
    parser.add_argument("--report", type=Path, help="write the results as Markdown to this file")
    args = parser.parse_args()

    results = []
    for database in [d.strip() for d in args.database.split(",") if d.strip()]:
        result = asyncio.run(bench_database(database, args))
        results.append(result)
        print(f"{database}: bare {result['bare_rate']:.0f} msg/s, accepted {result['accept_rate']:.0f} msg/s, "
              f"end-to-end {result['full_rate']:.0f} msg/s, "
              f"ratio {result['ratio']:.2f}, stored {result['stored']}/{args.messages}, server CPU/msg "
              f"{result['bare_cpu_ms']:.1f} / {result['full_cpu_ms']:.1f} ms", flush=True)
    command = " ".join([".venv/bin/python", "bench/smtp_ingest.py", *sys.argv[1:]])
    text = report(results, args, command)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(f"report written to {args.report}")
    else:
        print(text)


if __name__ == "__main__":
    main()
