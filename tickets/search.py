"""The search box: one ``q`` as a WHERE clause on ``tickets``, on each database's full-text index.

Matches, case-insensitively: the ticket id, name and description, the
contact's first and last name, email, phone and mobile (digits only, so
"+1 555-0102" finds "(555) 0102"), the company name, and message bodies.
Partial matches on names, emails and phones; words in descriptions and
bodies.  The documents are kept by ``tickets.search_index``.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, func, literal_column, or_, select, text

from frontdesk.model import Ticket, TicketSearchDocument
from frontdesk.tickets.search_index import phone_digits

MAX_QUERY = 200
_PHONE_LIKE = re.compile(r"^[\d\s+().\-/]+$")
MIN_PHONE_DIGITS = 3
TRIGRAM = 3  # SQLite's trigram tokenizer needs at least this many characters


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts5_phrase(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def search_clause(q: str, dialect: str) -> ColumnElement[bool]:
    """Tickets matching the search text ``q`` (already stripped, non-empty)."""
    q = q[:MAX_QUERY].replace("\x00", "").lower()  # PostgreSQL text cannot hold NUL
    doc = TicketSearchDocument
    pattern = _like_pattern(q)
    digits = phone_digits(q) if _PHONE_LIKE.match(q) else ""
    matches: list[ColumnElement[bool]] = []
    if dialect == "postgresql":
        matches.append(doc.names.like(pattern, escape="\\"))
        matches.append(func.to_tsvector(literal_column("'simple'"), doc.document)
                       .op("@@")(func.plainto_tsquery(literal_column("'simple'"), q)))
        if len(digits) >= MIN_PHONE_DIGITS:
            matches.append(doc.phones.like(_like_pattern(digits), escape="\\"))
        found = select(doc.ticket_id).where(or_(*matches))
    else:
        fts = "ticket_search_fts"
        column_match = []
        if len(q) >= TRIGRAM:
            column_match.append(f"{{names document}} : {_fts5_phrase(q)}")
        if len(digits) >= MIN_PHONE_DIGITS:
            column_match.append(f"phones : {_fts5_phrase(digits)}")
        if column_match:
            found = select(literal_column("rowid")).select_from(text(fts)).where(
                literal_column(fts).op("MATCH")(" OR ".join(column_match)))
        else:  # shorter than a trigram: a scan of the (small, embedded) documents
            found = select(doc.ticket_id).where(or_(doc.names.like(pattern, escape="\\"),
                                                   doc.document.like(pattern, escape="\\")))
    clause = Ticket.id.in_(found)
    if q.isascii() and q.isdigit() and len(q) <= 10 and 0 < int(q) < 2**31:
        clause = or_(clause, Ticket.id == int(q))
    return clause
