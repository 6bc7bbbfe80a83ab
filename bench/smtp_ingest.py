"""Benchmark: SMTP acceptance (250 once the intake row is committed) versus a bare aiosmtpd server.

    .venv/bin/python bench/smtp_ingest.py --messages 2000 --database sqlite,postgresql \
        [--pg-url postgresql+asyncpg://postgres@127.0.0.1:54361/postgres] [--py-spy] [--uvloop] \
        [--report bench/results/smtp_ingest.md]

For each database it sends N corpus mails (a mix of plain, HTML,
multipart/alternative and multipart with attachments) at C concurrent
sessions, one message per connection, in this order: a bare aiosmtpd server
that answers 250 at once; Frontdesk's SMTP channel with the intake
processor paused (recipient check, then the raw mail committed in its
intake row, group commit, then 250); the same with the processor running
behind the 250s on the same cores; the bare server again.  The ratio is
against the mean of the two bare runs.  The server runs in this process,
the client in a child process.  With ``--py-spy`` one more paused run is
sampled by py-spy and the busiest functions are reported.  The PostgreSQL
URL comes from ``--pg-url`` or ``FRONTDESK_TEST_PG_URL`` (for a durable
figure, a cluster with fsync=on and synchronous_commit=on); a fresh
database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scratch_databases import create_database, drop_database  # noqa: E402

RECIPIENT = "support@acme.test"


# -- the workload ------------------------------------------------------------

CORPUS = REPO.parent / "shared" / "corpus" / "email"
# The realistic mix, by share of the messages sent: plain text, HTML only,
# multipart/alternative (text + HTML), multipart/mixed with attachments.
MIX = (("plain", 4), ("html", 1), ("alternative", 3), ("attachments", 2))
# Kept out of the mix: bounces (the sisimai folder), message/partial and
# reports, anything over this size, and lines over SMTP's 1,000 bytes (the
# bare aiosmtpd baseline refuses those; Frontdesk takes them).
MAX_SIZE = 200_000
_MESSAGE_ID = re.compile(rb"^message-id:.*\r?\n(?:[ \t].*\r?\n)*", re.IGNORECASE | re.MULTILINE)


def _kind(raw: bytes) -> str | None:
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    content_type = message.get_content_type()
    if any(part.get_filename() for part in message.walk()):
        return "attachments" if content_type == "multipart/mixed" else None
    return {"text/plain": "plain", "text/html": "html", "multipart/alternative": "alternative"}.get(content_type)


def load_corpus(corpus: Path = CORPUS) -> dict[str, list[bytes]]:
    """The corpus mails of each kind, with CRLF line endings and no Message-ID (each send adds its own)."""
    kinds: dict[str, list[bytes]] = {kind: [] for kind, _ in MIX}
    for path in sorted(corpus.rglob("*.eml")):
        if "sisimai" in path.parts or path.stat().st_size > MAX_SIZE:
            continue
        raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if any(len(line) > 998 for line in raw.split(b"\n")):
            continue
        kind = _kind(raw)
        if kind is not None:
            head, sep, body = raw.partition(b"\n\n")
            head = _MESSAGE_ID.sub(b"", head + b"\n")
            kinds[kind].append((head + b"\n" + body).replace(b"\n", b"\r\n"))
    return kinds


def workload(kinds: dict[str, list[bytes]], count: int) -> list[bytes]:
    """``count`` mails in the MIX proportions, cycling through each kind's files."""
    slots = [kind for kind, weight in MIX for _ in range(weight)]
    seen: dict[str, int] = {kind: 0 for kind in kinds}
    chosen = []
    for n in range(count):
        kind = slots[n % len(slots)]
        chosen.append(kinds[kind][seen[kind] % len(kinds[kind])])
        seen[kind] += 1
    return chosen


def make_message(template: bytes, run: str, n: int) -> bytes:
    return b"Message-ID: <%s.%d@bench.test>\r\n" % (run.encode(), n) + template


# -- the client (child process) ---------------------------------------------

async def _send_all(port: int, run: str, count: int, concurrency: int) -> tuple[float, int, list[str]]:
    import aiosmtplib

    templates = workload(load_corpus(), count)  # read before the clock starts
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
                    await client.sendmail(sender, [RECIPIENT], make_message(templates[n], run, n))
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


@dataclass
class Run:
    elapsed: float
    sent: int
    failures: list[str]
    cpu: float  # this process's CPU seconds (the server side)
    accepted: int = 0  # intake rows the run left (Frontdesk only)
    processed: int = 0  # of which settled (processed or quarantined) when the load ended

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed


async def bare_run(count: int, concurrency: int) -> Run:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(AnswerOnly(), hostname="bench"), "127.0.0.1", 0)
    try:
        cpu = time.process_time()
        elapsed, sent, failures = await drive_client(server.sockets[0].getsockname()[1], uuid.uuid4().hex[:8],
                                                     count, concurrency)
        return Run(elapsed, sent, failures, time.process_time() - cpu)
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
    from frontdesk.defaults import ensure_defaults
    from frontdesk.settings import Secret, SupportAddress, load_settings
    from frontdesk.storage.blobs import BlobStore
    from frontdesk.storage.database import create_engine, session_factory
    from frontdesk.storage.migrate import upgrade

    url, drop = await create_database(database, pg_url, workdir, "fd_bench_smtp")
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
        await drop_database(pg_url, installation.drop)


