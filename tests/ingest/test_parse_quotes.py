"""Latest-reply extraction on the talon and email-reply-parser fixtures.

talon's standard replies all say "Hello" (or match their ``*_reply_text``
file, as in talon's own test); the crisp fixtures are bodies in many
languages and clients, where the new text is the first lorem-ipsum
paragraph or a sentence we read off the fixture.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from frontdesk.ingest.email_parts import quotes
from frontdesk.ingest.email_parts.quotes import latest_reply
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.parse_email import parse_email

EMAIL = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "email"
TALON = EMAIL / "mailgun-talon/tests/fixtures"
CRISP = EMAIL / "crisp-email-reply-parser/test/fixtures"


def reply_of_mail(path: Path) -> str | None:
    message = parse_email(path.read_bytes(), envelope=Envelope(channel="email", source="smtp"), raw_blob="d" * 64)
    return message.reply_text


def reply_of_body(name: str) -> str | None:
    return latest_reply((CRISP / name).read_text(encoding="utf-8"))


def lines(text: str | None) -> list[str]:
    # mail-parser-reply strips every line, so "-- " signature marks lose their space.
    return [line.rstrip() for line in (text or "").strip().split("\n")]


@pytest.mark.parametrize("path", sorted((TALON / "standard_replies").glob("*.eml")), ids=lambda p: p.stem)
def test_talon_standard_replies(path: Path) -> None:
    expected_file = path.with_name(f"{path.stem}_reply_text")
    expected = expected_file.read_text().strip() if expected_file.exists() else "Hello"
    assert lines(reply_of_mail(path)) == lines(expected)


def test_talon_reply_with_quotation_sharing_a_block() -> None:
    reply = reply_of_mail(TALON / "reply-quotations-share-block.eml")
    assert reply is not None and reply.startswith("Hi Katharine.")
    assert reply.endswith("Joe XXX")
    assert "wrote:" not in reply and "From" not in reply


def html_only_mail(path: Path) -> bytes:
    message = EmailMessage()
    message["From"] = "alex@example.org"
    message["Subject"] = "Re: Test message"
    message.set_content(path.read_bytes().decode("utf-8", "replace"), subtype="html")
    return message.as_bytes()


@pytest.mark.parametrize("path", sorted((TALON / "html_replies").glob("*.html")), ids=lambda p: p.stem)
def test_talon_html_only_replies(path: Path) -> None:
    """HTML-only mail: the reply is found in the inscriptis text of the HTML."""
    message = parse_email(html_only_mail(path), envelope=Envelope(channel="email", source="smtp"), raw_blob="d" * 64)
    assert " ".join((message.reply_text or "").split()) == "Hi. I am fine. Thanks, Alex"


def test_talon_reply_separated_by_hr() -> None:
    # The <hr> before "From:" must break the line for the header block to be found;
    # talon also drops "Bob", which sits in the same <div> as the quoted headers.
    path = TALON / "reply-separated-by-hr.html"
    message = parse_email(html_only_mail(path), envelope=Envelope(channel="email", source="smtp"), raw_blob="d" * 64)
    assert " ".join((message.reply_text or "").split()) == "Hi there Bob"


LOREM = (CRISP / "email_10.txt").read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n")[0].strip()

# Fixtures whose new text is exactly the first paragraph, after a reply
# header in some client's and language's format.
LOREM_REPLIES = [
    "email_10.txt", "email_11.txt", "email_12.txt", "email_13.txt", "email_14.txt", "email_16.txt",
    "email_17.txt", "email_18.txt", "email_22.txt", "email_23.txt", "email_24.txt", "email_25.txt",
    "email_26.txt", "email_8.txt", "email_danish_dash_separator.txt", "email_en_multiline_2.txt",
    "email_finnish.txt", "email_fr_multiline.txt", "email_french_2.txt", "email_french_dash_separator.txt",
    "email_german.txt", "email_german_2.txt", "email_german_outlook.txt", "email_gmail_split_line_from.txt",
    "email_italian.txt", "email_msn.txt", "email_original_message.txt", "email_original_message_2.txt",
    "email_portuguese.txt", "email_russian.txt", "email_tricky_10_special_chars_in_name.txt",
    "email_tricky_12_no_space_after_header.txt", "email_tricky_14_long_quote_header.txt",
    "email_tricky_15_original_message_variations.txt", "email_tricky_5_mixed_languages.txt",
]  # fmt: skip

# Known gaps, kept visible: the history stays in the reply text.
LOREM_GAPS = {
    "email_9.txt": "'Message du : <date>' header (no sender, no verb) is not recognised",
    "email_15.txt": "'Sent from my Wiko' ends the reply, but unmarked quoted text follows it",
    "email_german_3.txt": "'Gesendet von Outlook für Android' then unmarked quoted text",
    "email_norwegian_gmail.txt": "attribution wrapped as '... <test@example.com' + '>:' on the next line",
    "email_outlook_split_line_from.txt": "'From:' header wrapped over two lines before 'Sent:'",
}


@pytest.mark.parametrize("name", LOREM_REPLIES)
def test_crisp_reply_is_the_first_paragraph(name: str) -> None:
    assert reply_of_body(name) == LOREM


@pytest.mark.parametrize("name", sorted(LOREM_GAPS), ids=lambda n: n)
def test_crisp_known_gaps(name: str) -> None:
    reply = reply_of_body(name)
    assert reply is not None and reply.startswith(LOREM)
    assert reply != LOREM, f"gap fixed? {LOREM_GAPS[name]}: move {name} to LOREM_REPLIES"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("email_4.txt", "Awesome! I haven't had another problem with it."),
        ("email_thread.txt", "This is new email reply in thread from bellow."),
        ("email_unquoted_reply.txt", "This is my reply."),
        ("email_customer_quote_header_2.txt", "Thank you very much."),
        ("email_tricky_9_nested_quotes.txt", "I agree with the points below."),
        ("email_tricky_17_forward_header.txt", "See the forwarded message below."),
        ("email_19.txt", "On Thursday, I get proper rendering.\n\nSent from a magnificent torch of pixels"),
        ("email_iphone.txt", "Here is another email\n\nSent from my iPhone"),
    ],
)
def test_crisp_exact_replies(name: str, expected: str) -> None:
    assert reply_of_body(name) == expected


def test_interleaved_reply_keeps_the_new_text_and_drops_the_quotes() -> None:
    reply = reply_of_body("email_tricky_18_inline_reply.txt")
    assert reply is not None
    assert "Option B has some drawbacks." in reply and "Option C is not suitable for our use case." in reply
    assert not any(line.lstrip().startswith(">") for line in reply.split("\n"))
    reply = reply_of_body("email_2.txt")
    assert reply is not None and reply.startswith("Hi,\nYou can list the keys for the bucket")
    assert "wrote:" not in reply and "> Hi folks" not in reply


@pytest.mark.parametrize(
    ("name", "last_line"),
    [
        ("email_tricky_1_on_false_positive.txt", "On a separate note, I wanted to mention that performance is great."),
        ("email_tricky_2_url_with_wrote.txt", "John"),
        ("email_tricky_13_timestamp_variations.txt", "All of these are just examples in my content, not quote headers."),
        ("email_tricky_4_from_in_body.txt", "This is the actual message content."),
        ("email_tricky_8_sent_from_in_content.txt", "All messages are sent from the main server."),
    ],
)
def test_text_that_only_looks_like_a_quote_header_is_kept(name: str, last_line: str) -> None:
    reply = reply_of_body(name)
    assert reply is not None and reply.split("\n")[-1] == last_line


def test_only_quotes_or_nothing_gives_none() -> None:
    assert latest_reply(None) is None
    assert latest_reply("  \n") is None
    assert latest_reply("On Mon, Bob wrote:\n> hi\n> there\n") is None


def test_chatwoot_reply_drops_the_quote_and_keeps_the_signature() -> None:
    reply = reply_of_mail(EMAIL / "chatwoot/spec/fixtures/files/mail_with_quote.eml")
    assert reply == "Yes, I am providing you step how to reproduce this issue\n\n--\n* Sony Mathew*\nSoftware developer\n*Mob:9999999999"


# -- the fast path must give what mail-parser-reply itself gives --------------

def _fixture_bodies() -> list[Path]:
    return sorted(CRISP.glob("*.txt")) + sorted((TALON / "standard_replies").glob("*.eml"))


@pytest.mark.parametrize("path", _fixture_bodies(), ids=lambda p: p.name)
def test_first_fragment_equals_the_library_reply(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    assert quotes._first_fragment(text) == (quotes._PARSER.parse_reply(text) or "")


@pytest.mark.parametrize("header", [
    "On Mon, 23 Nov 2026 at 02:00, Ann <ann@example.com> wrote:",
    "Am 23.11.2026 um 02:00 schrieb Ann <ann@example.com>:",
    "Le lun. 23 nov. 2026 à 02:00, Ann <ann@example.com> a écrit :",
    "2026年11月23日 02:00 Ann <ann@example.com> 写道：",
    "From: Ann <ann@example.com>\nSent: Monday\nTo: Bob\nSubject: Hi",
    "> *Von:* Ann\n> *Gesendet:* Montag",
    "보낸 사람: Ann\n받는 사람: Bob",
    "-----Original Message-----",
])
def test_every_kind_of_reply_header_passes_the_pre_check(header: str) -> None:
    text = f"New answer here.\n\n{header}\nOld text.\n"
    assert quotes._may_have_reply_header(text)
    assert quotes._first_fragment(text) == (quotes._PARSER.parse_reply(text) or "")


def test_a_body_without_header_lines_skips_the_library_and_keeps_its_normalization() -> None:
    text = "  Hello,\r\n\r\n  my parcel has not arrived.   \r\nThanks, Ann  \r\n"
    assert not quotes._may_have_reply_header(text)
    assert quotes._first_fragment(text) == quotes._PARSER.parse_reply(text) == "Hello,\n\nmy parcel has not arrived.\nThanks, Ann"
