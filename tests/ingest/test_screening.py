"""Screening verdicts on real auto replies, bounces and reports, and on hand-built loop cases."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from _email_corpus import EMAIL, parsed
from frontdesk.model.messages import ACCEPTED, AUTO_REPLY, BOUNCE, LOOP, REPORT
from frontdesk.reply_tokens import make_message_id
from frontdesk.settings import Settings, load_settings
from frontdesk.ingest.message import Envelope, InboundMessage
from frontdesk.ingest.parse_email import parse_email
from frontdesk.ingest.screening import RULES, screen
from _ingest_mail import ours

CHATWOOT = EMAIL / "chatwoot/spec/fixtures/files"
SISIMAI = EMAIL / "sisimai-set-of-emails/maildir"
MIMEKIT = EMAIL / "mimekit/UnitTests/TestData/messages"
SECRET = "screening-test-key"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        environ={
            "FRONTDESK_DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "FRONTDESK_SECRET_KEY": SECRET,
            "FRONTDESK_SUPPORT_ADDRESSES": "support@example.test,billing@example.test",
        }
    )


def parse(raw: bytes) -> InboundMessage:
    return parse_email(raw, envelope=Envelope(channel="email", source="smtp"), raw_blob="e" * 64)


def screened(path: Path, settings: Settings) -> InboundMessage:
    message = parsed(path)
    assert isinstance(message, InboundMessage), message
    return screen(message, ours(settings))


def mail(headers: str, body: str = "Hello, I need help with my order.\n") -> bytes:
    return (headers.strip() + "\n\n" + body).replace("\n", "\r\n").encode()


def test_rules_are_named_and_described() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        assert rule.description and rule.verdict in (AUTO_REPLY, BOUNCE, LOOP, REPORT)


# --- Chatwoot fixtures -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "verdict", "reason"),
    [
        ("auto_reply.eml", AUTO_REPLY, "vendor_auto_reply_headers: X-Autoreply: yes"),
        ("auto_reply_with_auto_submitted.eml", AUTO_REPLY, "auto_submitted: Auto-Submitted: auto-generated"),
        ("bounced_gmail.eml", BOUNCE, "delivery_status_report: Content-Type: multipart/report; report-type=delivery-status"),
        ("bounced_with_no_from.eml", BOUNCE, "delivery_status_report: Content-Type: multipart/report; report-type=delivery-status"),
        ("support.eml", ACCEPTED, None),
        ("forwarder_email.eml", ACCEPTED, None),
        ("reply.eml", ACCEPTED, None),
    ],
)
def test_chatwoot_fixtures(name: str, verdict: str, reason: str | None, settings: Settings) -> None:
    message = screened(CHATWOOT / name, settings)
    assert (message.screening, message.screening_reason) == (verdict, reason)


def test_bounce_links_to_the_original_message_id(settings: Settings) -> None:
    message = screened(CHATWOOT / "bounced_gmail.eml", settings)
    assert message.bounced_refs == ["conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com"]
    # The attached original was cut before its Message-ID: nothing to link, nothing invented.
    assert screened(CHATWOOT / "bounced_with_no_from.eml", settings).bounced_refs == []


# --- sisimai: 832 files ----------------------------------------------------


def sisimai(prefixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in SISIMAI.glob("*/*.eml") if p.name.startswith(prefixes))


# Bounces we do not flag as BOUNCE, and why (documented in docs/ingest-parsing.md).
BOUNCE_GAPS = {
    "bsd/lhost-amazonses-11.eml": REPORT,  # SES complaint notification (SNS JSON), correctly a report
    "bsd/lhost-amazonses-12.eml": REPORT,  # SES delivery notification, correctly a report
    "bsd/lhost-amazonses-13.eml": REPORT,
    "bsd/lhost-fml-02.eml": ACCEPTED,  # mailing-list manager's "not a member" notice
    "bsd/lhost-fml-03.eml": ACCEPTED,  # mailing-list manager's loop alert
    "bsd/lhost-postfix-75.eml": AUTO_REPLY,  # postmaster notice from MAILER-DAEMON, not a bounce
    "bsd/lhost-sendmail-14.eml": ACCEPTED,  # a person forwarding a bounce ("Fwd: Returned mail")
    "err/make-test-36.eml": ACCEPTED,  # the same kind of forwarded bounce
}


@pytest.fixture(scope="module")
def sisimai_bounces(settings: Settings) -> dict[str, InboundMessage]:
    paths = sisimai(("lhost-", "rhost-", "rfc3464-", "make-test-"))
    return {p.relative_to(SISIMAI).as_posix(): screened(p, settings) for p in paths}


def test_sisimai_bounces_are_flagged(sisimai_bounces: dict[str, InboundMessage]) -> None:
    verdicts = Counter(m.screening for m in sisimai_bounces.values())
    assert len(sisimai_bounces) == 802
    assert verdicts[BOUNCE] == 794  # 99 %
    not_bounces = {name: m.screening for name, m in sisimai_bounces.items() if m.screening != BOUNCE}
    assert not_bounces == BOUNCE_GAPS


def test_most_sisimai_bounces_name_the_bounced_message(sisimai_bounces: dict[str, InboundMessage]) -> None:
    with_refs = [m for m in sisimai_bounces.values() if m.screening == BOUNCE and m.bounced_refs]
    assert len(with_refs) == 657
    exim = sisimai_bounces["bsd/lhost-exim-01.eml"]
    assert exim.bounced_refs[0] == "E1P1ce6-000Egt-GZ@e1.example.org"  # copied into the text body
    assert exim.external_id not in exim.bounced_refs


def test_sisimai_vacation_replies_are_auto_replies(settings: Settings) -> None:
    paths = sisimai(("rfc3834-",))
    assert len(paths) == 8
    reasons = {p.name: screened(p, settings).screening_reason for p in paths}
    assert all(screened(p, settings).screening == AUTO_REPLY for p in paths)
    assert reasons["rfc3834-03.eml"] == "vendor_auto_reply_headers: X-Apple-Action: VACATION"
    assert reasons["rfc3834-02.eml"] == "vendor_auto_reply_headers: X-Auto-Response-Suppress: All"


def test_sisimai_abuse_reports_are_reports(settings: Settings) -> None:
    paths = sisimai(("arf-",))
    assert len(paths) == 19
    verdicts = {p.relative_to(SISIMAI).as_posix(): screened(p, settings).screening for p in paths}
    # iCloud's "unsubscribe" complaint is sent as an auto reply, without ARF structure.
    assert {n: v for n, v in verdicts.items() if v != REPORT} == {"bsd/arf-26.eml": AUTO_REPLY}


def test_sisimai_non_bounces(settings: Settings) -> None:
    verdicts = {p.name: screened(p, settings).screening for p in sorted((SISIMAI / "not").glob("*.eml"))}
    # rb-issue-368 is in sisimai's "not" folder for a parser bug, but it is a bounce.
    assert verdicts == {"is-not-bounce-01.eml": ACCEPTED, "is-not-bounce-02.eml": ACCEPTED, "rb-issue-368-bug.eml": BOUNCE}


# --- MimeKit reports ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("delivery-status.txt", BOUNCE),
        ("disposition-notification.txt", REPORT),
        ("feedback-report.txt", REPORT),
        ("japanese.txt", ACCEPTED),
    ],
)
def test_mimekit_reports(name: str, verdict: str, settings: Settings) -> None:
    assert screened(MIMEKIT / name, settings).screening == verdict


def test_delivery_success_notice_is_a_report_not_a_bounce(settings: Settings) -> None:
    raw = mail(
        """
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: support@example.test
Subject: Successful Mail Delivery Report
Content-Type: multipart/report; report-type=delivery-status; boundary=B
""",
        "--B\nContent-Type: text/plain\n\nYour message was delivered.\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        "Final-Recipient: rfc822; bob@example.org\nAction: delivered\nStatus: 2.0.0\n--B--\n",
    )
    message = screen(parse(raw), ours(settings))
    assert message.screening == REPORT
    assert message.screening_reason == "delivery_success_report: delivery status notification with Action: delivered only"
    assert message.bounced_refs == []


def test_plain_text_bounce_names_the_original_from_its_copied_headers(settings: Settings) -> None:
    raw = mail(
        """
