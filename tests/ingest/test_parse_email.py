"""parse_email on real fixtures and on hand-built edge cases: headers, charsets, bodies, attachments, forwards."""

from __future__ import annotations

import hashlib
from datetime import timezone
from pathlib import Path

import pytest

from frontdesk.ingest.email_parts.charset import decode_bytes
from frontdesk.ingest.message import Envelope, InboundMessage, QuarantineMessage
from frontdesk.ingest.parse_email import parse_email

EMAIL = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "email"
CHATWOOT = EMAIL / "chatwoot/spec/fixtures/files"
MIKEL = EMAIL / "mikel-mail/spec/fixtures/emails"
SISIMAI = EMAIL / "sisimai-set-of-emails/maildir/bsd"
ENVELOPE = Envelope(channel="email", source="imap:INBOX", channel_key="support@example.test")


def parse(raw: bytes) -> InboundMessage:
    return parse_email(raw, envelope=ENVELOPE, raw_blob="b" * 64)


def parse_file(path: Path) -> InboundMessage:
    return parse(path.read_bytes())


def mail(headers: str, body: bytes = b"Hello\n") -> bytes:
    return headers.strip().replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


# --- identity and envelope -------------------------------------------------


def test_envelope_and_hash_are_carried_over() -> None:
    raw = (CHATWOOT / "support.eml").read_bytes()
    message = parse(raw)
    assert message.channel == "email"
    assert message.source == "imap:INBOX"
    assert message.channel_key == "support@example.test"
    assert message.raw_blob == "b" * 64
    assert message.content_hash == hashlib.sha256(raw).hexdigest()


def test_ids_are_stripped_of_angle_brackets() -> None:
    message = parse_file(CHATWOOT / "in_reply_to.eml")
    assert message.external_id == "0CB459E0-0336-41DA-BC88-E6E28C697DDBF@chatwoot.com"
    assert message.in_reply_to == ["0CB459E0-0336-41DA-BC88-E6E28C697DDB@chatwoot.com"]
    assert message.references == ["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"]


def test_multiple_in_reply_to_ids_are_all_kept() -> None:
    message = parse_file(CHATWOOT / "multiple_in_reply_to.eml")
    assert message.in_reply_to == [
        "4e6e35f5a38b4_479f13bb90078171@small-app-01.mail",
        "4e6e35f5a38b4_479f13bb90078131@small-app-01.mail",
    ]


def test_references_keep_order_and_odd_ids() -> None:
    message = parse_file(CHATWOOT / "references.eml")
    assert message.references == ["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail", "test-reference-id"]


def test_garbage_around_ids_is_ignored_and_duplicates_dropped() -> None:
    message = parse(
        mail(
            """
From: a@example.org
Message-ID: <own@example.org>
In-Reply-To: Your message of Tue <first@example.org> (sent by Bob) <second@example.org>
References: <first@example.org>
 <first@example.org> junk <third@example.org>
"""
        )
    )
    assert message.in_reply_to == ["first@example.org", "second@example.org"]
    assert message.references == ["first@example.org", "third@example.org"]


def test_missing_message_id_and_date() -> None:
    message = parse_file(CHATWOOT / "mail_with_no_date.eml")
    assert message.sent_at is None
    message = parse(mail("From: a@example.org\nSubject: x"))
    assert message.external_id is None


def test_dates_are_timezone_aware() -> None:
    message = parse(mail("From: a@example.org\nDate: Tue, 20 Apr 2020 04:20:20 -0000"))
    assert message.sent_at is not None and message.sent_at.tzinfo == timezone.utc
    message = parse(mail("From: a@example.org\nDate: next tuesday-ish"))
    assert message.sent_at is None
    assert any(d.startswith("date:") for d in message.defects)


# --- addresses -------------------------------------------------------------


def test_sender_is_lower_cased_and_name_decoded() -> None:
    message = parse_file(CHATWOOT / "non_utf_encoded_mail.eml")
    assert message.sender_address == "example@gmail.com"
    assert message.sender_name == "متجر سوق نت"
    message = parse(mail('From: "Jane Doe" <Jane.Doe@Example.ORG>'))
    assert (message.sender_name, message.sender_address) == ("Jane Doe", "jane.doe@example.org")


