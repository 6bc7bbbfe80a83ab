"""Property tests: ``parse_email`` on arbitrary bytes and on mutated real mail never crashes.

The contract the pipeline relies on: ``parse_email`` returns a message the
databases can store, or raises ``QuarantineMessage("parse_error", ...)``,
which the runner keeps raw in the quarantine with its cause.  For mutated
real mail the quarantine must be a verdict, not a parser bug wrapped by the
catch-all in ``parse_email`` (that would quarantine a customer's mail for our
own mistake), so a wrapped exception fails the test too.

Bounded: a few hundred examples each, so the run stays within seconds
(``FRONTDESK_FUZZ_EXAMPLES`` raises it for a deeper run by hand).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from frontdesk.ingest.message import Envelope, InboundMessage, QuarantineMessage
from frontdesk.ingest.parse_email import parse_email

EMAIL = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "email"
ENVELOPE = Envelope(channel="email", source="smtp", mail_from="carol@customer.test",
                    rcpt_tos=("support@acme.test",), channel_key="support@acme.test")
# FRONTDESK_FUZZ_EXAMPLES=5000 for a deeper run by hand.
BOUNDED = settings(max_examples=int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _corpus_mails() -> list[bytes]:
    # A spread of real mails under 64 kB: small enough to mutate quickly.
    files = sorted(p for p in EMAIL.rglob("*.eml") if p.is_file() and p.stat().st_size < 64_000)
    return [p.read_bytes() for p in files[::7]]


CORPUS = _corpus_mails()
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def check(raw: bytes, *, wrapped_bug_allowed: bool = False) -> InboundMessage | None:
    """Parse ``raw`` and assert the contract; the message, or None when quarantined."""
    try:
        message = parse_email(raw, envelope=ENVELOPE, raw_blob="0" * 64)
    except QuarantineMessage as verdict:
        assert verdict.cause == "parse_error"
        if not wrapped_bug_allowed:
            assert verdict.__cause__ is None, f"parser bug: {verdict.detail}"
        return None
    texts = [message.subject, message.sender_name, message.sender_address, message.reply_to,
             message.text_body, message.html_body, message.reply_text, *message.to, *message.cc,
             *(part for header in message.headers for part in header),
             *(a.filename for a in message.attachments), *(a.content_type for a in message.attachments),
             *(a.content_id for a in message.attachments)]
    for text in texts:
        assert text is None or isinstance(text, str) and not _FORBIDDEN.search(text), repr(text)[:200]
    assert message.sender_address is None or len(message.sender_address) <= 320
    return message


@BOUNDED
@given(st.binary(max_size=4000))
@example(b"")
@example(b"\r\n\r\n")
@example(b"From: a@b\r\n\r\n\x00\xff")
def test_arbitrary_bytes_parse_or_quarantine(raw: bytes) -> None:
    check(raw)


@BOUNDED
@given(st.text(alphabet=st.sampled_from(list("ab:@<>=?;\"\\ \t\r\n-_.,/QBXx")), max_size=600).map(str.encode))
@example(b"From: =?utf-8?q?a?=\r\nContent-Type: multipart/mixed; boundary=\"\r\n\r\n--\r\n")
def test_header_like_text_parses_or_quarantines(raw: bytes) -> None:
    check(b"Subject: x\r\n" + raw)


def _mutations() -> st.SearchStrategy[bytes]:
    mail = st.sampled_from(CORPUS)

    def truncated(draw_mail: bytes, at: float) -> bytes:
        return draw_mail[: int(len(draw_mail) * at)]

    def flipped(draw_mail: bytes, positions: list[tuple[float, int]]) -> bytes:
        data = bytearray(draw_mail)
        for where, value in positions:
            if data:
                data[int(where * (len(data) - 1))] = value
        return bytes(data)

    def duplicated_headers(draw_mail: bytes, times: int) -> bytes:
        head, sep, body = draw_mail.partition(b"\n\n") if b"\r\n\r\n" not in draw_mail else draw_mail.partition(b"\r\n\r\n")
        return head + (sep[: len(sep) // 2] + head) * times + sep + body

    def broken_boundaries(draw_mail: bytes, junk: bytes) -> bytes:
        return re.sub(rb'boundary="?([^";\r\n]+)"?', b'boundary="' + junk + b'"', draw_mail, count=1).replace(
            b"--", b"-" + junk[:1], 3)

    def lying_charset(draw_mail: bytes, charset: str) -> bytes:
        return re.sub(rb'charset="?[\w.:-]+"?', f'charset="{charset}"'.encode(), draw_mail)

    charsets = st.sampled_from(["utf-8", "utf-16", "utf-32", "iso-2022-jp", "shift_jis", "koi8-r", "x-unknown",
                                "utf-7", "cp1252", "", "us-ascii", "idna", "rot13", "base64", "uu", "zlib", "hex"])
    return st.one_of(
        st.builds(truncated, mail, st.floats(0, 1)),
        st.builds(flipped, mail, st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=20)),
        st.builds(duplicated_headers, mail, st.integers(1, 3)),
        st.builds(broken_boundaries, mail, st.binary(min_size=0, max_size=8)),
        st.builds(lying_charset, mail, charsets),
    )


# Found by the fuzzer: a NUL in an attachment's Content-Type (or
# Content-ID) reached the database, which PostgreSQL refuses: the sender got
# 451 for ever.
NUL_IN_PART_HEADERS = (
    b"From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    b"--b\r\nContent-Type: image/pn\x00; name=\"icon.png\"\r\nContent-ID: <ic\x00on>\r\n"
    b"Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"
)


@BOUNDED
@given(_mutations())
@example(NUL_IN_PART_HEADERS)
def test_mutated_corpus_mail_parses_or_quarantines(raw: bytes) -> None:
    check(raw)


def test_the_corpus_sample_is_there() -> None:
    assert len(CORPUS) > 50
