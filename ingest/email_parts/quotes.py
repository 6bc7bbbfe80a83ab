"""The latest reply in a message body, with quoted history and reply headers stripped.

Two passes.  First, ``>``-quoted blocks are removed together with the
attribution line that introduces them ("On ... wrote:", "Am ... schrieb:",
"... написал:"), wherever they are: this handles bottom-posting
(Thunderbird) and interleaved replies, whose new text is kept.  Then
mail-parser-reply splits what is left at unquoted reply headers (Outlook's
From:/Sent: block, "-----Original Message-----", "On ... wrote:" above
unquoted history) in many languages, and we keep its first fragment.

Only that first fragment is needed, so the library's own reply-header
pattern is compiled once and run here (the library rebuilds it, and runs its
signature and disclaimer patterns on every fragment, for every message), and
it is not run at all when no line could start a reply header (see
:func:`_may_have_reply_header`): most new mail has none, and that pattern,
with 13 languages, is the costliest step of parsing a message.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

# Every language the library knows; it always adds English itself.
LANGUAGES = ["en", "de", "fr", "it", "es", "nl", "sv", "pl", "da", "cs", "ja", "ko", "zh"]
MAX_INPUT = 200_000  # reply headers sit near the top; the library's regexes are not linear on huge bodies

_QUOTED = re.compile(r"^[ \t]*>")
# The end of an attribution line, in the languages of the corpus and beyond.
_ATTRIBUTION_END = re.compile(
    r"(?:wrote|writes|schrieb|a écrit|escribió|ha scritto|escreveu|schreef|skrev|kirjoitti|napisał|написал|написала"
    r"|napsal|yazdı|έγραψε|写道|のメッセージ|님이 작성)\s*[:：]?\s*$",
    re.IGNORECASE,
)
# Where a two-line attribution starts ("On Tue, ... <\n bob@x> wrote:").
_ATTRIBUTION_START = re.compile(r"^\s*(?:On|Am|Le|El|Il|Em|Op|Den|På|W dniu|Dne|In data|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b", re.IGNORECASE)
# Yahoo's "--- On Wed, 4/4/12, x@y wrote:" left at the very end.
_TRAILING_ATTRIBUTION = re.compile(r"^\s*-*\s*(?:On|Am|Le|El|Il)\b.*(?:wrote|schrieb|a écrit|escribió|ha scritto)\s*:?\s*$", re.IGNORECASE)

# Outlook's quoted-history header, in the languages mail-parser-reply misses
# or only half-matches ("De : x\nEnvoyé le : y").
_HEADER_FROM = re.compile(r"^[ \t*]*(?:From|De|Von|Van|Da|Från|Fra|Od|От|Lähettäjä|Feladó)[ \t*]*:", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^[ \t*]*(?:Sent|Date|Envoyé(?: le)?|Gesendet|Datum|Enviado|Inviato|Verzonden|Skickat|Sendt|Wysłano|Отправлено"
    r"|To|À|An|Aan|A|Para|Till|Til|Do|Кому|Subject|Objet|Betreff|Onderwerp|Asunto|Oggetto|Ämne|Emne|Temat|Тема)[ \t*]*:",
    re.IGNORECASE,
)

_SEPARATOR = re.compile(
    r"^\s*(?:_{20,}|-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Oprindelig besked"
    r"|Originalmeddelande|Opprinnelig melding|Mensaje original|Messaggio originale|Mensagem original"
    r"|Oorspronkelijk bericht|Alkuperäinen viesti|Původní zpráva|Wiadomość oryginalna|Исходное сообщение"
    r"|Forwarded message|Weitergeleitete Nachricht|Message transféré)\s*-{2,})\s*$",
    re.IGNORECASE,
)

_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_VERB_THEN_ADDRESS = re.compile(
    r"\b(?:wrote|schrieb|schreef|skrev|a écrit|escribió|ha scritto|escreveu|kirjoitti|napisał|написал)\b[^:]*@[^:]*>\s*:\s*$",
    re.IGNORECASE,
)
# 'Date, "Name" <address>:' with no verb at all (some webmail clients).
_DATED_ADDRESS_HEADER = re.compile(r"^[^<>]*\d[^<>]*<[^<>\s]+@[^<>\s]+>\s*:\s*$")

_PARSER = EmailReplyParser(languages=LANGUAGES)
# The library's reply-header pattern for our languages, built once.
_REPLY_HEADER = EmailMessage(text="", languages=list(_PARSER.languages)).HEADER_REGEX
# A line that could hold a reply header once the library has stripped it:
# every alternative of that pattern needs a line ending in ":" / "：" ("On ...
# wrote:", "...写道："), a field name of at most 20 characters right before
# ":" after optional ">", "*" and blanks ("From:", "> *Von:*", "보낸 사람:"),
# or a "-----" rule ("-----Original Message-----").
_HEADER_LINE = re.compile(r"(?:[:：]$|^[>* ]*[^:\n]{0,20}:|-----)", re.MULTILINE)


def _without_quote_blocks(lines: list[str]) -> list[str]:
    drop: set[int] = set()
    index = 0
    while index < len(lines):
        if not _QUOTED.match(lines[index]):
            index += 1
            continue
        start = index
        while index < len(lines) and (_QUOTED.match(lines[index]) or not lines[index].strip()):
            index += 1
        drop.update(range(start, index))
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0 and _ATTRIBUTION_END.search(lines[before]):
            # Clients wrap long attributions: "On <date>, <name>\n<address>\nwrote:".
            first = before
            for earlier in range(before - 1, max(before - 4, -1), -1):
                if not lines[earlier].strip():
                    break
                if _ATTRIBUTION_START.match(lines[earlier]):
                    first = earlier
            drop.update(range(first, before + 1))
    return [line for number, line in enumerate(lines) if number not in drop]


def _cut_at_history(lines: list[str]) -> list[str]:
    """Everything above the first marker of unquoted history the library let through.

    Markers: an Outlook-style "From: / Sent:" block, an "-----Original
    Message-----" line in any language, a long underscore rule, or a
    one-line attribution ("W dniu ... napisał:") above unquoted history.
    """
    for index, line in enumerate(lines[1:], start=1):
        if _HEADER_FROM.match(line) and any(_HEADER_NEXT.match(n) for n in lines[index + 1 : index + 4]):
            return lines[:index]
        if _SEPARATOR.match(line) or _DATED_ADDRESS_HEADER.match(line):
            return lines[:index]
        if _is_attribution(lines, index):
            return lines[:index]
    return lines


def _is_attribution(lines: list[str], index: int) -> bool:
    """Does an attribution ("On <date>, <name> wrote:") start at ``lines[index]``?

    It may be wrapped over up to three lines ("Le lun. ... <john@x>\na écrit :",
    "Op ... schreef Name <\nname@x>:"); it must open with a known lead-in or a
    year, and end with the verb or with the address and a colon.
    """
    if not (_ATTRIBUTION_START.match(lines[index]) or _YEAR.search(lines[index])):
        return False
    window: list[str] = []
    for line in lines[index : index + 3]:
        if not line.strip():
            break
        window.append(line.strip())
        joined = " ".join(window)
        if _ATTRIBUTION_END.search(joined) or _VERB_THEN_ADDRESS.search(joined):
            return True
    return False


def _may_have_reply_header(normalized: str) -> bool:
    return _HEADER_LINE.search(normalized) is not None


def _first_fragment(text: str) -> str:
    """What ``EmailReplyParser.parse_reply`` returns: the text above the first reply header.

    Same normalization (the library's own), same pattern and the same walk
    over its matches as ``EmailMessage.read``; it stops at the first
    non-empty fragment, which is all ``latest_reply`` there reads.
    """
    normalized = EmailMessage(text=text, languages=list(_PARSER.languages)).text
    if not _may_have_reply_header(normalized):
        return normalized.strip()
    current = 0
    for match in _REPLY_HEADER.finditer(normalized):
        for header in match.groups():  # findall's groups, flattened, empty ones skipped
            if not header:
                continue
            position = normalized.find(header, current + 1 if current > 0 else current)
            fragment = normalized[current:position].strip()
            current = position if position >= 0 else 0
            if fragment:
                return fragment
    return normalized[current:].strip()


def latest_reply(text: str | None) -> str | None:
    """The newest part of ``text``; None when the body is empty or only quotes."""
    if not text or not text.strip():
        return None
    lines = text[:MAX_INPUT].replace("\r\n", "\n").split("\n")
    unquoted = "\n".join(_without_quote_blocks(lines)).strip()
    if not unquoted:
        return None
    try:
        reply = _first_fragment(unquoted) or unquoted
    except Exception:  # a regex blow-up must not cost us the message
        reply = unquoted
    kept = _cut_at_history(reply.strip().split("\n"))
    while kept and (not kept[-1].strip() or _TRAILING_ATTRIBUTION.match(kept[-1])):
        kept.pop()
    # Removed quote blocks leave runs of blank lines behind.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() or None
