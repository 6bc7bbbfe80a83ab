"""Benchmark: end-to-end email ingest, Frontdesk against django-helpdesk, on the same workload in one run.

    .venv/bin/python bench/ingest_peer.py [--threads 2000] [--database sqlite,postgresql] \
        [--peer-database sqlite,postgresql] [--report bench/results/ingest_peer.md]

It generates a deterministic workload (``--seed``): ``--threads`` new mails
and at least as many replies, with replies to replies, replies that carry
only ``References`` or only ``In-Reply-To``, and replies that arrive before
their parent; plain, HTML, multipart/alternative and multipart/mixed with
attachments.  The truth (which thread each mail belongs to) is kept beside
the ``.eml`` files, in arrival order.

* **Frontdesk**: the real daemon (``frontdesk run``, embedded mode, no
  Kafka) in its own process.  This process sends every mail over SMTP at 20
  concurrent sessions, one mail per connection, in arrival order, and polls
  the database.  The clock runs from the first byte sent until every mail
  is stored as a message on a ticket with its ``message.received`` event in
  the outbox (or quarantined).  20 unmeasured warm-up mails go first.
* **django-helpdesk** (pinned below, from the package index, in its own
  virtualenv ``bench/.peer-venv``, created on first use): a minimal Django
  project generated in the work folder, one queue with
  ``email_box_type='local'`` over a directory holding the same ``.eml``
  files; the clock runs around its ``get_email`` management command
  (``call_command`` after ``django.setup()``, so Django's start-up and the
  migrations are not counted).  ``os.listdir`` is sorted for that command
  only, so it reads the files in the same arrival order Frontdesk got
  (ext4 lists a directory in hash order, which would scramble the
  arrivals); nothing else of it is changed.  Its outgoing mail goes to
  Django's file backend, as Frontdesk's goes to its spool.

Threading accuracy, for both: each true thread is given the ticket that
holds most of its mails (a ticket goes to one thread at most, largest
threads first); accuracy is the share of all mails that sit on their
thread's ticket.  A mail that was never stored counts as wrong.

PostgreSQL runs as a scratch cluster started by this script with
``fsync=on`` and ``synchronous_commit=on`` (durable commits, like SQLite's
``synchronous=FULL``); both systems get a fresh database on it.  SQLite:
Frontdesk in WAL with ``synchronous=FULL``, django-helpdesk on Django's
default SQLite settings (rollback journal, ``synchronous=FULL``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email.header
import json
import os
import platform
import quopri
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

SUPPORT = "support@acme.test"
PEER_VENV = REPO / "bench" / ".peer-venv"
PEER_REQUIREMENTS = ("django-helpdesk==2.6.1", "psycopg[binary]==3.3.9")
CONCURRENCY = 20


# -- the workload ---------------------------------------------------------------

@dataclass
class Mail:
    message_id: str  # without angle brackets
    thread: str  # the Message-ID of the thread's first mail: the truth
    parent: str | None
    raw: bytes = b""


_TOPICS = ("Order {n} has not arrived", "Invoice {n}: wrong VAT number", "Cannot log in to account {n}",
           "Refund for order {n}", "Printer model {n} shows error E-07", "Änderung der Lieferadresse {n}",
           "Subscription {n} renews twice", "Damaged parcel, order {n}")
_SENTENCES = ("My order has not arrived yet and the tracking page shows no update since Tuesday.",
              "Could you check with the carrier and tell me when I can expect it?",
              "I attached a photo of the label so you can see the reference.",
              "We were charged twice this month, see the statement below.",
              "The error appears right after the firmware update finished.",
              "Bitte ändern Sie die Lieferadresse, wir sind umgezogen. Danke und Grüße!",
              "This is urgent for us, the whole team is blocked.",
              "Thanks for the quick answer, but the problem is still there.")


def _attachment(rng: random.Random, n: int) -> tuple[bytes, str, str]:
    if rng.random() < 0.5:
        body = b"%PDF-1.4\n" + rng.randbytes(rng.randrange(3_000, 30_000)) + b"\n%%EOF\n"
        return body, "application/pdf", f"invoice-{n}.pdf"
    body = b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randrange(2_000, 20_000))
    return body, "image/png", f"screenshot-{n}.png"


def _html(text: str) -> str:
    paragraphs = "".join(f'<p style="margin:0 0 8px">{line}</p>' for line in text.split("\n") if line)
    return ('<html><head><meta charset="utf-8"><style>p{font-family:Arial}</style></head>'
            f'<body><div dir="ltr">{paragraphs}</div><div class="signature"><table><tr><td>'
            "<b>Customer</b><br>Phone: +1 555 0100</td></tr></table></div></body></html>")


def _render(mail: Mail, rng: random.Random, n: int, *, sender: str, subject: str, sent: datetime,
            text: str, in_reply_to: str | None, references: list[str]) -> bytes:
    """The mail as an MTA would hand it over (assembled directly: the email package costs ~15 ms a mail)."""
    header = [f"From: {sender}", f"To: Acme Support <{SUPPORT}>", f"Subject: {_encoded(subject)}",
              f"Date: {format_datetime(sent)}", f"Message-ID: <{mail.message_id}>"]
    if in_reply_to:
        header.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        header.append("References: " + "\r\n ".join(f"<{ref}>" for ref in references))
    header.append("MIME-Version: 1.0")
    plain = _part("text/plain", quopri.encodestring(text.replace("\n", "\r\n").encode()).decode(), "quoted-printable")
    html = _part("text/html", base64.encodebytes(_html(text).encode()).decode(), "base64")
    shape = rng.random()
    if shape < 0.45:
        body = plain
    elif shape < 0.55:
        body = html
    else:
        body = _multipart("alternative", f"=_alt_{n}", [plain, html])
        if shape >= 0.8:  # a fifth of all mails carry an attachment
            data, mime, filename = _attachment(rng, n)
            attachment = (f"Content-Type: {mime}; name=\"{filename}\"\r\nContent-Transfer-Encoding: base64\r\n"
                          f"Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n"
                          + base64.encodebytes(data).decode())
            body = _multipart("mixed", f"=_mix_{n}", [body, attachment])
    return ("\r\n".join(header) + "\r\n" + body).replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _encoded(value: str) -> str:
    return value if value.isascii() else email.header.Header(value, "utf-8").encode()


def _part(mime: str, payload: str, encoding: str) -> str:
    return f"Content-Type: {mime}; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n{payload}"


def _multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    inner = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n{inner}--{boundary}--\r\n"


def generate_workload(threads: int, seed: int = 12) -> list[Mail]:
    """The mails in arrival order: ``threads`` first mails, at least as many replies."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
    timeline: list[tuple[float, int, Mail, dict]] = []  # (arrival time, tie-break, mail, how to render it)
    replies = 0
    plan: list[int] = [rng.choices((0, 1, 2, 3, 4), (35, 35, 17, 9, 4))[0] for _ in range(threads)]
    for t in range(threads):  # top up so there are at least as many replies as threads
        if sum(plan) >= threads:
            break
        plan[t] += 1
    for t in range(threads):
        customer = f"Customer {t % 700} <customer{t % 700}@customers.test>"
        colleague = f"Colleague {t % 300} <colleague{t % 300}@customers.test>"
        subject = rng.choice(_TOPICS).format(n=1000 + t)
        root = Mail(f"t{t}.0.{seed}@customers.test", f"t{t}.0.{seed}@customers.test", None)
        at = t * 1.2 + rng.random()
        members: list[tuple[Mail, float, list[str], str]] = [(root, at, [], "")]
        text = " ".join(rng.sample(_SENTENCES, 3))
        timeline.append((at, len(timeline), root, dict(sender=customer, subject=subject, text=text,
                                                      in_reply_to=None, references=[])))
        for k in range(1, plan[t] + 1):
            parent, parent_at, parent_chain, parent_text = rng.choice(members)  # replies to replies too
            chain = parent_chain + [parent.message_id]
            mail = Mail(f"t{t}.{k}.{seed}@customers.test", root.message_id, parent.message_id)
            style = rng.random()
            in_reply_to, references = parent.message_id, chain
            if style < 0.12:
                in_reply_to = None  # References only
            elif style < 0.24:
                references = []  # In-Reply-To only
            if rng.random() < 0.05:
                mail_at = parent_at - rng.uniform(40, 120)  # arrives before the mail it answers
            else:
                mail_at = parent_at + rng.uniform(40, 500)
            quoted = "\n".join(f"> {line}" for line in (parent_text or text).split("\n"))
            reply_text = (" ".join(rng.sample(_SENTENCES, 2))
                          + f"\n\nOn Mon, 23 Nov 2026, Acme Support <{SUPPORT}> wrote:\n{quoted}")
            timeline.append((mail_at, len(timeline), mail, dict(
                sender=colleague if rng.random() < 0.15 else customer,
                subject=("RE: " if rng.random() < 0.2 else "Re: ") + subject, text=reply_text,
                in_reply_to=in_reply_to, references=references)))
            members.append((mail, mail_at, chain, reply_text))
            replies += 1
    timeline.sort(key=lambda entry: (entry[0], entry[1]))
    mails = []
    for n, (at, _, mail, how) in enumerate(timeline):
        mail.raw = _render(mail, rng, n, sent=start + timedelta(seconds=at), **how)
        mails.append(mail)
    return mails


