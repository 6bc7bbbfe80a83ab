"""What a screening rule is, and the header helpers rules share.

A rule is one small class with a ``name``, a ``description``, the
``verdict`` it hands out and ``check(message, ours)``, which returns the
human-readable reason (which header, which value) when the rule matches and
``None`` otherwise.  Rules never change the message; :func:`ingest.screening.screen` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Iterable, Protocol

from frontdesk.settings import Secret
from frontdesk.ingest.message import InboundMessage


@dataclass(frozen=True)
class Ours:
    """What the rules know about us: the key our Message-IDs are signed with, and our own addresses.

    The addresses are every email channel's (the ``channels`` table is their
    one source) plus the outbound From address, lower-cased.
    """

    secret_key: Secret
    addresses: frozenset[str]

    @classmethod
    def of(cls, secret_key: Secret, channel_addresses: Iterable[str], from_address: str = "") -> Ours:
        owned = {address.lower() for address in channel_addresses}
        if from_address:
            owned.add(from_address.lower())
        return cls(secret_key, frozenset(owned))


class ScreeningRule(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    verdict: ClassVar[str]

    def check(self, message: InboundMessage, ours: Ours) -> str | None: ...


def header(message: InboundMessage, name: str) -> str | None:
    """The first header called ``name`` (decoded), or None."""
    wanted = name.lower()
    for key, value in message.headers:
        if key.lower() == wanted:
            return value
    return None


def headers(message: InboundMessage, name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in message.headers if key.lower() == wanted]


def top_content_type(message: InboundMessage) -> tuple[str, str | None]:
    """(type/subtype, report-type parameter) of the message itself."""
    value = header(message, "content-type") or ""
    mime = value.split(";", 1)[0].strip().lower()
    report = re.search(r"report-type\s*=\s*\"?([\w.-]+)", value, re.IGNORECASE)
    return mime, report.group(1).lower() if report else None


def has_part(message: InboundMessage, *content_types: str) -> bool:
    return any(a.content_type in content_types for a in message.attachments)


def report_evidence(message: InboundMessage, kind: str) -> str | None:
    """Why ``message`` is a ``multipart/report`` of ``kind`` (RFC 6522), or None.

    ``kind`` is the report type ("delivery-status", "feedback-report",
    "disposition-notification"); its RFC 6533 "global-" variant counts too,
    and so does a ``message/<kind>`` part when the top-level type was mangled.
    """
    kinds = (kind, f"global-{kind}")
    mime, report = top_content_type(message)
    if mime == "multipart/report" and report in kinds:
        return f"Content-Type: multipart/report; report-type={report}"
    part = next((a.content_type for a in message.attachments if a.content_type in {f"message/{k}" for k in kinds}), None)
    return f"has a {part} part" if part else None


def local_part(address: str | None) -> str:
    return (address or "").rsplit("@", 1)[0].lower()