def test_group_syntax_recipients_do_not_crash() -> None:
    message = parse(
        mail(
            """
From: a@example.org
To: unlisted-recipients:; (no To-header on input)
Cc: undisclosed-recipients:;, Team: b@example.org, c@example.org;
"""
        )
    )
    assert message.to == []
    assert message.cc == ["b@example.org", "c@example.org"]


def test_malformed_recipient_lists_are_salvaged() -> None:
    assert parse_file(CHATWOOT / "mail_with_invalid_to.eml").to == ["vishnu@chatwoot.com"]
    # "vishnu@chatwoot.com www.chatwoot.com": the stdlib glues the words into one address.
    message = parse_file(CHATWOOT / "mail_with_invalid_to_2.eml")
    assert message.to == ["vishnu@chatwoot.com"]
    assert any("salvaged" in d for d in message.defects)


def test_empty_reply_to_is_none() -> None:
    message = parse_file(CHATWOOT / "malformed_reply_to.eml")
    assert message.reply_to is None
    assert message.sender_address == "sender@example.com"
    assert parse(mail("From: a@example.org\nReply-To: Help <help@example.org>")).reply_to == "help@example.org"


def test_missing_subject_is_none() -> None:
    assert parse_file(CHATWOOT / "mail_with_no_subject.eml").subject is None


# --- header decoding -------------------------------------------------------


def test_rfc2047_with_unknown_or_bogus_charsets_decodes() -> None:
    message = parse(
        mail(
            """
From: =?invalid-charset?Q?Ren=C3=A9?= <rene@example.org>
Subject: =?x-unknown?Q?caf=C3=A9?= =?iso-gb2312?B?1tDOxA==?=
"""
        )
    )
    assert message.subject == "café中文"
    assert message.sender_name == "René"
    assert any("unknown charset 'x-unknown'" in d for d in message.defects)


def test_raw_utf8_headers_decode() -> None:
    raw = "From: Jörg <jorg@example.org>\r\nSubject: Grüße aus Köln\r\n\r\nHallo\r\n".encode()
    message = parse(raw)
    assert message.subject == "Grüße aus Köln"
    assert message.sender_name == "Jörg"


def test_iso_2022_jp_header_with_microsoft_extensions() -> None:
    # Cyrillic plus the NEC "No." sign (row 13), which Python's iso2022 codecs reject.
    message = parse_file(EMAIL / "php-mime-mail-parser/tests/mails/issue116")
    assert message.subject == "ЖД№41 от 28.09.2016"


def test_huge_headers_become_defects_not_crashes() -> None:
    references = " ".join(f"<id{i}@example.org>" for i in range(20_000))
    many = "".join(f"X-Filler-{i}: {i}\n" for i in range(1500))
    message = parse(mail(f"From: a@example.org\nReferences: {references}\n{many}Subject: big"))
    assert any("cut to" in d for d in message.defects)
    assert any("kept the first 1000" in d for d in message.defects)
    assert message.references[0] == "id0@example.org"
    assert len(message.headers) == 1000


def test_obsolete_header_syntax_is_repaired() -> None:
    # RFC 2822 A.6.3 ("From  : John Doe ..."): without the repair the stdlib
    # sees no header at all.  The fixture's literal "__" line still ends the
    # header block early, so only From survives.
    message = parse_file(MIKEL / "rfc2822/example13.eml")
    assert message.sender_address is not None and message.sender_address.startswith("jdoe@machine")
    assert "parser: ObsoleteHeaderSyntaxDefect" in message.defects


