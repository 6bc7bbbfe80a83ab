"""``frontdesk run`` as a real process: zero-config start, one email in over SMTP, out over HTTP, clean SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import smtplib
import socket
import time
from dataclasses import replace
from email.message import EmailMessage
from typing import Iterator

import pytest
import structlog

from daemon_process import DaemonProcess, alive, base_env, descendants
from frontdesk.settings import EXAMPLE_SUPPORT_ADDRESS, Secret, load_settings
from frontdesk.runtime.logs import configure_logging

OPERATOR_TOKEN = "operator-token-6f1d3c9a8b"
SMARTHOST_PASSWORD = "smarthost-pass-0a7e55d2"
SECRET_KEY = "reply-token-key-93b1f2"
IMAP_PASSWORD = "imap-pass-c41e8d70"


@pytest.fixture
def daemon(tmp_path) -> Iterator[DaemonProcess]:  # type: ignore[no-untyped-def]
    config = tmp_path / "frontdesk.toml"
    # A mailbox nobody serves: the poller fails to connect, and must not log the password doing so.
    config.write_text(
        "[[imap.mailboxes]]\n"
        'name = "helpdesk"\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n'
        f'username = "helpdesk"\npassword = "{IMAP_PASSWORD}"\npoll_interval = 3600\n'
    )
    env = base_env(
        tmp_path,
        FRONTDESK_CONFIG=str(config),
        FRONTDESK_API_TOKEN=OPERATOR_TOKEN,
        FRONTDESK_SECRET_KEY=SECRET_KEY,
        FRONTDESK_SMARTHOST="127.0.0.1:9",
        FRONTDESK_SMARTHOST_USER="relay",
        FRONTDESK_SMARTHOST_PASSWORD=SMARTHOST_PASSWORD,
        FRONTDESK_LOG_LEVEL="DEBUG",
        FRONTDESK_PARSE_WORKERS="1",
    )
    process = DaemonProcess(cwd=tmp_path, env=env)
    process.start()
    try:
        yield process
    finally:
        process.kill()


def test_zero_config_daemon_turns_an_email_into_a_ticket_and_stops_cleanly(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon.wait_until_healthy()
    # The parse pool runs from the start (a forkserver and its one worker), not from the first busy batch.
    assert [e["workers"] for e in daemon.events() if e["event"] == "parse_pool.started"] == [1]
    assert len(descendants(daemon.process.pid)) >= 2

    message = EmailMessage()
    message["From"] = "Ada Lovelace <ada@example.com>"
    message["To"] = EXAMPLE_SUPPORT_ADDRESS
    message["Subject"] = "The printer is on fire"
    message["Message-ID"] = "<printer-1@example.com>"
    message.set_content("Hello,\n\nthe printer in room 4 is on fire.\n\nAda\n")
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(message)
    assert refused == {}
    assert daemon.wait_until_intake_processed() == {"processed": 1}  # processed behind the 250

    status, listing = daemon.get_json("/api/v1/tickets", token=OPERATOR_TOKEN)
    assert status == 200, listing
    assert listing["total"] == 1
    [ticket] = listing["tickets"]
    assert ticket["name"] == "The printer is on fire"
    assert ticket["contact"]["email"] == "ada@example.com"
    status, detail = daemon.get_json(f"/api/v1/tickets/{ticket['id']}", token=OPERATOR_TOKEN)
    # Inbound only: the embedded automation may already have answered with "Ticket received".
    assert [m["external_id"] for m in detail["messages"] if m["direction"] == "inbound"] == ["printer-1@example.com"]

    status, _ = daemon.get_json("/api/v1/tickets")
    assert status == 401
    status, ready = daemon.get_json("/readyz")
    assert ready["checks"]["database"]["ready"] is True
    assert ready["checks"]["smtp"]["ready"] is True
    # Nothing serves the configured mailbox, so the daemon is up but not ready, and says why.
    assert status == 503
    assert ready["checks"]["imap:helpdesk"]["ready"] is False
    assert ready["checks"]["imap:helpdesk"]["state"] in ("starting", "connecting", "backoff")

    pool = descendants(daemon.process.pid)
    assert daemon.terminate() == 0
    # Graceful shutdown stopped the worker; the forkserver and resource tracker follow their parent out.
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool and not [pid for pid in pool if alive(pid)]

    events = daemon.events()
    names = [event["event"] for event in events]
    assert "frontdesk.stopped" in names
    defaults = {event["setting"]: event["value"] for event in events if event["event"] == "defaults.used"}
    assert EXAMPLE_SUPPORT_ADDRESS in defaults["support_addresses"]
    assert str((tmp_path / "var" / "frontdesk.db").resolve()) in defaults["database"]
    assert (tmp_path / "var" / "frontdesk.db").exists()
    # The one SMTP delivery and the HTTP calls each left a log line.
    assert any(e["event"] == "http.request" and e.get("route") == "/api/v1/tickets" for e in events)

    log = daemon.log_text()
    for secret in (OPERATOR_TOKEN, SMARTHOST_PASSWORD, SECRET_KEY, IMAP_PASSWORD):
        assert secret not in log


def test_without_an_operator_token_the_daemon_warns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon = DaemonProcess(cwd=tmp_path, env=base_env(tmp_path))
    daemon.start()
    try:
        daemon.wait_until_healthy()
        status, body = daemon.get_json("/api/v1/tickets", token="anything")
        assert status == 401 and body["error"]["code"] == "unauthenticated"
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    warnings = [e for e in daemon.events() if e["event"] == "api.no_operator_token"]
    assert warnings and warnings[0]["level"] == "warning"
    assert "FRONTDESK_API_TOKEN" in warnings[0]["message"]


def test_port_already_taken_is_a_clear_startup_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon = DaemonProcess(cwd=tmp_path, env=base_env(tmp_path))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", daemon.http_port))
        squatter.listen()
        daemon.start()
        try:
            assert daemon.process.wait(timeout=120) == 2
        finally:
            daemon.kill()
    [failure] = [e for e in daemon.events() if e["event"] == "frontdesk.cannot_start"]
    assert f"cannot listen for HTTP on 127.0.0.1:{daemon.http_port}" in failure["reason"]
    assert "frontdesk.stopped" in [e["event"] for e in daemon.events()]  # what did start was stopped again


def captured_log(settings, emit) -> str:  # type: ignore[no-untyped-def]
    """What ``emit()`` writes once ``configure_logging(settings)`` is in place; global logging is restored after."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging(settings, stream=stream)
        emit()
    finally:
        structlog.reset_defaults()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    return stream.getvalue()


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_the_log_masks_configured_secrets_whoever_logs_them(tmp_path, log_format) -> None:  # type: ignore[no-untyped-def]
    settings = replace(load_settings(environ={"FRONTDESK_DATA_DIR": str(tmp_path / "var")}),
                       api_token=Secret(OPERATOR_TOKEN), secret_key=Secret(SECRET_KEY), log_format=log_format)

    def emit() -> None:
        logging.getLogger("some.library").warning("connecting with Authorization: Bearer %s", OPERATOR_TOKEN)
        structlog.get_logger("frontdesk.test").info("oops", key=SECRET_KEY, token=settings.api_token)

    output = captured_log(settings, emit)
    assert OPERATOR_TOKEN not in output and SECRET_KEY not in output
    assert "connecting with Authorization: Bearer ***" in output and "oops" in output
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines()]
        assert [line["level"] for line in lines] == ["warning", "info"]
        assert lines[1]["key"] == "***" and lines[1]["token"] == "Secret('***')"
    else:
        assert not output.lstrip().startswith("{")


def test_an_unreachable_database_stops_start_up_with_exit_3_and_no_password_in_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    password = "db-pass-5e0c9b71"
    env = base_env(tmp_path, FRONTDESK_DATABASE_URL=f"postgresql+asyncpg://frontdesk:{password}@127.0.0.1:9/frontdesk")
    daemon = DaemonProcess(cwd=tmp_path, env=env)
    daemon.start()
    try:
        assert daemon.process.wait(timeout=120) == 3
    finally:
        daemon.kill()
    [failure] = [e for e in daemon.events() if e["event"] == "frontdesk.cannot_start"]
    assert "storage is unavailable" in failure["reason"]
    assert password not in daemon.log_text()
