"""winmail.dat (TNEF) attachments are unpacked into the files MimeKit's test data says they contain."""

from __future__ import annotations

from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from frontdesk.ingest.message import Envelope, InboundMessage
from frontdesk.ingest.parse_email import parse_email

TNEF = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "email" / "mimekit" / "UnitTests" / "TestData" / "tnef"
STREAMS = sorted(TNEF.glob("*.tnef"))

# tnefparse finds 2 of the 4 unnamed attachments MimeKit lists for this stream.
KNOWN_SHORTFALL = {"christmas": Counter({"Untitled Attachment": 2})}


def winmail_mail(stream: bytes) -> bytes:
    """An Outlook-style message carrying ``stream`` as winmail.dat."""
    message = EmailMessage()
    message["From"] = "outlook.user@example.org"
    message["To"] = "support@example.test"
    message["Subject"] = "TNEF"
    message.set_content("See attachment.")
    message.add_attachment(stream, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return message.as_bytes()


def parse_stream(path: Path) -> InboundMessage:
    envelope = Envelope(channel="email", source="smtp")
    return parse_email(winmail_mail(path.read_bytes()), envelope=envelope, raw_blob="c" * 64)


def expected_list(path: Path) -> list[str]:
    return [line.strip() for line in path.with_suffix(".list").read_text().splitlines() if line.strip()]


def test_all_nineteen_streams_are_covered() -> None:
    assert len(STREAMS) == 19


@pytest.mark.parametrize("stream", STREAMS, ids=lambda p: p.stem)
def test_tnef_contents_match_mimekit_lists(stream: Path) -> None:
    message = parse_stream(stream)
    listed = expected_list(stream)
    produced = Counter(a.filename for a in message.attachments)
    if not listed:
        # Nothing inside: the container itself stays, so no byte is hidden.
        assert [(a.filename, a.from_tnef) for a in message.attachments] == [("winmail.dat", False)]
        return
    assert all(a.from_tnef for a in message.attachments)
    assert "winmail.dat" not in produced, "the container is replaced by its contents"

    wanted_files = Counter(name for name in listed if name not in ("body.rtf", "body.html"))
    missing = wanted_files - produced
    assert missing == KNOWN_SHORTFALL.get(stream.stem, Counter())
    if "body.rtf" in listed:
        [rtf] = [a for a in message.attachments if a.filename == "body.rtf"]
        assert rtf.data is not None and rtf.data.startswith(b"{\\rtf"), "compressed RTF is decompressed"
    if "body.html" in listed:
        assert message.html_body is not None and "<html" in message.html_body.lower()


def test_extracted_bytes_equal_mimekit_files() -> None:
    message = parse_stream(TNEF / "two-files.tnef")
    files = {a.filename: a.data for a in message.attachments}
    assert files["AUTHORS"] == (TNEF / "two-files" / "AUTHORS").read_bytes()
    assert files["README"] == (TNEF / "two-files" / "README").read_bytes()
    image = next(a for a in parse_stream(TNEF / "attachments.tnef").attachments if a.filename == "zappa_av1.jpg")
    assert image.data == (TNEF / "attachments" / "zappa_av1.jpg").read_bytes()
    assert image.content_type == "image/jpeg"


def test_unreadable_tnef_is_kept_as_is() -> None:
    envelope = Envelope(channel="email", source="smtp")
    message = parse_email(winmail_mail(b"not tnef at all"), envelope=envelope, raw_blob="c" * 64)
    [kept] = message.attachments
    assert (kept.filename, kept.data, kept.from_tnef) == ("winmail.dat", b"not tnef at all", False)
    assert any(d.startswith("tnef:") for d in message.defects)
