"""A mail with no From header still has a sender: the SMTP envelope's."""

from frontdesk.ingest.message import Envelope
from frontdesk.ingest.parse_email import parse_email

NO_FROM = b"To: support@acme.test\r\nSubject: Printer on fire\r\nMessage-ID: <nf-1@customer.test>\r\n\r\nHelp!\r\n"


def test_the_envelope_sender_stands_in_for_a_missing_from() -> None:
    envelope = Envelope(channel="email", source="smtp", mail_from="Ann@Customer.test",
                        rcpt_tos=("support@acme.test",))
    message = parse_email(NO_FROM, envelope=envelope, raw_blob="0" * 64)
    assert message.sender_address == "ann@customer.test"
    assert "from: taken from the envelope sender" in message.defects


def test_a_null_reverse_path_gives_no_sender() -> None:
    # Bounces arrive with MAIL FROM:<>; nobody to answer.
    message = parse_email(NO_FROM, envelope=Envelope(channel="email", source="smtp", mail_from=""), raw_blob="0" * 64)
    assert message.sender_address is None


def test_a_from_header_wins_over_the_envelope() -> None:
    raw = b"From: Bob <bob@customer.test>\r\n" + NO_FROM
    envelope = Envelope(channel="email", source="smtp", mail_from="bounces@relay.test")
    assert parse_email(raw, envelope=envelope, raw_blob="0" * 64).sender_address == "bob@customer.test"