def workload_facts(mails: list[Mail]) -> dict[str, int]:
    position = {mail.message_id: n for n, mail in enumerate(mails)}
    replies = [mail for mail in mails if mail.parent]
    raw = [mail.raw for mail in replies]
    return {
        "mails": len(mails), "new": len(mails) - len(replies), "replies": len(replies),
        "replies to replies": sum(1 for mail in replies if mail.parent != mail.thread),
        "References only": sum(1 for r in raw if b"\r\nIn-Reply-To:" not in r),
        "In-Reply-To only": sum(1 for r in raw if b"\r\nReferences:" not in r),
        "before their parent": sum(1 for mail in replies if position[mail.message_id] < position[mail.parent]),
        "with an attachment": sum(1 for mail in mails if b"Content-Disposition: attachment" in mail.raw),
        "HTML only": sum(1 for mail in mails if b"\r\nContent-Type: text/html" in mail.raw
                         and b"multipart/" not in mail.raw),
        "bytes": sum(len(mail.raw) for mail in mails),
    }


def write_workload(mails: list[Mail], folder: Path) -> None:
    """One ``.eml`` per mail, named by arrival position, and the truth beside them."""
    folder.mkdir(parents=True)
    for n, mail in enumerate(mails):
        (folder / f"{n:06d}.eml").write_bytes(mail.raw)
    (folder.parent / "truth.json").write_text(json.dumps({mail.message_id: mail.thread for mail in mails}))