From: MAILER-DAEMON@mx.example.org
To: support@example.test
Subject: failure notice
Message-ID: <bounce-1@mx.example.org>
""",
        "Sorry, I couldn't deliver your message.\n\n--- Below this line is a copy of the message.\n\n"
        "From: support@example.test\nMessage-ID:\n <fd.42.abcdefgh.signature-signature@example.test>\nSubject: Re: order\n",
    )
    message = screen(parse(raw), ours(settings))
    assert message.screening == BOUNCE
    assert message.screening_reason == "mailer_daemon_bounce: From: mailer-daemon@mx.example.org and subject 'failure notice'"
    assert message.bounced_refs == ["fd.42.abcdefgh.signature-signature@example.test"]


def test_bounces_are_not_forwards(sisimai_bounces: dict[str, InboundMessage]) -> None:
    # Non-RFC 3464 bounces attach the original as message/rfc822, which parse alone reads as a forward.
    assert not any(m.is_forwarded for m in sisimai_bounces.values() if m.screening == BOUNCE)


def test_ses_notifications_mailed_through_sns(sisimai_bounces: dict[str, InboundMessage]) -> None:
    reasons = {n: sisimai_bounces[f"bsd/lhost-amazonses-{n}.eml"].screening_reason for n in ("09", "10", "11", "12")}
    assert reasons == {
        "09": 'ses_bounce_notification: SES notification with "notificationType":"Bounce"',  # bare JSON
        "10": 'ses_bounce_notification: SES notification with "notificationType":"Bounce"',  # inside SNS's envelope
        "11": 'ses_notification: SES notification with "notificationType":"Complaint"',
        "12": 'ses_notification: SES notification with "notificationType":"Delivery"',
    }


def test_bounces_without_dsn_structure_are_read_from_their_text(sisimai_bounces: dict[str, InboundMessage]) -> None:
    reasons = {n: sisimai_bounces[n].screening_reason for n in ("bsd/lhost-kddi-02.eml", "bsd/lhost-exchange2003-03.eml")}
    assert reasons == {
        # Subject "Mail", sent with a null return path.
        "bsd/lhost-kddi-02.eml": "mailer_daemon_bounce: From: no-reply@00000000000000.dion.ne.jp, Return-Path: <> "
        "and the text says 'Could not be delivered'",
        # Subject "E", from postmaster.
        "bsd/lhost-exchange2003-03.eml": "mailer_daemon_bounce: From: postmaster@example.net, Return-Path: <> "
        "and the text says 'did not reach the following recipient'",
    }


def test_bounce_wins_over_its_auto_submitted_header(settings: Settings) -> None:
    message = screened(SISIMAI / "bsd" / "lhost-postfix-01.eml", settings)
    assert message.screening == BOUNCE


# --- auto replies ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "verdict", "reason"),
    [
        ("Auto-Submitted: no", ACCEPTED, None),
        ("Auto-Submitted: auto-replied (vacation)", AUTO_REPLY, "auto_submitted: Auto-Submitted: auto-replied (vacation)"),
        ("X-Autorespond: vacation", AUTO_REPLY, "vendor_auto_reply_headers: X-Autorespond: vacation"),
        ("X-Autogenerated: Reply", AUTO_REPLY, "vendor_auto_reply_headers: X-Autogenerated: Reply"),
        ("X-Autogenerated: Forward", ACCEPTED, None),
        ("X-Auto-Response-Suppress: OOF, AutoReply", AUTO_REPLY, "vendor_auto_reply_headers: X-Auto-Response-Suppress: OOF, AutoReply"),
        ("X-Mailer: Vacation Responder 2.1", AUTO_REPLY, "vendor_auto_reply_headers: X-Mailer: Vacation Responder 2.1"),
        ("X-Mailer: Apple Mail (2.1244.3)", ACCEPTED, None),
        ("Precedence: bulk", AUTO_REPLY, "bulk_precedence: Precedence: bulk"),
        ("Precedence: junk", AUTO_REPLY, "bulk_precedence: Precedence: junk"),
        ("Precedence: list\nList-Id: <users.lists.example.org>", AUTO_REPLY, "bulk_precedence: Precedence: list"),
        # A Google Group used as our support address relays customers' mail as a list.
        ("Precedence: list\nList-Id: <support.example.test>", ACCEPTED, None),
        ("Precedence: list\nList-Post: <mailto:billing@example.test>", ACCEPTED, None),
        ("List-Id: <users.lists.example.org>", ACCEPTED, None),
        ("Return-Path: <>", AUTO_REPLY, "null_return_path: Return-Path: <>"),
        ("X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent", ACCEPTED, None),
    ],
)
def test_auto_reply_headers(headers: str, verdict: str, reason: str | None, settings: Settings) -> None:
    message = screen(parse(mail(f"From: customer@example.org\nTo: support@example.test\nSubject: Order\n{headers}")), ours(settings))
    assert (message.screening, message.screening_reason) == (verdict, reason)


# --- loops ---------------------------------------------------------------------


def test_mail_from_our_own_support_address_is_a_loop(settings: Settings) -> None:
    message = screen(parse(mail("From: Support <Support@Example.test>\nTo: support@example.test\nSubject: x")), ours(settings))
    assert (message.screening, message.screening_reason) == (LOOP, "from_own_address: From: support@example.test is our own address")


def test_our_own_signed_message_id_coming_back_is_a_loop(settings: Settings) -> None:
    own = make_message_id(SECRET.encode(), 42, "example.test")
    message = screen(parse(mail(f"From: someone@example.org\nMessage-ID: <{own}>\nSubject: x")), ours(settings))
    assert message.screening == LOOP
    assert message.screening_reason == f"own_message_id: Message-ID <{own}> was generated by us"
    forged = own.replace("fd.42.", "fd.43.")
    assert screen(parse(mail(f"From: someone@example.org\nMessage-ID: <{forged}>\nSubject: x")), ours(settings)).screening == ACCEPTED


def test_our_marker_header_and_x_loop_are_loops(settings: Settings) -> None:
    marked = screen(parse(mail("From: a@example.org\nX-Frontdesk-Automated: ticket-received\nSubject: x")), ours(settings))
    assert (marked.screening, marked.screening_reason) == (LOOP, "own_marker_header: X-Frontdesk-Automated: ticket-received")
    looped = screen(parse(mail("From: a@example.org\nX-Loop: billing@example.test\nSubject: x")), ours(settings))
    assert (looped.screening, looped.screening_reason) == (LOOP, "own_x_loop: X-Loop: billing@example.test")


def test_loop_wins_over_auto_reply(settings: Settings) -> None:
    message = screen(parse(mail("From: support@example.test\nAuto-Submitted: auto-replied\nSubject: x")), ours(settings))
    assert message.screening == LOOP


def test_screen_returns_a_new_message_and_keeps_the_rest(settings: Settings) -> None:
    original = parse((CHATWOOT / "auto_reply.eml").read_bytes())
    result = screen(original, ours(settings))
    assert original.screening == ACCEPTED  # the input is not mutated
    assert (result.subject, result.text_body, result.attachments) == (original.subject, original.text_body, original.attachments)


def test_other_channels_are_not_screened_by_email_rules(settings: Settings) -> None:
    chat = InboundMessage(
        channel="chat", channel_key="site", source="webhook:chat", raw_blob="f" * 64, content_hash="f" * 64,
        subject="Undeliverable", text_body='{"notificationType":"Bounce"} my order never arrived',
    )
    assert screen(chat, ours(settings)).screening == ACCEPTED
    as_email = InboundMessage(
        channel="email", channel_key="support@example.test", source="smtp", raw_blob="f" * 64, content_hash="f" * 64,
        subject="Undeliverable", text_body='{"notificationType":"Bounce"}',
    )
    assert screen(as_email, ours(settings)).screening == BOUNCE
