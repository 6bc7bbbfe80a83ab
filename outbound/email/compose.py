"""Build the MIME message for one outbound email, threaded and safe to send.

Every header value is checked for CR/LF: a value that came from a template
or the API must never be able to add a header of its own (header
injection).  Values from templates are flattened with :func:`flatten_header`
before they get here; anything that still carries a line break is refused
with :class:`HeaderInjectionError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr

from frontdesk.mail_markers import AUTOMATED_MARKER_HEADER
from frontdesk.model.base import utcnow
from frontdesk.outbound.email.mime import write_mime

# RFC 3834 section 5: automatic responses say so, and ask Exchange not to
# answer them with its own automatic replies.
AUTO_REPLIED = "auto-replied"
AUTO_GENERATED = "auto-generated"

# Every character Python's email package (and ``str.splitlines``) takes for
# a line break, not only CR and LF: the package refuses a header holding one,
# so a customer's subject with U+2028 would otherwise fail the whole mail.
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_MSGID = re.compile(r"^[^\s<>@]+@[^\s<>@]+$")
MAX_REFERENCES = 20  # long threads: keep the first and the most recent ids


class HeaderInjectionError(ValueError):
    """A header value contains a line break: refused rather than sent."""


def checked_header(value: str, *, name: str) -> str:
    """``value`` unchanged, or :class:`HeaderInjectionError` if it could start a new header."""
    if _LINE_BREAK.search(value) or "\x00" in value:
        raise HeaderInjectionError(f"{name} must not contain line breaks")
    return value


def flatten_header(value: str) -> str:
    """Template output for a header: every run of line breaks becomes one space."""
    return re.sub(rf"\s*{_LINE_BREAK.pattern}+\s*", " ", value.replace("\x00", "")).strip()


def subject_with_token(subject: str, ticket_id: int) -> str:
    """The subject carrying ``[#<ticket>]`` exactly once, so replies thread even without headers."""
    token = f"[#{ticket_id}]"
    return subject if token in subject else f"{subject} {token}".strip()


def reply_subject(subject: str | None, fallback: str) -> str:
    base = (subject or "").strip() or fallback
    return base if re.match(r"(?i)^(re|aw|sv)\s*:", base) else f"Re: {base}"


def _msgid(value: str) -> str | None:
    value = value.strip().strip("<>")
    return value if _MSGID.match(value) else None


def thread_references(previous: list[str], parent: str | None) -> list[str]:
    """References for a reply to ``parent``: its own references plus itself, well-formed ids only."""
    ids = [i for i in (_msgid(v) for v in [*previous, *([parent] if parent else [])]) if i]
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1):]
    return unique


def checked_address(value: str, *, name: str) -> str:
    checked_header(value, name=name)
    display, address = parseaddr(value)
    if "@" not in address or address != address.strip() or " " in address:
        raise HeaderInjectionError(f"{name} is not an email address: {value!r}")
    return address


@dataclass(frozen=True)
class OutboundEmail:
    from_address: str
    to: tuple[str, ...]
    subject: str
    text: str
    message_id: str  # without angle brackets, from frontdesk.reply_tokens.make_message_id
    from_name: str | None = None
    html: str | None = None
    cc: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    auto_submitted: str | None = None  # AUTO_REPLIED / AUTO_GENERATED; None for a person's mail
    extra_headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def header_fields(mail: OutboundEmail) -> list[tuple[str, str]]:
    """The message's header fields, in order, every value checked (HeaderInjectionError)."""
    sender = checked_address(mail.from_address, name="From")
    name = checked_header(mail.from_name, name="From name") if mail.from_name else ""
    fields = [("From", formataddr((name, sender)) if name else sender),
              ("To", ", ".join(checked_address(a, name="To") for a in mail.to))]
    if mail.cc:
        fields.append(("Cc", ", ".join(checked_address(a, name="Cc") for a in mail.cc)))
    fields.append(("Subject", checked_header(mail.subject, name="Subject")))
    fields.append(("Date", format_datetime(utcnow())))
    own_id = _msgid(checked_header(mail.message_id, name="Message-ID"))
    if own_id is None:
        raise HeaderInjectionError(f"not a Message-ID: {mail.message_id!r}")
    fields.append(("Message-ID", f"<{own_id}>"))
    parent = _msgid(mail.in_reply_to) if mail.in_reply_to else None
    if parent:
        fields.append(("In-Reply-To", f"<{parent}>"))
    references = thread_references(list(mail.references), None)
    if references:
        fields.append(("References", " ".join(f"<{r}>" for r in references)))
    if mail.auto_submitted:
        fields += [("Auto-Submitted", mail.auto_submitted), ("X-Auto-Response-Suppress", "All"),
                   (AUTOMATED_MARKER_HEADER, mail.auto_submitted)]
    for header, value in mail.extra_headers:
        fields.append((checked_header(header, name="header name"), checked_header(value, name=header)))
    return fields


def compose(mail: OutboundEmail) -> EmailMessage:
    """The MIME message: text part, HTML alternative when given, threading and automation headers."""
    return _standard(header_fields(mail), mail)


def compose_bytes(mail: OutboundEmail) -> bytes:
    """:func:`compose`'s bytes; written directly (:mod:`outbound.email.mime`) when the message allows it."""
    fields = header_fields(mail)
    written = write_mime(fields, mail.text, mail.html)
    return written if written is not None else _standard(fields, mail).as_bytes()


def _standard(fields: list[tuple[str, str]], mail: OutboundEmail) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    for name, value in fields:
        message[name] = value
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


def envelope_recipients(mail: OutboundEmail) -> list[str]:
    return [Address(addr_spec=parseaddr(a)[1]).addr_spec for a in (*mail.to, *mail.cc)]
