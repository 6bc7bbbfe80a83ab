"""The latest reply in a message body, with quoted history and reply headers stripped.

mail-parser-reply splits a body at reply headers ("On ... wrote:",
Outlook's From:/Sent: block, "-----Original Message-----") in many
languages; we take its first fragment and also drop a trailing block of
``>``-quoted lines that no header introduced.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

# Every language the library knows; English is always included by it.
LANGUAGES = ["en", "de", "fr", "it", "es", "nl", "sv", "pl", "da", "cs", "ja", "ko", "zh"]
MAX_INPUT = 200_000  # reply headers sit near the top; the regexes are not linear on huge bodies

_QUOTED = re.compile(r"^\s*>")
_PARSER = EmailReplyParser(languages=LANGUAGES)


def _drop_trailing_quote(text: str) -> str:
    lines = text.split("\n")
    while lines and (not lines[-1].strip() or _QUOTED.match(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def latest_reply(text: str | None) -> str | None:
    """The newest part of ``text``; None when the body is empty or only quotes."""
    if not text or not text.strip():
        return None
    try:
        reply = _PARSER.parse_reply(text[:MAX_INPUT])
    except Exception:  # a regex blow-up must not cost us the message
        reply = text
    if reply is None:
        reply = text
    reply = _drop_trailing_quote(reply.replace("\r\n", "\n")).strip()
    return reply or None
