"""Unpack Outlook's TNEF (winmail.dat) into ordinary attachments and bodies with tnefparse."""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass, field

from tnefparse import TNEF

from frontdesk.ingest.message import InboundAttachment

TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}

# tnefparse logs a warning for every MAPI property it does not know; those
# are expected on real Outlook output and would drown the daemon's log.
logging.getLogger("tnefparse").setLevel(logging.ERROR)


@dataclass
class TnefContents:
    attachments: list[InboundAttachment] = field(default_factory=list)
    html_body: str | None = None
    text_body: str | None = None


def is_tnef(content_type: str, filename: str | None) -> bool:
    return content_type in TNEF_TYPES or (filename or "").lower() == "winmail.dat"


def _name(attachment: object) -> str | None:
    try:
        name = attachment.long_filename()  # type: ignore[attr-defined]
    except Exception:
        name = getattr(attachment, "name", None)
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return name.strip("\x00 ") or None if isinstance(name, str) else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value.strip() else None


def unpack(data: bytes, defects: list[str]) -> TnefContents | None:
    """The files and bodies inside a TNEF stream; None (and a defect) when it cannot be read."""
    try:
        tnef = TNEF(data)
    except Exception as exc:
        defects.append(f"tnef: unreadable winmail.dat ({type(exc).__name__}), kept as is")
        return None
    contents = TnefContents()
    for attachment in tnef.attachments:
        filename = _name(attachment)
        payload = attachment.data if isinstance(attachment.data, bytes) else b""
        guessed = mimetypes.guess_type(filename)[0] if filename else None
        contents.attachments.append(
            InboundAttachment(
                filename=filename,
                content_type=guessed or "application/octet-stream",
                data=payload,
                from_tnef=True,
            )
        )
    try:
        rtf = tnef.rtfbody
    except Exception as exc:  # compressed RTF that does not decompress
        defects.append(f"tnef: RTF body unreadable ({type(exc).__name__})")
        rtf = None
    if isinstance(rtf, bytes) and rtf:
        contents.attachments.append(
            InboundAttachment(filename="body.rtf", content_type="application/rtf", data=rtf, from_tnef=True)
        )
    contents.html_body = _text(getattr(tnef, "htmlbody", None))
    contents.text_body = _text(getattr(tnef, "body", None))
    return contents
