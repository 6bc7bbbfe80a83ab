"""Custom ticket views (saved filters and sort, shared privately, with teams or with everyone) and the search index."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow

PRIVATE = "private"
TEAMS = "teams"
EVERYONE = "everyone"
SHARING = (PRIVATE, TEAMS, EVERYONE)


class TicketView(Base):
    __tablename__ = "ticket_views"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Who made it: a private view is theirs alone. None once they are deleted.
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    sharing: Mapped[str] = mapped_column(String(10), default=PRIVATE)
    # Filter-language strings (tickets.filters), ANDed.
    filters: Mapped[list[Any]] = mapped_column(default=list)
    sort: Mapped[str] = mapped_column(String(210), default="-updated_at")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TicketViewTeam(Base):
    """A team a view with sharing ``teams`` is shared with."""

    __tablename__ = "ticket_view_teams"
    __table_args__ = (UniqueConstraint("view_id", "team_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    view_id: Mapped[int] = mapped_column(ForeignKey("ticket_views.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)


class TicketSearchDocument(Base):
    """One ticket's searchable text, rebuilt by ``tickets.search_index`` whenever what it is made of changes.

    The full-text structures over it (SQLite FTS5, PostgreSQL tsvector and
    trigram indexes) are hand-written DDL in ``frontdesk.storage.search_ddl``.
    """

    __tablename__ = "ticket_search"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    # Ticket id and name, the contact's names and email, the company name: partial matches.
    names: Mapped[str] = mapped_column(Text, default="")
    # Description and message bodies: word matches.
    document: Mapped[str] = mapped_column(Text, default="")
    # The contact's phone numbers as digits only, space separated: "+1 (555) 010-2030" -> "15550102030".
    phones: Mapped[str] = mapped_column(Text, default="")
