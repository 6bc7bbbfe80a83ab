"""Internal comments on tickets (never sent to the customer) and reply snippets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow

# Snippet scope for everyone; a private snippet's scope is "user:<id>".
SHARED = "shared"


class Comment(Base):
    """An agent's note on a ticket, shown in its timeline; it may @mention users."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_ticket_created", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[Any]] = mapped_column(default=list)  # user ids, in order of first mention
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Snippet(Base):
    """Reusable reply text with template fields, shared with everyone or private to its owner."""

    __tablename__ = "snippets"
    # The scope column, not a nullable owner id: NULLs never collide in a
    # unique constraint, so "one shortcut per scope" needs a real value.
    __table_args__ = (UniqueConstraint("scope", "shortcut"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    shortcut: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(30), default=SHARED)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