# --- charsets in bodies ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "expected"),
    [
        (MIKEL / "multi_charset/japanese_iso_2022.eml", "subject", "まみむめも"),
        (MIKEL / "multi_charset/japanese_iso_2022.eml", "text_body", "すみません。"),
        (MIKEL / "multi_charset/japanese_shift_jis.eml", "text_body", "このメールはテスト用のメールです。"),
        (EMAIL / "mimekit/UnitTests/TestData/messages/japanese.txt", "subject", "日本語メールテスト (testing Japanese emails)"),
        (EMAIL / "mimekit/UnitTests/TestData/messages/japanese.txt", "text_body", "日本語が\n正常に\n送れているか"),
        (SISIMAI / "lhost-postfix-07.eml", "text_body", "このメールと共に返信されているメールは一つ以上の宛先に対"),
        (SISIMAI / "lhost-domino-02.eml", "subject", "ユーザー Neko (kijitora@example.co.jp) は Domino ディレクトリには見つかりません。"),
        (SISIMAI / "lhost-exchange2007-04.eml", "subject", "Undeliverable: キジトラ・フラッシュ/ニャーン"),
        (MIKEL / "multi_charset/ks_c_5601-1987.eml", "text_body", "스티해"),
        (CHATWOOT / "non_utf_encoded_mail.eml", "subject", "أهلين عميلنا الكريم"),
        (CHATWOOT / "non_utf_encoded_mail.eml", "text_body", "أنظروا، أنا أحتاجها فقط لتقوم بالتدقيق في مقالتي الشخصية"),
        (MIKEL / "plain_emails/raw_email10.eml", "text_body", "Envoyé par le service de messagerie texte de Bell Mobilité."),
        (EMAIL / "mimekit/UnitTests/TestData/tnef/ukr.eml", "text_body", "шостий"),
    ],
)
def test_non_ascii_text_decodes_to_what_the_sender_wrote(path: Path, field: str, expected: str) -> None:
    value = getattr(parse_file(path), field)
    assert value is not None and expected in value
    assert "\ufffd" not in value


def test_iso_2022_jp_labelled_mail_that_is_really_euc_jp_is_detected() -> None:
    message = parse_file(SISIMAI / "lhost-ezweb-04.eml")
    assert "次のあて先へのメッセージはエラーのため送信できませんでした" in (message.text_body or "")
    assert "text body: bytes are not valid 'iso-2022-jp'" in message.defects


def test_unknown_and_lying_body_charsets() -> None:
    russian = "Здравствуйте! Мой заказ номер 4412 до сих пор не доставлен, прошу проверить статус доставки."
    cases = [
        ("x-mac-cyrillic", russian.encode("mac_cyrillic"), russian),
        ("iso-8859-1", "Grüße, José".encode(), "Grüße, José"),  # UTF-8 bytes under a Latin-1 label
        ("iso-8859-2", "Grüße, José".encode(), "Grüße, José"),  # ... or any single-byte label
        ("koi8-r", russian.encode("koi8-r"), russian),
        ("utf-8", russian.encode("cp1251"), russian),  # cp1251 bytes under a UTF-8 label
        ("gb2312", "请帮我查询订单，谢谢。镕".encode("gb18030"), "请帮我查询订单，谢谢。镕"),  # 镕 is GBK, not GB2312
    ]
    for label, body, expected in cases:
        message = parse(mail(f"From: a@example.org\nContent-Type: text/plain; charset={label}\nContent-Transfer-Encoding: 8bit", body))
        assert message.text_body is not None and message.text_body.strip() == expected, label


def test_undeclared_8bit_text_is_detected_not_replaced() -> None:
    french = "Bonjour, je n'ai toujours pas reçu ma commande passée la semaine dernière. Merci de vérifier où elle se trouve."
    message = parse(mail("From: a@example.org\nSubject: commande", french.encode("cp1252")))
    assert message.text_body is not None and message.text_body.strip() == french


def test_decode_bytes_never_raises_and_reports_replacement() -> None:
    decoded = decode_bytes(b"\xff\xfe\xfa\x00 broken \x81", "utf-8")
    assert isinstance(decoded.text, str)
    assert decoded.defects


# --- bodies ----------------------------------------------------------------


