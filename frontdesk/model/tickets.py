"""Tickets and the addresses that take part in them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_pipeline_status", "pipeline_id", "status_id"),
        # The default views' lists and counts: open statuses are resolved
        # first (a handful of ids), then these answer "status in (...) and
        # owner ..." from the index alone, spam left out by the predicate.
        # The predicates are written as SQLAlchemy renders ``~Ticket.is_spam``
        # and ``Ticket.is_spam`` on each database, so both planners match them.
        # Live tickets only, and (PostgreSQL) with the pipeline the access
        # rule tests: a view's page of ids is an index-only scan.
        Index("ix_tickets_view_owner", "status_id", "owner_id", "updated_at", "id",
              postgresql_include=["pipeline_id"],
              postgresql_where=text("deleted_at IS NULL AND NOT is_spam"),
              sqlite_where=text("deleted_at IS NULL AND is_spam = 0")),
        Index("ix_tickets_updated", "updated_at", "id"),
        # "Created in the last N days" / before / after: a range, not a scan.
        Index("ix_tickets_created", "created_at"),
        Index("ix_tickets_sent", "updated_at", "id",
              postgresql_where=text("last_message_outbound AND NOT is_spam"),
              sqlite_where=text("last_message_outbound = 1 AND is_spam = 0")),
        Index("ix_tickets_spam", "updated_at", "id",
              postgresql_where=text("is_spam"), sqlite_where=text("is_spam = 1")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id"))
    priority: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    source_channel: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    # The conversation the ticket was created from: "a customer replies"
    # fires on this thread (and on any thread once the ticket was reopened).
    # No foreign key: conversations already point at tickets, and a cycle of
    # constraints would need ALTERs that SQLite cannot do.
    origin_conversation_id: Mapped[int | None]
    custom_properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Marked spam by an agent: out of every view but Spam, never automated.
    is_spam: Mapped[bool] = mapped_column(default=False)
    # Whether the latest message is an agent's outbound one (the Sent view);
    # kept by tickets.search_index.refresh_ticket_index with the search document.
    last_message_outbound: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]
    reopened_at: Mapped[datetime | None]
    # Soft delete (tickets.lifecycle): a deleted ticket is out of every list
    # and answer until an admin restores it.
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))



class TicketCount(Base):
    """How many live tickets share one combination of the columns the default views and the access rule test.

    The default views' counts are sums over these few rows instead of counts
    over every ticket (``tickets.counts``).  The database keeps them, in the
    writer's transaction, with triggers on ``tickets``
    (``frontdesk.storage.count_ddl``): every insert, update, delete, soft
    delete and ``ON DELETE SET NULL`` of an owner or team passes through
    them, whichever code path wrote it.  No owner or team is stored as 0 so
    the key can be a primary key (NULLs would be distinct in it).
    """

    __tablename__ = "ticket_counts"

    pipeline_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    owner_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    team_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    is_spam: Mapped[bool] = mapped_column(primary_key=True)
    last_message_outbound: Mapped[bool] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)

class TicketParticipant(Base):
    """An email address seen on a ticket, as sender or recipient.

    A subject token like ``[#1234]`` is only trusted when its sender is
    already one of these: anyone can type a ticket number.
    """

    __tablename__ = "ticket_participants"
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320), index=True)
