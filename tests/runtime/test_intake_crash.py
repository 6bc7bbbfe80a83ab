"""Mail answered 250 survives a kill -9 before processing and is processed exactly once after the restart.

The first ``frontdesk run`` holds its email intake (commits accepted mail,
never processes it: ``FRONTDESK_TEST_HOLD_EMAIL_INTAKE``), takes mail over
real SMTP and is killed with SIGKILL; a second one on the same database
processes what the first accepted, in arrival order, and nothing twice.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from daemon_process import DaemonProcess, base_env

TOKEN = "intake-crash-token"
SUPPORT = "support@acme.test"


def mail(message_id: str, subject: str, *, in_reply_to: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Customer <ann@customer.test>"
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = f"<{message_id}>"
    message["Date"] = "Wed, 02 Dec 2026 03:00:00 +0000"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        message["References"] = f"<{in_reply_to}>"
    message.set_content(f"{subject}\n")
    return message.as_bytes().replace(b"\n", b"\r\n")


def send(port: int, raw: bytes) -> tuple[int, str]:
    """The answer to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("ann@customer.test")
        client.rcpt(SUPPORT)
        code, text = client.data(raw)
    return code, text.decode()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_mail_accepted_before_a_kill_9_is_processed_exactly_once_after_restart(
        database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = base_env(tmp_path, FRONTDESK_SUPPORT_ADDRESSES=SUPPORT, FRONTDESK_API_TOKEN=TOKEN,
                   FRONTDESK_SECRET_KEY="intake-crash-secret")
    if database == "postgresql":
        env.update(FRONTDESK_DATABASE_URL=request.getfixturevalue("empty_postgres"), FRONTDESK_AUTO_MIGRATE="true")
    first = mail("first@customer.test", "Printer on fire")
    mails = [first, mail("second@customer.test", "Scanner jammed"),
             mail("reply@customer.test", "Re: Printer on fire", in_reply_to="first@customer.test"),
             first]  # a redelivery, byte for byte (say our first 250 was lost)

    held = DaemonProcess(cwd=tmp_path, env=dict(env, FRONTDESK_TEST_HOLD_EMAIL_INTAKE="1"))
    held.start()
    try:
        held.wait_until_healthy()
        answers = [send(held.smtp_port, raw) for raw in mails]
        assert [code for code, _ in answers] == [250] * 4, answers
        assert all(text.startswith("2.0.0 OK queued as ") for _, text in answers)
        assert held.intake_states() == {"pending": 4}  # durable, not processed
    finally:
        held.kill()  # SIGKILL: no shutdown, nothing flushed

    daemon = DaemonProcess(cwd=tmp_path, env=env)
    daemon.start()
    try:
        daemon.wait_until_healthy()
        assert daemon.wait_until_intake_processed() == {"processed": 4}
        status, listing = daemon.get_json("/api/v1/tickets?sort=created_at", token=TOKEN)
        assert status == 200, listing
        tickets = {ticket["name"]: ticket for ticket in listing["tickets"]}
        assert sorted(tickets) == ["Printer on fire", "Scanner jammed"], listing
        _, printer = daemon.get_json(f"/api/v1/tickets/{tickets['Printer on fire']['id']}", token=TOKEN)
        # Processed in arrival order: the reply threads onto its parent; the redelivery adds nothing.
        assert [m["external_id"] for m in printer["messages"] if m["direction"] == "inbound"] == [
            "first@customer.test", "reply@customer.test"]
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