def test_html_only_mail_gets_text_from_inscriptis() -> None:
    message = parse_file(CHATWOOT / "only_html.eml")
    assert message.html_body is not None and "<" in message.html_body
    assert message.text_body is not None and "<" not in message.text_body and message.text_body.strip()


def test_text_and_html_alternatives_are_both_kept() -> None:
    message = parse_file(CHATWOOT / "mail_with_inline_images.eml")
    assert message.text_body is not None and message.text_body.startswith("HTML content and inline images")
    assert message.html_body is not None and 'src="cid:ii_lm7fuura0"' in message.html_body


def test_cr_only_line_endings_parse_like_lf() -> None:
    mac = parse_file(EMAIL / "sisimai-set-of-emails/maildir/mac/lhost-amavis-01.eml")
    unix = parse_file(SISIMAI / "lhost-amavis-01.eml")
    assert mac.text_body == unix.text_body
    assert [a.content_type for a in mac.attachments] == [a.content_type for a in unix.attachments]


def test_no_headers_at_all_is_quarantined() -> None:
    with pytest.raises(QuarantineMessage) as caught:
        parse(b"just some words\nwithout any header\n")
    assert caught.value.cause == "parse_error"
    with pytest.raises(QuarantineMessage):
        parse(b"")


# --- attachments -----------------------------------------------------------


def test_inline_images_keep_content_id_and_inline_flag() -> None:
    message = parse_file(CHATWOOT / "mail_with_inline_images.eml")
    assert [(a.filename, a.content_id, a.is_inline) for a in message.attachments] == [
        ("poster (8).jpg", "ii_lm7fuura0", True),
        ("poster (7).jpg", "ii_lm7fuuvm1", True),
        ("poster (1).jpg", "ii_lm7fuuwn2", True),
    ]


def test_attachments_without_filename_are_kept() -> None:
    message = parse_file(CHATWOOT / "attachments_without_filename.eml")
    assert [(a.filename, a.content_type, a.content_id) for a in message.attachments] == [
        (None, "image/png", "f_lh8nwk8l3"),
        (None, "image/png", "f_lh8nwk8l2"),
    ]


def test_encoded_filenames_decode() -> None:
    message = parse_file(MIKEL / "multi_charset/japanese_attachment_long_name.eml")
    assert [a.filename for a in message.attachments] == ["かきくけこかきくけこかきくけこかきくけこかきくけこ.txt"]
    message = parse_file(MIKEL / "attachment_emails/attachment_with_quoted_filename.eml")
    assert [a.filename for a in message.attachments] == ["Eelanalüüsi päring.jpg"]


def test_rfc2231_and_unsafe_filenames() -> None:
    raw = mail(
        """
From: a@example.org
Content-Type: multipart/mixed; boundary=XX
""",
        b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
        b"--XX\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n\r\nroot\r\n"
        b"--XX--\r\n",
    )
    message = parse(raw)
    assert [(a.filename, a.data) for a in message.attachments] == [("€ rates.pdf", b"%PDF-"), ("passwd", b"root")]
    assert message.text_body == "see attached"


def test_attached_message_is_an_eml_attachment_and_a_forward() -> None:
    message = parse_file(MIKEL / "attachment_emails/attachment_message_rfc822.eml")
    [attached] = message.attachments
    assert attached.content_type == "message/rfc822"
    assert attached.filename == "ForwardedMessage.eml"
    assert attached.data is not None and b"Subject:" in attached.data
    assert message.is_forwarded


# --- forwards ----------------------------------------------------------------


def test_forwarder_email_is_forwarded() -> None:
    assert parse_file(CHATWOOT / "forwarder_email.eml").is_forwarded
    assert not parse_file(CHATWOOT / "support.eml").is_forwarded


@pytest.mark.parametrize(
    ("subject", "forwarded"),
    [
        ("Fwd: invoice", True),
        ("FW: invoice", True),
        ("WG: Rechnung", True),
        ("TR: facture", True),
        ("Re: Fwd: invoice", True),
        ("RV: factura", True),
        ("Fwiw: a thought", False),
        ("Trouble: printer", False),
        ("Re: invoice", False),
    ],
)
def test_forward_subject_prefixes(subject: str, forwarded: bool) -> None:
    assert parse(mail(f"From: a@example.org\nSubject: {subject}")).is_forwarded is forwarded


