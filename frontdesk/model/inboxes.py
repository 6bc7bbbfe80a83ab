"""Inboxes (the help desk and named conversations inboxes) and the record of conversations moved between them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow

HELP_DESK = "help_desk"  # the one inbox where conversations have tickets
CONVERSATIONS = "conversations"
INBOX_KINDS = (HELP_DESK, CONVERSATIONS)


class Inbox(Base):
    __tablename__ = "inboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The help desk's key is "help_desk"; the stable name config export/apply uses.
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default=CONVERSATIONS)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationMove(Base):
    """One move of a conversation to another inbox: who, from where, to whom it was reassigned, and the comment.

    The comment is kept here as the move's internal note (never sent to the customer).
    """

    __tablename__ = "conversation_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    from_inbox_id: Mapped[int | None] = mapped_column(ForeignKey("inboxes.id", ondelete="SET NULL"))
    to_inbox_id: Mapped[int | None] = mapped_column(ForeignKey("inboxes.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    comment: Mapped[str | None] = mapped_column(Text)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