def threading_accuracy(truth: dict[str, str], placed: dict[str, object]) -> tuple[float, int]:
    """Share of mails on their thread's ticket, and how many threads are whole (all mails on one ticket of their own).

    ``placed`` maps a Message-ID (no brackets) to the ticket it landed on.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for message_id, thread in truth.items():
        members[thread].append(message_id)
    claimed: dict[object, str] = {}
    ticket_of: dict[str, object] = {}
    for thread, ids in sorted(members.items(), key=lambda item: (-len(item[1]), item[0])):
        votes = Counter(placed[m] for m in ids if placed.get(m) is not None)
        for ticket, _ in sorted(votes.items(), key=lambda item: -item[1]):
            if ticket not in claimed:
                claimed[ticket] = thread
                ticket_of[thread] = ticket
                break
    correct = sum(1 for m, thread in truth.items() if thread in ticket_of and placed.get(m) == ticket_of[thread])
    shared = Counter(placed[m] for m in truth if placed.get(m) is not None)
    whole = sum(1 for thread, ids in members.items()
                if thread in ticket_of and all(placed.get(m) == ticket_of[thread] for m in ids)
                and shared[ticket_of[thread]] == len(ids))
    return correct / len(truth), whole


# -- a durable PostgreSQL ---------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Frontdesk ------------------------------------------------------------------------

async def _send(port: int, mails: list[Mail]) -> list[str]:
    import aiosmtplib

    numbers = iter(range(len(mails)))
    failures: list[str] = []

    async def session() -> None:
        for n in numbers:
            for attempt in range(30):
                try:
                    # One mail per connection, like independent sending servers.
                    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as client:
                        await client.sendmail("customer@customers.test", [SUPPORT], mails[n].raw)
                    break
                except aiosmtplib.SMTPResponseException as refusal:
                    if refusal.code // 100 != 4 or attempt == 29:
                        failures.append(f"{n}: {refusal!r}")
                        break
                    await asyncio.sleep(0.5)  # 451: try again, as a sending MTA would
                except Exception as error:  # noqa: BLE001 - reported, not fatal
                    failures.append(f"{n}: {error!r}")
                    break

    await asyncio.gather(*(session() for _ in range(CONCURRENCY)))
    return failures


async def _counts(sessions) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """Inbound messages on a ticket, message.received events, quarantined items."""
    from sqlalchemy import func, select

    from frontdesk.events import MESSAGE_RECEIVED
    from frontdesk.model import Message, OutboxEvent, QuarantinedItem

    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "inbound", Message.ticket_id.is_not(None)))
        events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.type == MESSAGE_RECEIVED))
        quarantined = await session.scalar(select(func.count()).select_from(QuarantinedItem))
    return stored, events, quarantined


async def run_frontdesk(database_url: str, mails: list[Mail], workdir: Path) -> dict:
    from sqlalchemy import select

    from frontdesk.model import Message
    from frontdesk.storage.database import create_engine, session_factory

    smtp_port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(REPO),
        "FRONTDESK_DATA_DIR": str(workdir / "var"), "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_AUTO_MIGRATE": "true", "FRONTDESK_SECRET_KEY": "bench-secret",
        "FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "FRONTDESK_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "FRONTDESK_SUPPORT_ADDRESSES": SUPPORT, "FRONTDESK_LOG_LEVEL": "WARNING",
    }
    for name in ("FRONTDESK_KAFKA_BOOTSTRAP", "FRONTDESK_SMARTHOST"):
        env.pop(name, None)  # embedded mode; outgoing mail goes to the spool
    log = open(workdir / "frontdesk-run.log", "ab")
    daemon = subprocess.Popen([sys.executable, "-m", "frontdesk.runtime.cli", "run"], env=env, cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)
    log.close()
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        from kafka_latency import wait_port  # the benches' one readiness check
        from process_tree import tree_cpu

        await wait_port(smtp_port, daemon, "frontdesk run")
        warm = [Mail(f"warm.{n}@customers.test", f"warm.{n}@customers.test", None,
                     (f"From: warm{n}@customers.test\r\nTo: {SUPPORT}\r\nSubject: warm-up {n}\r\n"
                      f"Message-ID: <warm.{n}@customers.test>\r\n\r\nwarm-up\r\n").encode()) for n in range(20)]
        await _send(smtp_port, warm)
        await _until_stored(sessions, daemon, 20, 120)
        before = await _counts(sessions)
        cpu_before = tree_cpu(daemon.pid)
        started = time.perf_counter()
        failures = await _send(smtp_port, mails)
        sent_in = time.perf_counter() - started
        after = await _until_stored(sessions, daemon, before[0] + before[2] + len(mails) - len(failures), 1800)
        elapsed = time.perf_counter() - started
        # The daemon and its children (the parse pool's workers): the server's CPU for the workload.
        cpu = sum(t - cpu_before.get(p, 0.0) for p, t in tree_cpu(daemon.pid).items())
        async with sessions() as session:
            placed = dict((await session.execute(select(Message.external_id, Message.ticket_id).where(
                Message.direction == "inbound", Message.external_id.not_like("warm.%")))).all())
    finally:
        await engine.dispose()
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    return {"elapsed": elapsed, "cpu": cpu, "accepted_in": sent_in, "failures": failures, "placed": placed,
            "stored": after[0] - before[0], "events": after[1] - before[1], "quarantined": after[2] - before[2]}


async def _until_stored(sessions, daemon, total: int, timeout: float) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """Poll until ``total`` mails are stored on tickets or quarantined, each stored one with its event."""
    deadline = time.monotonic() + timeout
    while True:
        stored, events, quarantined = counts = await _counts(sessions)
        # message.received commits with its message, so this holds once the outbox has them all.
        if stored + quarantined >= total and events >= stored:
            return counts
        if daemon.poll() is not None:
            raise SystemExit(f"frontdesk run exited with {daemon.returncode}; see its log")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {counts} of {total}")
        await asyncio.sleep(0.1)


# -- django-helpdesk --------------------------------------------------------------------

PEER_SETTINGS = '''\
"""A minimal Django project around django-helpdesk, written by bench/ingest_peer.py."""
import json
import os

SECRET_KEY = "bench"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
SITE_ID = 1
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
    "django.contrib.messages", "django.contrib.staticfiles", "django.contrib.sites", "django.contrib.humanize",
    "rest_framework", "helpdesk",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware", "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "peer_urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request", "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages"]},
}]
DATABASES = {"default": json.loads(os.environ["PEER_DATABASE"])}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"
MEDIA_ROOT = os.environ["PEER_MEDIA"]
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["PEER_OUTBOX"]
DEFAULT_FROM_EMAIL = "SUPPORT"
HELPDESK_TEAMS_MODE_ENABLED = False  # teams need the optional pinax-teams; mail intake does not use them
'''.replace("SUPPORT", SUPPORT)

PEER_URLS = '''\
from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls"))]
'''

PEER_DRIVER = '''\
"""Set up django-helpdesk's database and queue, then time its get_email command over the mail directory."""
import json
import os
import sys
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_settings")
import django

