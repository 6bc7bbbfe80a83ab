"""The ``frontdesk`` command line as an operator runs it: real subprocesses, real databases."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sqlalchemy import select

from daemon_process import base_env, frontdesk
from frontdesk.defaults import ensure_defaults
from frontdesk.model import DeadLetter, Delivery, OutboxEvent, QuarantinedItem, Ticket
from frontdesk.settings import EXAMPLE_SUPPORT_ADDRESS, load_settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.storage.migrate import upgrade
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.pipeline import ingest_email


def test_help_lists_every_subcommand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = frontdesk("--help", env=base_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "migrate", "quarantine", "worker", "dead-letters", "config"):
        assert command in result.stdout


def test_an_unreadable_config_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = frontdesk("migrate", "--config", str(tmp_path / "missing.toml"), env=base_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "missing.toml" in result.stderr


def test_a_bad_parse_worker_count_stops_run_at_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = frontdesk("run", env=base_env(tmp_path, FRONTDESK_PARSE_WORKERS="two"), cwd=tmp_path)
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "FRONTDESK_PARSE_WORKERS" in result.stderr


def test_worker_without_kafka_says_what_to_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = frontdesk("worker", env=base_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "FRONTDESK_KAFKA_BOOTSTRAP" in result.stderr


def test_migrate_brings_a_fresh_sqlite_database_to_head(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = base_env(tmp_path)
    assert frontdesk("migrate", "--check", env=env, cwd=tmp_path).returncode == 1
    result = frontdesk("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "migrate.done" in result.stderr
    assert frontdesk("migrate", "--check", env=env, cwd=tmp_path).returncode == 0
    assert (tmp_path / "var" / "frontdesk.db").exists()


def test_on_postgresql_run_refuses_an_unmigrated_schema_until_migrate(tmp_path, empty_postgres) -> None:  # type: ignore[no-untyped-def]
    env = base_env(tmp_path, FRONTDESK_DATABASE_URL=empty_postgres,
                   FRONTDESK_HTTP_LISTEN="127.0.0.1:0", FRONTDESK_SMTP_LISTEN="127.0.0.1:0")
    refused = frontdesk("run", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "frontdesk migrate" in refused.stdout + refused.stderr
    assert frontdesk("migrate", env=env, cwd=tmp_path).returncode == 0
    assert frontdesk("migrate", "--check", env=env, cwd=tmp_path).returncode == 0


async def _quarantine_one(database_url: str, blob_dir: Path) -> int:
    """A mail the pipeline once failed on, stored as the quarantine stores it."""
    raw = (f"From: Ada <ada@example.com>\r\nTo: {EXAMPLE_SUPPORT_ADDRESS}\r\nSubject: Replayed request\r\n"
           "Message-ID: <replay-1@example.com>\r\n\r\nPlease help.\r\n").encode()
    digest = await BlobStore(blob_dir).put(raw)
    envelope = Envelope(channel="email", source="smtp", mail_from="ada@example.com",
                        rcpt_tos=(EXAMPLE_SUPPORT_ADDRESS,), channel_key=EXAMPLE_SUPPORT_ADDRESS)
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            item = QuarantinedItem(channel="email", source="smtp", blob=digest, cause="store_failed",
                                   detail="the database hiccuped", envelope=envelope.to_dict())
            session.add(item)
            await session.flush()
            return item.id
    finally:
        await engine.dispose()


async def _ticket_names(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.scalars(select(Ticket.name))).all())
    finally:
        await engine.dispose()


def test_quarantine_list_and_replay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = base_env(tmp_path)
    url = asyncio.run(_installed(env))
    item_id = asyncio.run(_quarantine_one(url, tmp_path / "var" / "blobs"))
    listed = frontdesk("quarantine", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0
    assert f"{item_id}\t" in listed.stdout and "store_failed" in listed.stdout

    replayed = frontdesk("quarantine", "replay", str(item_id), env=env, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "ticket_created" in replayed.stdout
    assert asyncio.run(_ticket_names(url)) == ["Replayed request"]
    after = frontdesk("quarantine", "list", env=env, cwd=tmp_path)
    assert "the quarantine is empty" in after.stdout

    missing = frontdesk("quarantine", "replay", "999", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no quarantined item 999" in missing.stdout


CHAT_CONFIG = """
[[channels.chat]]
slug = "website-chat"
secret = "chat-secret"
callback_url = "http://127.0.0.1:9/replies"
"""


async def _quarantine_chat_message(database_url: str, blob_dir: Path, config: Path, env: dict[str, str]) -> int:
    """A chat message the pipeline refused once, kept with its whole stored payload.

    The daemon ran with this configuration before, so the chat channel exists.
    """
    from frontdesk.channels.webhooks.config import parse_webhook_config
    from frontdesk.channels.webhooks.sync import sync_webhook_channels

    raw = (b'{"session_id": "sess-9", "message_id": "m-1", "visitor": {"id": "v-9", "name": "Ada"},'
           b' "text": "My invoice is wrong", "timestamp": "2026-11-23T10:00:00Z"}')
    digest = await BlobStore(blob_dir).put(raw)
    envelope = Envelope(channel="chat", source="webhook:chat/website-chat", channel_key="website-chat")
    engine = create_engine(database_url)
    try:
        await sync_webhook_channels(session_factory(engine), parse_webhook_config(load_settings(config, environ=env)))
        async with session_factory(engine).begin() as session:
            item = QuarantinedItem(channel="chat", source=envelope.source, blob=digest, cause="store_failed",
                                   detail="the database hiccuped",
                                   envelope={**envelope.to_dict(), "external_id": "chat:website-chat:sess-9:m-1"})
            session.add(item)
            await session.flush()
            return item.id
    finally:
        await engine.dispose()


def test_quarantine_replays_a_webhook_item_with_the_channel_configuration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = base_env(tmp_path)
    config = tmp_path / "frontdesk.toml"
    config.write_text(CHAT_CONFIG)
    url = asyncio.run(_installed(env))
    item_id = asyncio.run(_quarantine_chat_message(url, tmp_path / "var" / "blobs", config, env))
    replayed = frontdesk("quarantine", "replay", str(item_id), env={**env, "FRONTDESK_CONFIG": str(config)}, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "ticket_created" in replayed.stdout
    assert asyncio.run(_ticket_names(url)) == ["My invoice is wrong"]


async def _installed(env: dict[str, str]) -> str:
    """What a first ``frontdesk run`` leaves behind: the migrated SQLite database with its defaults."""
    settings = load_settings(environ=env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        await ensure_defaults(session_factory(engine), settings)
    finally:
        await engine.dispose()
    return settings.database_url


def test_config_export_then_apply_changes_nothing_and_bad_files_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = base_env(tmp_path)
    asyncio.run(_installed(env))
    exported = frontdesk("config", "export", "-o", str(tmp_path / "admin.yaml"), env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "admin.yaml").read_text()
    assert "support" in text and "waiting_on_contact" in text

    (tmp_path / "admin.yaml").write_text(text.replace("Waiting on contact", "Waiting on the customer"))
    dry = frontdesk("config", "apply", str(tmp_path / "admin.yaml"), "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "+" in dry.stdout and "Waiting on the customer" in dry.stdout
    applied = frontdesk("config", "apply", str(tmp_path / "admin.yaml"), env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    again = frontdesk("config", "apply", str(tmp_path / "admin.yaml"), env=env, cwd=tmp_path)
    assert again.returncode == 0 and "no changes" in again.stdout

    (tmp_path / "broken.yaml").write_text("- just a list\n")
    refused = frontdesk("config", "apply", str(tmp_path / "broken.yaml"), env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "file_unreadable" in refused.stderr


EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "frontdesk.example.toml"


def test_the_example_config_states_the_true_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"FRONTDESK_DATA_DIR": str(tmp_path / "var")}
    documented, built_in = load_settings(EXAMPLE_CONFIG, environ=env), load_settings(environ=env)
    for name in ("data_dir", "database_url", "auto_migrate", "smtp", "http", "support_addresses", "imap_mailboxes",
                 "imap_lease_seconds", "smarthost", "from_address", "kafka_bootstrap", "max_pipelines", "log_level", "log_format"):
        assert getattr(documented, name) == getattr(built_in, name), name


def test_every_optional_setting_in_the_example_config_parses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from frontdesk.channels.webhooks.config import parse_webhook_config

    # "# key = value" and "# [table]" lines are the optional settings; prose comments are neither.
    text = re.sub(r"(?m)^# (?=\[|[a-z_]+ = )", "", EXAMPLE_CONFIG.read_text())
    everything = tmp_path / "everything.toml"
    everything.write_text(text)
    settings = load_settings(everything, environ={})
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.api_token and settings.smarthost and settings.smarthost.password
    assert settings.kafka_bootstrap and settings.smtp.tls_cert
    assert [a.address for a in settings.support_addresses] == ["support@example.test", "billing@example.test"]
    assert [m.name for m in settings.imap_mailboxes] == ["helpdesk"]
    webhooks = parse_webhook_config(settings)
    assert [p.page_id for p in webhooks.messenger] == ["123456789012345"]
    assert [c.slug for c in webhooks.chat] == ["website-chat"]
    [form] = webhooks.forms
    assert form.fields["order"] == "ticket.custom.order_number" and form.rate_limit is not None


def test_the_environment_overrides_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "frontdesk.toml"
    config.write_text(
        'data_dir = "from-file"\n'
        '[database]\nurl = "sqlite+aiosqlite:///from-file.db"\n'
        '[smtp]\nlisten = "127.0.0.1:25"\n[http]\nlisten = "127.0.0.1:80"\n[api]\ntoken = "file-token"\n'
        '[[support_addresses]]\naddress = "file@acme.test"\n'
    )
    from_file = load_settings(config, environ={"FRONTDESK_SECRET_KEY": "k"})
    assert (from_file.smtp.port, from_file.http.port, from_file.api_token.reveal()) == (25, 80, "file-token")
    env = {
        "FRONTDESK_SECRET_KEY": "k",
        "FRONTDESK_DATA_DIR": str(tmp_path / "from-env"),
        "FRONTDESK_DATABASE_URL": "postgresql+asyncpg://fd@db.internal/fd",
        "FRONTDESK_SMTP_LISTEN": "0.0.0.0:2526",
        "FRONTDESK_HTTP_LISTEN": "[::1]:8081",
        "FRONTDESK_SUPPORT_ADDRESSES": "Help@Acme.test, billing@acme.test",
        "FRONTDESK_API_TOKEN": "env-token",
    }
    settings = load_settings(config, environ=env)
    assert settings.data_dir == tmp_path / "from-env"
    assert settings.database_url == "postgresql+asyncpg://fd@db.internal/fd"
    assert (settings.smtp.host, settings.smtp.port) == ("0.0.0.0", 2526)
    assert (settings.http.host, settings.http.port) == ("::1", 8081)
    assert [a.address for a in settings.support_addresses] == ["help@acme.test", "billing@acme.test"]
    assert settings.api_token.reveal() == "env-token"
    assert settings.used_defaults == ()


async def _dead_letter_for_a_new_ticket(env: dict[str, str]) -> int:
    """Ingest one mail, then file its ticket.created event as a dead letter, as automation would after N failures."""
    settings = load_settings(environ=env)
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        ctx = IngestContext(settings=settings, sessions=sessions, blobs=BlobStore(settings.blob_dir))
        raw = (f"From: Ada <ada@example.com>\r\nTo: {EXAMPLE_SUPPORT_ADDRESS}\r\nSubject: Printer\r\n"
               "Message-ID: <dl-1@example.com>\r\n\r\nIt is on fire.\r\n").encode()
        envelope = Envelope(channel="email", source="smtp", rcpt_tos=(EXAMPLE_SUPPORT_ADDRESS,),
                            channel_key=EXAMPLE_SUPPORT_ADDRESS)
        assert (await ingest_email(ctx, raw, envelope)).kind == "ticket_created"
        async with sessions.begin() as session:
            created = await session.scalar(select(OutboxEvent).where(OutboxEvent.type == "ticket.created"))
            letter = DeadLetter(event_id=created.event_id, body=created.body, error="RuntimeError('boom')",
                                attempts=5)
            session.add(letter)
            await session.flush()
            return letter.id
    finally:
        await engine.dispose()


async def _deliveries(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return [tuple(row) for row in (await session.execute(select(Delivery.kind, Delivery.recipient))).all()]
    finally:
        await engine.dispose()


def test_dead_letters_replay_in_embedded_mode_runs_the_automation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = base_env(tmp_path)
    url = asyncio.run(_installed(env))
    letter_id = asyncio.run(_dead_letter_for_a_new_ticket(env))
    listed = frontdesk("dead-letters", "list", env=env, cwd=tmp_path)
    assert f"{letter_id}\t" in listed.stdout and "ticket.created" in listed.stdout and "boom" in listed.stdout

    replayed = frontdesk("dead-letters", "replay", str(letter_id), env=env, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"{letter_id}\tok" in replayed.stdout
    # The Support pipeline's "New" action chain sends the Ticket received email.
    assert ("template", "ada@example.com") in asyncio.run(_deliveries(url))
    assert "no dead letters" in frontdesk("dead-letters", "list", env=env, cwd=tmp_path).stdout


def test_the_worker_can_deliver_replies_on_every_channel(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The worker's delivery loop may claim a Messenger or chat reply: it must know how to send it."""
    import subprocess
    import sys

    config = tmp_path / "frontdesk.toml"
    config.write_text(CHAT_CONFIG)
    probe = ("import os; from frontdesk.settings import load_settings; "
             "from frontdesk.storage.database import create_engine, session_factory; "
             "from frontdesk.runtime.worker import automation_with_outbound; "
             "s = load_settings(os.environ['FRONTDESK_CONFIG']); "
             "_, (start_delivery_loop, *_) = automation_with_outbound(s, session_factory(create_engine(s.database_url))); "
             "print(sorted(start_delivery_loop.__self__.deliverers))")
    env = {**base_env(tmp_path), "FRONTDESK_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['chat', 'email', 'messenger']"
