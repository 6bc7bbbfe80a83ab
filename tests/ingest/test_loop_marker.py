"""Our automated mail coming back is screened as a loop even when its Message-ID was rewritten."""

from frontdesk.model.messages import LOOP
from frontdesk.settings import load_settings
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.parse_email import parse_email
from frontdesk.ingest.screening import screen
from _ingest_mail import ours
from frontdesk.outbound.email.compose import OutboundEmail, compose


def _settings(tmp_path):  # type: ignore[no-untyped-def]
    return load_settings(environ={"FRONTDESK_DATA_DIR": str(tmp_path), "FRONTDESK_SECRET_KEY": "k",
                                  "FRONTDESK_SUPPORT_ADDRESSES": "support@acme.test"})


def _returned(mail: OutboundEmail) -> bytes:
    message = compose(mail)
    # A relay that rewrites the Message-ID, then an autoresponder-style
    # forwarder that sends it back from another address.
    del message["Message-ID"]
    message["Message-ID"] = "<rewritten-by-relay@mx.customer.test>"
    del message["From"]
    message["From"] = "forwarder@customer.test"
    return message.as_bytes()


def test_automated_mail_is_recognised_by_its_marker(tmp_path):  # type: ignore[no-untyped-def]
    mail = OutboundEmail(from_address="support@acme.test", to=("ann@customer.test",), subject="Ticket received",
                         text="We got it.", message_id="abc.123@acme.test", auto_submitted="auto-replied")
    raw = _returned(mail)
    parsed = parse_email(raw, envelope=Envelope(channel="email", source="smtp"), raw_blob="0" * 64)
    screened = screen(parsed, ours(_settings(tmp_path)))
    assert screened.screening == LOOP
    assert "X-Frontdesk-Automated" in (screened.screening_reason or "")


def test_an_agents_personal_reply_carries_no_marker(tmp_path):  # type: ignore[no-untyped-def]
    mail = OutboundEmail(from_address="support@acme.test", to=("ann@customer.test",), subject="Re: printer",
                         text="On my way.", message_id="def.456@acme.test")
    assert "X-Frontdesk-Automated" not in compose(mail)