def test_forward_body_marker() -> None:
    body = b"FYI\r\n\r\n---------- Forwarded message ---------\r\nFrom: Bob <bob@example.org>\r\n\r\nhelp\r\n"
    assert parse(mail("From: a@example.org\nSubject: look at this", body)).is_forwarded


def test_bounce_with_original_attached_is_not_a_forward() -> None:
    assert not parse_file(CHATWOOT / "bounced_gmail.eml").is_forwarded


def test_delivery_status_part_keeps_every_recipient_block() -> None:
    message = parse_file(CHATWOOT / "bounced_with_no_from.eml")
    status = next(a for a in message.attachments if a.content_type == "message/delivery-status")
    assert status.data is not None
    assert b"Reporting-MTA: dns; smtp5.relay.example.com" in status.data
    assert b"Action: failed" in status.data and b"Final-Recipient: rfc822; noreply@example-service.com" in status.data


def _deep_multipart(depth: int) -> bytes:
    raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for level in range(1, depth):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level - 1, level)
    return raw + b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n" % (depth - 1)


def test_hostile_input_never_raises() -> None:
    nested = parse(_deep_multipart(300))
    assert "mime: nested 300 levels deep" in nested.defects
    assert nested.text_body == "deep text"

    deep_html = parse(mail("From: a@example.org\nContent-Type: text/html", b"<div>" * 20000 + b"words" + b"</div>" * 20000))
    assert deep_html.text_body == "words"

    long_line = parse(b"From: a@example.org\r\nSubject: " + b"x" * 2_000_000 + b"\r\n\r\nbody")
    assert long_line.text_body == "body" and any("cut to" in d for d in long_line.defects)

    # PostgreSQL refuses NUL in text: the decoded copy drops it (the raw bytes keep it).
    nul = parse(b"From: a@example.org\r\nSubject: a\x00b\r\nMessage-ID: <x\x00@y>\r\n\r\n\x00body")
    assert (nul.sender_address, nul.subject, nul.text_body, nul.external_id) == ("a@example.org", "ab", "body", None)
    assert "text: NUL characters or lone surrogates removed" in nul.defects
    assert all("\x00" not in value for _, value in nul.headers)

    many = parse(mail("From: a@example.org\nTo: " + ", ".join(f"u{i}@example.org" for i in range(5000))))
    # Cut at 64 KiB, at a separator: every address kept is a whole one.
    assert any(d.startswith("headers: To is 93888 characters, cut to") for d in many.defects)
    assert 3000 < len(many.to) < 5000
    assert many.to == [f"u{i}@example.org" for i in range(len(many.to))]

    words = parse(mail("From: a@example.org\nSubject: " + " ".join(["=?utf-8?B?w6k=?="] * 3000)))
    assert words.subject == "é" * 3000

    bad_base64 = parse(mail("From: a@example.org\nContent-Transfer-Encoding: base64", b"!!!not base64==\r\n"))
    assert bad_base64.text_body is not None


def test_html_charset_from_meta_tag() -> None:
    html = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=koi8-r"></head><body>Привет, мир</body></html>'
    message = parse(mail("From: a@example.org\nContent-Type: text/html\nContent-Transfer-Encoding: 8bit", html.encode("koi8-r")))
    assert message.text_body == "Привет, мир"


def test_values_fit_the_message_columns() -> None:
    long_name = "N" * 400
    long_address = "a" * 400 + "@example.org"
    message = parse(mail(f'From: "{long_name}" <{long_address}>\nReply-To: {long_address}'))
    assert message.sender_address is None and message.reply_to is None
    assert "sender_address: address longer than 320 characters dropped" in message.defects
    message = parse(mail(f'From: "{long_name}" <a@example.org>'))
    assert message.sender_name == "N" * 300 and message.sender_address == "a@example.org"