django.setup()
from django.core.management import call_command
from django.utils import timezone
from helpdesk.models import FollowUp, Queue, Ticket

mail_dir = sys.argv[1]
call_command("migrate", verbosity=0)
Queue.objects.create(
    title="Support", slug="support", email_address="SUPPORT", allow_email_submission=True,
    email_box_type="local", email_box_local_dir=mail_dir, email_box_interval=0,
    email_box_last_check=timezone.now() - timedelta(hours=1), logging_type="none",
)
# The same arrival order Frontdesk gets: readdir order on ext4 is a hash order.
unsorted = os.listdir
os.listdir = lambda path=".": sorted(unsorted(path))
started = time.perf_counter()
call_command("get_email", quiet=True)
elapsed = time.perf_counter() - started
os.listdir = unsorted
placed = {f.message_id.strip().strip("<>"): f.ticket_id for f in FollowUp.objects.exclude(message_id=None)}
print(json.dumps({"elapsed": elapsed, "placed": placed, "tickets": Ticket.objects.count(),
                  "left": len(os.listdir(mail_dir))}))
'''.replace("SUPPORT", SUPPORT)


def ensure_peer_venv() -> Path:
    """``bench/.peer-venv`` with the pinned django-helpdesk (gitignored), created on first use."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        installed = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
        if PEER_REQUIREMENTS[0] in installed:
            return python
    subprocess.run([sys._base_executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    return python


def run_peer(python: Path, database: dict, mails_dir: Path, workdir: Path) -> dict:
    project = workdir / "peer"
    project.mkdir()
    (project / "peer_settings.py").write_text(PEER_SETTINGS)
    (project / "peer_urls.py").write_text(PEER_URLS)
    (project / "driver.py").write_text(PEER_DRIVER)
    inbox = project / "maildir"
    shutil.copytree(mails_dir, inbox)
    env = {**os.environ, "PYTHONPATH": str(project), "PEER_DATABASE": json.dumps(database),
           "PEER_MEDIA": str(project / "media"), "PEER_OUTBOX": str(project / "outbox")}
    done = subprocess.run([str(python), str(project / "driver.py"), str(inbox)], env=env, cwd=project,
                          capture_output=True, text=True)
    (workdir / "peer.log").write_text(done.stdout[-20000:] + done.stderr[-20000:])
    if done.returncode:
        raise SystemExit(f"django-helpdesk run failed ({done.returncode}); see {workdir / 'peer.log'}:\n"
                         + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run and its report --------------------------------------------------------------

def _sh(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "(unavailable)"


async def bench_database(kind: str, pg_url: str | None, python: Path, mails: list[Mail], workdir: Path,
                         args: argparse.Namespace) -> dict:
    from scratch_databases import create_database, drop_database
    from sqlalchemy.engine import make_url

    truth = {mail.message_id: mail.thread for mail in mails}
    result: dict = {"database": kind, "load_before": _sh(["uptime"])}
    if "frontdesk" in args.systems:
        folder = workdir / f"frontdesk-{kind}"
        folder.mkdir()
        url, name = await create_database(kind, pg_url, folder, "fd_peer")
        try:
            frontdesk = await run_frontdesk(url, mails, folder)
        finally:
            if name:
                await drop_database(pg_url, name)
        frontdesk["accuracy"], frontdesk["whole"] = threading_accuracy(truth, frontdesk.pop("placed"))
        result["frontdesk"] = frontdesk
    if "django-helpdesk" in args.systems:
        folder = workdir / f"peer-{kind}"
        folder.mkdir()
        name = None
        if kind == "sqlite":
            database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(folder / "helpdesk.sqlite3")}
        else:
            url, name = await create_database(kind, pg_url, folder, "peer")
            parts = make_url(url)
            database = {"ENGINE": "django.db.backends.postgresql", "NAME": parts.database, "USER": parts.username,
                        "HOST": parts.host, "PORT": str(parts.port)}
        try:
            peer = await asyncio.to_thread(run_peer, python, database, workdir / "mail", folder)
        finally:
            if name:
                await drop_database(pg_url, name)
        peer["accuracy"], peer["whole"] = threading_accuracy(truth, peer.pop("placed"))
        result["peer"] = peer
    result["load_after"] = _sh(["uptime"])
    return result


def _percent(system: dict | None) -> str:
    return f"{system['accuracy']:.2%}" if system else "-"


def report(results: list[dict], facts: dict[str, int], args: argparse.Namespace, command: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    total = facts["mails"]
    lines = [
        "# End-to-end ingest: Frontdesk vs django-helpdesk", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: `nproc` {_sh(['nproc'])} ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; shared with other work while it ran",
        f"- Command: `{command}`",
        f"- Peer: {', '.join(PEER_REQUIREMENTS)} in `bench/.peer-venv`, its `get_email` command over a local "
        "directory (`email_box_type='local'`)",
        "- PostgreSQL: a scratch cluster started by the benchmark with `fsync=on`, `synchronous_commit=on`, "
        "`full_page_writes=on`; both systems get a fresh database on it. SQLite: Frontdesk WAL + "
        "`synchronous=FULL`; django-helpdesk on Django's SQLite defaults.", "",
        "## Workload", "",
        f"Seed {args.seed}, generated by `generate_workload`, in arrival order:", "",
        "| | mails |", "|---|---:|",
        *[f"| {what} | {count:,} |" for what, count in facts.items()], "",
        "## Results", "",
        "Frontdesk: clock from the first SMTP byte (20 concurrent sessions, one mail per connection) until every "
        "mail is a stored message on a ticket with its `message.received` event in the outbox, polled in the "
        "database. django-helpdesk: clock around its `get_email` command over the same files, in the same order.",
        "Accuracy: share of mails on their thread's ticket (each thread gets the ticket holding most of its mails; "
        "a ticket goes to one thread at most); whole threads: threads with all their mails, and only theirs, on "
        "one ticket.", "",
        "| database | Frontdesk msg/s | django-helpdesk msg/s | ratio | Frontdesk accuracy | django-helpdesk "
        "accuracy | whole threads, Frontdesk / django-helpdesk |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        frontdesk, peer = result.get("frontdesk"), result.get("peer")
        fd_rate = total / frontdesk["elapsed"] if frontdesk else None
        peer_rate = total / peer["elapsed"] if peer else None
        ratio = f"{fd_rate / peer_rate:.2f}" if fd_rate and peer_rate else "-"
        lines.append(
            f"| {result['database']} | {f'{fd_rate:.1f}' if fd_rate else '-'} "
            f"| {f'{peer_rate:.1f}' if peer_rate else '-'} | {ratio} "
            f"| {_percent(frontdesk)} | {_percent(peer)} "
            f"| {frontdesk['whole'] if frontdesk else '-'} / {peer['whole'] if peer else '-'} of {facts['new']} |")
    lines += ["", "## Detail", ""]
    for result in results:
        lines.append(f"**{result['database']}** (load before: `{result['load_before']}`; after: "
                     f"`{result['load_after']}`)")
        lines.append("")
        if "frontdesk" in result:
            fd = result["frontdesk"]
            lines.append(f"- Frontdesk: {total:,} mails in {fd['elapsed']:.1f} s; all accepted (250) after "
                         f"{fd['accepted_in']:.1f} s; server CPU {fd['cpu']:.1f} s "
                         f"({1000 * fd['cpu'] / total:.1f} ms per mail, daemon and its parse workers); {fd['stored']:,} stored on tickets, {fd['events']:,} "
                         f"`message.received` events, {fd['quarantined']} quarantined, "
                         f"{len(fd['failures'])} refused{': ' + '; '.join(fd['failures'][:3]) if fd['failures'] else ''}")
        if "peer" in result:
            peer = result["peer"]
            lines.append(f"- django-helpdesk: {total:,} files in {peer['elapsed']:.1f} s; {peer['tickets']:,} "
                         f"tickets; {peer['left']} files left unprocessed")
        lines.append("")
    target = [r for r in results if r.get("frontdesk") and r.get("peer")]
    if target:
        met = all((total / r["frontdesk"]["elapsed"]) / (total / r["peer"]["elapsed"]) >= 10 for r in target)
        lines.append(f"Target (issue 12, target 2): at least 10x django-helpdesk's rate: **{'met' if met else 'not met'}**.")
    return "\n".join(lines) + "\n"


async def run_all(args: argparse.Namespace, mails: list[Mail], workdir: Path, facts: dict[str, int],
                  command: str) -> list[dict]:
    from scratch_databases import durable_cluster

    python = ensure_peer_venv() if "django-helpdesk" in args.systems else Path()
    results: list[dict] = []
    with contextlib.ExitStack() as stack:
        pg_url = stack.enter_context(durable_cluster(free_port())) if "postgresql" in args.database else None
        for kind in args.database:
            print(f"{kind}: running...", flush=True)
            results.append(await bench_database(kind, pg_url, python, mails, workdir, args))
            print(json.dumps(results[-1], default=str), flush=True)
            if args.report:  # after each database: a long run that is cut short still leaves its figures
                args.report.write_text(report(results, facts, args, command))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2000, help="new mails; replies are at least as many")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--database", default="sqlite,postgresql")
    parser.add_argument("--systems", default="frontdesk,django-helpdesk")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, mails, databases)")
    args = parser.parse_args()
    args.database = [kind.strip() for kind in args.database.split(",") if kind.strip()]
    args.systems = [system.strip() for system in args.systems.split(",") if system.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="fd-ingest-peer-"))
    mails = generate_workload(args.threads, args.seed)
    write_workload(mails, workdir / "mail")
    facts = workload_facts(mails)
    command = "python " + " ".join(sys.argv)
    # Stopped with TERM or INT (ignored by default in a background job), the run still stops the daemon and
    # the scratch cluster: the exception unwinds through their finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        results = asyncio.run(run_all(args, mails, workdir, facts, command))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, facts, args, command))
    if args.keep:
        print(f"work folder: {workdir}")


if __name__ == "__main__":
    main()