class PySpy:
    """``py-spy record`` on this process (the server side) for the duration of a run, if asked."""

    def __init__(self, output: Path | None) -> None:
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "PySpy":
        if self.output is not None:
            spy = Path(sys.executable).with_name("py-spy")
            self._process = subprocess.Popen(
                [str(spy), "record", "--pid", str(os.getpid()), "--rate", "200", "--format", "raw",
                 "--output", str(self.output), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # attached before the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            self._process.wait(timeout=60)


def parse_pool_cpu() -> dict[int, float]:
    """CPU seconds so far of each parse-pool worker process (the processor parses there, off this process)."""
    from frontdesk.ingest import parse_pool

    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in list(getattr(parse_pool._pool, "_processes", None) or {}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


async def frontdesk_run(installation: Installation, count: int, concurrency: int, *, paused: bool,
                        spy: Path | None = None) -> Run:
    """Time N mails to their 250 (the intake row committed); the processor paused or running behind."""
    from sqlalchemy import func, select

    from frontdesk.channels.smtp import SmtpChannel
    from frontdesk.ingest import parse_pool
    from frontdesk.ingest.context import IngestContext
    from frontdesk.ingest.email_intake import EmailIntake
    from frontdesk.ingest.intake import PENDING
    from frontdesk.model import InboundPayload

    ctx = IngestContext(settings=installation.settings, sessions=installation.sessions, blobs=installation.blobs)
    if not paused:
        await parse_pool.start(installation.settings.parse_workers)  # as `frontdesk run` does
    intake = EmailIntake(ctx, paused=paused)
    await intake.start()
    channel = SmtpChannel(ctx, replace(installation.settings.smtp, host="127.0.0.1", port=0), intake=intake)
    await channel.start()
    run = uuid.uuid4().hex[:8]
    try:
        with PySpy(spy):
            cpu = time.process_time()  # the server side: this process (threads included) and the parse workers
            workers_before = parse_pool_cpu()
            elapsed, sent, failures = await drive_client(channel.port, run, count, concurrency)
            cpu = time.process_time() - cpu + sum(t - workers_before.get(pid, 0.0)
                                                  for pid, t in parse_pool_cpu().items())
        async with installation.sessions() as session:
            # The table was emptied before the run (clear_intake): every row is this run's.
            rows = (await session.execute(
                select(InboundPayload.state, func.count()).group_by(InboundPayload.state))).all()
    finally:
        await channel.stop(grace=10)
        await intake.stop(grace=60)  # the mail in hand finishes: its transaction must not hold the lock
        parse_pool.shutdown()
    result = Run(elapsed, sent, failures, cpu)
    result.accepted = sum(n for _, n in rows)
    result.processed = sum(n for state, n in rows if state != PENDING)
    return result


async def clear_intake(installation: Installation) -> None:
    """Drop the rows of the previous run, so each run counts its own and the paused backlog is not processed."""
    from sqlalchemy import delete

    from frontdesk.model import InboundPayload
    from frontdesk.storage.writer import write_transaction

    async with write_transaction(installation.sessions) as session:
        await session.execute(delete(InboundPayload))


def configure_logging(settings: object, path: Path) -> None:
    """The daemon's own logging (JSON lines, secrets masked), to a file: the channel logs one line per message."""
    from frontdesk.runtime.logs import configure_logging as configure

    configure(settings, stream=path.open("w"))  # type: ignore[arg-type]


def top_of_raw_profile(path: Path, limit: int = 20) -> str:
    """py-spy's raw (collapsed) stacks summed: the functions with the most samples, own and total."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [re.sub(r" \((?:.*/)?([^/]+:\d+)\)$", r" (\1)", f) for f in stack.split(";")]
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames]  # by function, not by line
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    def table(counts: dict[str, int]) -> list[str]:
        return [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in
                sorted(counts.items(), key=lambda item: -item[1])[:limit]]
    return "\n".join([f"{samples} samples", "", "By own time:", *table(own), "",
                      "By total time (the function and what it calls):", *table(total)])


MODES = ("bare", "paused", "running", "bare")


async def bench_database(database: str, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"fd-bench-{database}-"))
    installation = await install(database, args.pg_url, workdir)
    configure_logging(installation.settings, workdir / "server.log")
    runs: dict[str, list[Run]] = {"bare": [], "paused": [], "running": []}
    profile = None
    try:
        # Warm-up: imports, connection pool, the channel cache, the first commits.
        await frontdesk_run(installation, min(100, args.messages), args.concurrency, paused=True)
        await bare_run(min(100, args.messages), args.concurrency)
        # Back to back, the baseline before and after: the ratio uses their mean.
        for mode in MODES:
            if mode == "bare":
                runs[mode].append(await bare_run(args.messages, args.concurrency))
            else:
                await clear_intake(installation)
                runs[mode].append(await frontdesk_run(installation, args.messages, args.concurrency,
                                                      paused=mode == "paused"))
        if args.py_spy is not None:
            await clear_intake(installation)
            raw = Path(f"{args.py_spy}.{database}") if args.py_spy else workdir / "py-spy.txt"
            await frontdesk_run(installation, args.messages, args.concurrency, paused=True, spy=raw)
            profile = top_of_raw_profile(raw)
    finally:
        await uninstall(installation, args.pg_url)
        shutil.rmtree(workdir, ignore_errors=True)
    bare = sum(r.rate for r in runs["bare"]) / len(runs["bare"])
    return {"database": database, "bare": runs["bare"], "paused": runs["paused"][0],
            "running": runs["running"][0], "bare_rate": bare, "profile": profile}


def machine_facts() -> str:
    def run(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "(unavailable)"
    return (f"- `nproc`: {run(['nproc'])}\n"
            f"- Python {platform.python_version()} on {platform.platform()}\n"
            f"- event loop: {asyncio.get_event_loop_policy().__class__.__module__}\n"
            f"- load when the report was written (`uptime`): {run(['uptime'])}; the machine is shared, "
            "so other work competes for the same two cores\n")


def report(results: list[dict], args: argparse.Namespace, command: str, loads: list[str]) -> str:
    lines = ["# SMTP acceptance benchmark", "", "## Machine", "", machine_facts(),
             "Load (`uptime`) before each database's runs:", "", *[f"- {load}" for load in loads], "",
             "## Command", "", f"```\n{command}\n```", "",
             f"{args.messages} messages per run, {args.concurrency} concurrent sessions, one message per "
             "connection; the client (aiosmtplib) runs in a separate process.  The messages are corpus mails "
             "(`/work/shared/corpus/email`, bounces left out): 40% plain text, 10% HTML only, 30% "
             "multipart/alternative, 20% multipart/mixed with attachments, each with a fresh Message-ID.  "
             "Order: bare, Frontdesk with the processor paused, Frontdesk with the processor running, bare "
             "again; the ratio is against the mean of the two bare runs.  Frontdesk's rate is the rate of "
             "250 answers, each given after the mail's intake row committed (SQLite synchronous=FULL; "
             "PostgreSQL as given by --pg-url).", "",
             "## Results", "",
             "| database | bare aiosmtpd (msg/s, before / after) | Frontdesk, processor paused (msg/s) | ratio "
             "| Frontdesk, processor running (msg/s) | ratio | processed during the running load "
             "| server CPU per message, bare / paused / running (ms) | intake rows = sent |",
             "|---|---|---:|---:|---:|---:|---|---|---|"]
    for r in results:
        paused, running, bare = r["paused"], r["running"], r["bare_rate"]
        before, after = r["bare"]
        rows = "yes" if paused.accepted == paused.sent and running.accepted == running.sent else (
            f"no ({paused.accepted}/{paused.sent}, {running.accepted}/{running.sent})")
        lines.append(
            f"| {r['database']} | {before.rate:.0f} / {after.rate:.0f} | {paused.rate:.0f} | {paused.rate / bare:.2f} "
            f"| {running.rate:.0f} | {running.rate / bare:.2f} | {running.processed} of {running.sent} "
            f"| {1000 * before.cpu / before.sent:.2f} / {1000 * paused.cpu / paused.sent:.2f} / "
            f"{1000 * running.cpu / running.sent:.2f} | {rows} |")
    for r in results:
        failures = [f for run in (*r["bare"], r["paused"], r["running"]) for f in run.failures]
        if failures:
            lines += ["", f"Failures on {r['database']} (first few): " + "; ".join(failures[:5])]
    for r in results:
        if r["profile"]:
            lines += ["", f"## py-spy profile of the server process on {r['database']} (processor paused)",
                      "", "```", r["profile"].strip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, or both comma-separated")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--py-spy", nargs="?", const="", default=None, metavar="RAW",
                        help="also profile one paused run with py-spy (installed next to this Python); "
                             "keep its raw stacks in RAW if given")
    parser.add_argument("--uvloop", action="store_true", help="run the servers on uvloop")
    parser.add_argument("--report", type=Path, help="write the results as Markdown to this file")
    args = parser.parse_args()

    results, loads = [], []
    for database in [d.strip() for d in args.database.split(",") if d.strip()]:
        loads.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        if args.uvloop:
            import uvloop

            result = uvloop.run(bench_database(database, args))
        else:
            result = asyncio.run(bench_database(database, args))
        results.append(result)
        print(f"{database}: bare {result['bare_rate']:.0f} msg/s, paused {result['paused'].rate:.0f} "
              f"({result['paused'].rate / result['bare_rate']:.2f}), running {result['running'].rate:.0f} "
              f"({result['running'].rate / result['bare_rate']:.2f})", flush=True)
    command = " ".join([".venv/bin/python", "bench/smtp_ingest.py", *sys.argv[1:]])
    text = report(results, args, command, loads)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(f"report written to {args.report}")
    else:
        print(text)


if __name__ == "__main__":
    main()
