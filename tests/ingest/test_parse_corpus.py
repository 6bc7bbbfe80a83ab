"""Every real email in the corpus goes through parse + screen without an exception or mojibake.

Files that are not email messages are skipped deliberately, by rule, and the
skip list is asserted too so that nothing silently drops out of the sweep.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from _email_corpus import EMAIL, SUPPORT, parsed
from frontdesk.settings import load_settings
from frontdesk.ingest.message import QuarantineMessage
from frontdesk.ingest.screening import screen
from _ingest_mail import ours

# Why each kind of file is not fed to the parser as a message:
SKIP_REASONS = {
    "license/readme/metadata": lambda rel: rel.name in ("LICENSE", "LICENSE.upstream", "README.md", ".missing"),
    "reply-parser bodies without headers": lambda rel: rel.parts[0] == "crisp-email-reply-parser",
    "talon signature bodies/senders without headers": lambda rel: "signature" in rel.parts,
    "talon expected reply outputs": lambda rel: rel.name.endswith("_reply_text"),
    "HTML fragments, not messages": lambda rel: rel.suffix in (".html", ".htm") and "tnef" not in rel.parts,
    "raw TNEF streams, their .list files and extracted files (test_parse_tnef)": lambda rel: "tnef" in rel.parts,
    "mbox offset metadata": lambda rel: rel.parts[-2] == "mbox" and (rel.suffix == ".json" or rel.name.endswith("-summary.txt")),
}


def skip_reason(rel: Path) -> str | None:
    for reason, matches in SKIP_REASONS.items():
        if matches(rel):
            return reason
    return None


def corpus_files() -> tuple[list[Path], Counter[str]]:
    messages: list[Path] = []
    skipped: Counter[str] = Counter()
    for folder, _, names in os.walk(EMAIL):
        for name in names:
            path = Path(folder) / name
            reason = skip_reason(path.relative_to(EMAIL))
            if reason:
                skipped[reason] += 1
            else:
                messages.append(path)
    return sorted(messages), skipped


@pytest.fixture(scope="module")
def screened(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, object]:
    settings = load_settings(
        environ={
            "FRONTDESK_DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "FRONTDESK_SECRET_KEY": "corpus-test-key",
            "FRONTDESK_SUPPORT_ADDRESSES": SUPPORT,
        }
    )
    results: dict[Path, object] = {}
    for path in corpus_files()[0]:
        message = parsed(path)
        results[path] = message if isinstance(message, QuarantineMessage) else screen(message, ours(settings))
    return results


def test_skipped_files_are_deliberate() -> None:
    messages, skipped = corpus_files()
    assert skipped == {
        "license/readme/metadata": 13,
        "reply-parser bodies without headers": 90,
        "talon signature bodies/senders without headers": 22,
        "talon expected reply outputs": 2,
        "HTML fragments, not messages": 11,
        "raw TNEF streams, their .list files and extracted files (test_parse_tnef)": 89,
        "mbox offset metadata": 6,
    }
    assert len(messages) == 1149


def test_every_message_parses_or_is_quarantined_with_a_cause(screened: dict[Path, object]) -> None:
    quarantined = {path.relative_to(EMAIL).as_posix(): str(r) for path, r in screened.items() if isinstance(r, QuarantineMessage)}
    # Only input with nothing to read is quarantined: an empty file and a
    # digest body saved without any header line.
    assert quarantined == {
        "mikel-mail/spec/fixtures/emails/sample_output_multipart": "parse_error: empty message",
        "cpython-test_email/Lib/test/test_email/data/msg_19.txt": "parse_error: no header lines: not an email message",
    }
    parsed = [r for r in screened.values() if not isinstance(r, QuarantineMessage)]
    assert len(parsed) == 1147
    for message in parsed:
        assert message.channel == "email" and message.channel_key == SUPPORT
        assert len(message.content_hash) == 64
        assert message.headers, "every parsed message keeps its headers"


def test_no_replacement_characters_unless_the_bytes_are_undecodable(screened: dict[Path, object]) -> None:
    damaged = []
    for path, message in screened.items():
        if isinstance(message, QuarantineMessage):
            continue
        # A few messages carry U+FFFD in their raw bytes already (an upstream
        # tool's earlier damage); decoding those cleanly reproduces it.
        literal = "\ufffd".encode() in path.read_bytes()
        for text in (message.text_body, message.html_body, message.subject):
            if text and "\ufffd" in text and not literal and not any("replaced" in d for d in message.defects):
                damaged.append(path.relative_to(EMAIL).as_posix())
    assert damaged == []


def test_html_only_mail_gets_text_from_its_html(screened: dict[Path, object]) -> None:
    """HTML-only mail gets its text from inscriptis (empty only when the HTML shows no text at all)."""
    html_only_without_text = [
        path.name
        for path, message in screened.items()
        if not isinstance(message, QuarantineMessage) and message.html_body and message.text_body is None
    ]
    assert html_only_without_text == []
