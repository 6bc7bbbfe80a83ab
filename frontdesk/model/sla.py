"""SLA settings (one row) and SLA clocks: one row per running or finished clock of a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow

# Clock states
ON_TRACK = "on_track"
DUE_SOON = "due_soon"
OVERDUE = "overdue"
MET = "met"
MISSED = "missed"
RUNNING_STATES = (ON_TRACK, DUE_SOON, OVERDUE)
CLOCK_STATES = (ON_TRACK, DUE_SOON, OVERDUE, MET, MISSED)


class SlaSettingsRow(Base):
    """The help desk's SLA settings: the checked document of ``tickets.sla.settings``; id is always 1."""

    __tablename__ = "sla_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Counts the changes; a running clock computed under an older one is recomputed in the background.
    version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SlaClock(Base):
    """One SLA clock of a ticket: first response, a next response, or time to close.

    ``next_timer_at`` is when the timer scanner must look at the clock next
    (its due-soon or due moment, whichever it has not fired yet); it is NULL
    for finished, paused and already overdue clocks, so the partial index
    holds only clocks that can still fire.  ``settings_version`` is the
    settings version its target and due times were computed under: a
    running clock behind the current one waits (unfired) for the background
    recompute, found through the second partial index.
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_next_timer_at", "next_timer_at",
              postgresql_where=text("next_timer_at IS NOT NULL"), sqlite_where=text("next_timer_at IS NOT NULL")),
        Index("ix_sla_clocks_ticket_kind", "ticket_id", "kind"),
        Index("ix_sla_clocks_settings_version", "settings_version", "next_timer_at",
              postgresql_where=text("stopped_at IS NULL"), sqlite_where=text("stopped_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default=ON_TRACK)
    started_at: Mapped[datetime]
    target_minutes: Mapped[int]
    due_soon_minutes: Mapped[int] = mapped_column(default=0)
    # [[start, end or null], ...] as ISO instants: time in a pause status.
    pauses: Mapped[list[Any]] = mapped_column(default=list)
    due_at: Mapped[datetime | None]  # None while paused or when the schedule never opens
    due_soon_at: Mapped[datetime | None]
    next_timer_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    business_seconds: Mapped[int | None]  # the business time it took, once stopped
    settings_version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
