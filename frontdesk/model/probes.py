"""The table the readiness probe writes to, proving the database can commit a write."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow


class ReadinessProbe(Base):
    """One row inserted and deleted by each ``/readyz`` call, in its own transaction; normally empty.

    A PostgreSQL server whose disk is full (or that is read-only) still
    answers ``SELECT 1``; only a committed write shows it cannot take mail.
    """

    __tablename__ = "readiness_probes"

    id: Mapped[int] = mapped_column(primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(default=utcnow)
