"""The direct MIME writer: the standard library's message, byte for byte, or no message at all (the caller falls back)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.outbound.email import compose as compose_module
from frontdesk.outbound.email.compose import (
    HeaderInjectionError,
    OutboundEmail,
    compose,
    compose_bytes,
    header_fields,
)
from frontdesk.outbound.email.mime import write_mime
from frontdesk.reply_tokens import make_message_id

NOW = datetime(2026, 12, 2, 8, 30, 5, tzinfo=timezone.utc)
LONG_REFERENCES = tuple(f"thread-{n}.0123456789@customers.example.com" for n in range(12))


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both writers stamp Date from the same clock: compare them at one instant.
    monkeypatch.setattr(compose_module, "utcnow", lambda: NOW)


def mail(**changes) -> OutboundEmail:  # type: ignore[no-untyped-def]
    base = dict(from_address="support@acme.test", to=("ada@example.com",), subject="We received your request [#7]",
                text="Hello Ada,\n\nWe will answer soon.\n", html="<p>Hello Ada,</p>\n<p>We will answer soon.</p>",
                message_id=make_message_id(b"key", 7, "acme.test"), in_reply_to="m2@example.com",
                references=("m1@example.com", "m2@example.com"), auto_submitted="auto-replied")
    return OutboundEmail(**{**base, **changes})


def same_boundary(raw: bytes) -> bytes:
    return re.sub(rb"={15}\d{19}==", b"BOUNDARY", raw)


def parsed(raw: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [(k, str(v)) for k, v in message.items() if k != "Content-Type"]
    parts = [(p.get_content_type(), str(p["Content-Transfer-Encoding"]), p.get_content())
             for p in message.walk() if not p.is_multipart()]
    return headers, parts


FAST = {
    "text and html": {},
    "text only": {"html": None},
    "no threading, a person's mail": {"in_reply_to": None, "references": (), "auto_submitted": None},
    "utf-8 text": {"text": "Grüße, Zoë ✓\n", "html": "<p>Grüße</p>"},
    "references folded": {"references": LONG_REFERENCES},
    "long subject folded": {"subject": " ".join(["word"] * 30) + " [#7]"},
    "copies and a display name": {"cc": ("bo@example.com", "cy@example.com"), "from_name": "Acme Support"},
    "empty text": {"text": "", "html": None},
    "a body line that looks like a boundary": {"text": "--===============0000000000000000000==\n"},
    "long text line (quoted-printable)": {"text": "x " * 100},
    "long utf-8 lines (base64)": {"text": "ü" * 200, "html": "<p>" + "é" * 300 + "</p>"},
    "eleven long lines": {"text": ("y" * 90 + "\n") * 11},
}


@pytest.mark.parametrize("changes", FAST.values(), ids=FAST.keys())
def test_written_directly_as_the_standard_library_writes_it(changes: dict) -> None:
    outbound = mail(**changes)
    written = write_mime(header_fields(outbound), outbound.text, outbound.html)
    assert written is not None
    assert same_boundary(written) == same_boundary(compose(outbound).as_bytes())
    assert compose_bytes(outbound) == written or same_boundary(compose_bytes(outbound)) == same_boundary(written)


SLOW = {
    "non-ascii subject": {"subject": "Ihre Anfrage: Lieferung verspätet [#7]"},
    "encoded-word lookalike": {"subject": "=?utf-8?q?hi?= [#7]"},
    "unbreakable header": {"subject": "z" * 120},
    "display name to quote": {"from_name": "Acme, Support"},
}


@pytest.mark.parametrize("changes", SLOW.values(), ids=SLOW.keys())
def test_what_it_does_not_cover_is_composed_by_the_standard_library(changes: dict) -> None:
    outbound = mail(**changes)
    fields = header_fields(outbound)
    if changes.get("from_name") is None:
        assert write_mime(fields, outbound.text, outbound.html) is None
    assert parsed(compose_bytes(outbound)) == parsed(compose(outbound).as_bytes())


@pytest.mark.parametrize("field", ["subject", "message_id", "from_address"])
def test_header_injection_is_still_refused(field: str) -> None:
    with pytest.raises(HeaderInjectionError):
        compose_bytes(mail(**{field: "x@acme.test\r\nBcc: victim@example.com"}))


def one_line(value: str) -> str:
    # What the standard library takes as a header value at all (no line break of any kind, no NUL).
    return " ".join(value.replace("\x00", "").splitlines()) or "x"


@settings(max_examples=60, deadline=None)
@given(subject=(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=200)
                | st.text(min_size=1, max_size=120)).map(one_line),
       text=st.text(max_size=400), html=st.none() | st.text(max_size=200))
def test_any_message_reads_back_as_the_standard_librarys(subject: str, text: str, html: str | None) -> None:
    outbound = mail(subject=subject, text=text, html=html)
    assert parsed(compose_bytes(outbound)) == parsed(compose(outbound).as_bytes())
