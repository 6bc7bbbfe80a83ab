"""Decide whether a message forwards someone else's mail (subject prefix, body marker or attached message)."""

from __future__ import annotations

import re

from frontdesk.ingest.message import InboundAttachment

# Fwd/Fw (en), WG (de), TR (fr), RV/ENC (es, pt), VL (fi), Doorst (nl),
# PD (pl), Továbbítás (hu), after any number of reply prefixes.  Italian
# Outlook's bare "I:" is left out: too easily an ordinary subject.
_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|vs|ref|r)\s*(?:\[\d+\])?\s*:\s*)*"
    r"\[?(?:fwd?|wg|tr|rv|enc|vl|doorst|pd|továbbítás|trs|fs)\s*(?:\[\d+\])?\s*:",
    re.IGNORECASE,
)

_BODY_MARKERS = re.compile(
    r"^[ \t>]*(?:"
    r"-+ ?(?:Forwarded message|Forwarded Message|Original Message forwarded|Weitergeleitete Nachricht"
    r"|Message transféré|Mensaje reenviado|Messaggio inoltrato|Mensagem encaminhada|Doorgestuurd bericht"
    r"|Vidarebefordrat meddelande|Videresendt meddelelse|Przekazana wiadomość|Пересылаемое сообщение) ?-*"
    r"|Begin forwarded message:|Début du message réexpédié :|Anfang der weitergeleiteten Nachricht:"
    r"|Inizio messaggio inoltrato:"
    r")",
    re.IGNORECASE | re.MULTILINE,
)

FORWARD_BODY_SCAN = 20_000  # the marker of a forward sits near the top


def forwarded_subject(subject: str | None) -> bool:
    return bool(subject and _SUBJECT.match(subject))


def forwarded_body(text: str | None) -> bool:
    return bool(text and _BODY_MARKERS.search(text[:FORWARD_BODY_SCAN]))


# Set by forwarding services and Google Groups when they pass mail on.
FORWARDER_HEADERS = ("x-forwarded-for", "x-forwarded-to", "x-forwarded-message-id")


def forwarded_by_header(headers: list[tuple[str, str]]) -> bool:
    return any(name.lower() in FORWARDER_HEADERS for name, _ in headers)


def is_forwarded(
    subject: str | None,
    text: str | None,
    attachments: list[InboundAttachment],
    headers: list[tuple[str, str]],
    *,
    is_report: bool,
) -> bool:
    # A delivery or feedback report attaches the original too; that is not a forward.
    attached = not is_report and any(a.content_type in ("message/rfc822", "message/global") for a in attachments)
    return forwarded_subject(subject) or forwarded_body(text) or attached or forwarded_by_header(headers)
