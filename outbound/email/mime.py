"""Write an outbound email's MIME text directly, for the common case, without the standard library's ``email`` package.

The ``email`` package (its header registry, content manager and
generator) cost about a millisecond of CPU per mail, a fifth of the
worker's time on a backlog of new tickets.  :func:`write_mime` writes the
same message the standard library composes, byte for byte but for the
multipart boundary's random digits, when every header value is ASCII and
fits a line or folds at spaces (what automation and agents send every day;
the text and HTML parts are encoded by the standard library's own
helper).  For a header it does not cover (a non-ASCII subject, a word
longer than a line, a value that looks like an encoded word) it returns
None and the caller composes with the standard library
(:func:`outbound.email.compose.compose_bytes`).  Header values arrive
checked by :mod:`outbound.email.compose` (no line breaks: no header injection).
"""

from __future__ import annotations

import random
from email.contentmanager import _encode_text  # type: ignore[attr-defined]
from email.policy import SMTP

MAX_LINE = 78  # RFC 5322 section 2.1.1, the standard library's policy.max_line_length
CRLF = b"\r\n"


def _header(name: str, value: str) -> bytes | None:
    """``Name: value`` folded at spaces into lines of at most MAX_LINE, or None when that takes more."""
    if not (value.isascii() and value.isprintable()) or "=?" in value or value != value.strip(" "):
        return None
    line = f"{name}: {value}"
    if len(line) <= MAX_LINE:
        return line.encode() + CRLF
    words = value.split(" ")
    if "" in words:  # runs of spaces: leave their folding to the standard library
        return None
    lines, current = [], f"{name}:"
    for word in words:
        if len(current) + 1 + len(word) > MAX_LINE and current.strip() != f"{name}:":
            lines.append(current)
            current = ""
        current += " " + word
    lines.append(current)
    if any(len(part) > MAX_LINE for part in lines):
        return None
    return "\r\n".join(lines).encode() + CRLF


def _text_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body) of a UTF-8 text part, chosen and encoded as ``set_content`` does.

    The standard library's own helper, so the choice (7bit, 8bit,
    quoted-printable or base64) and the encoding are exactly its;
    tests/automation/test_mime_writer.py pins the bytes.
    """
    cte, payload = _encode_text(text, "utf-8", None, SMTP)
    return cte, payload.encode("ascii", "surrogateescape").replace(b"\n", CRLF)


def _part_headers(subtype: str, cte: str) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'.encode()


def write_mime(headers: list[tuple[str, str]], text: str, html: str | None) -> bytes | None:
    """The message: ``headers`` in order, then the text part, or text and HTML as multipart/alternative."""
    head = []
    for name, value in headers:
        line = _header(name, value)
        if line is None:
            return None
        head.append(line)
    plain = _text_body(text)
    rich = _text_body(html) if html is not None else None
    if rich is None:
        return b"".join([*head, _part_headers("plain", plain[0]), b"MIME-Version: 1.0\r\n\r\n", plain[1]])
    boundary = _boundary(plain[1] + rich[1])
    delimiter = b"--" + boundary
    return b"".join([
        *head, b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="', boundary, b'"\r\n\r\n',
        delimiter, CRLF, _part_headers("plain", plain[0]), CRLF, plain[1], CRLF,
        delimiter, CRLF, _part_headers("html", rich[0]), b"MIME-Version: 1.0\r\n\r\n", rich[1], CRLF,
        delimiter, b"--\r\n",
    ])


def _boundary(bodies: bytes) -> bytes:
    # The standard library's form (email.generator._make_boundary); a body holding it gets another.
    while True:
        boundary = b"===============%019d==" % random.randrange(10**19)
        if b"--" + boundary not in bodies:
            return boundary
