"""Ticket pipelines and their ordered statuses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from frontdesk.model.base import Base, utcnow


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    internal_name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    statuses: Mapped[list[Status]] = relationship(
        back_populates="pipeline",
        order_by="Status.position",
        lazy="raise",
        cascade="all, delete-orphan",
    )


class Status(Base):
    """A stage of a pipeline; ``is_closed`` marks a ticket in it as closed."""

    __tablename__ = "statuses"
    __table_args__ = (UniqueConstraint("pipeline_id", "internal_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    # Generated once from the first label and never changed by a rename:
    # integrations and the API refer to statuses by it.
    internal_name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    is_closed: Mapped[bool] = mapped_column(default=False)

    pipeline: Mapped[Pipeline] = relationship(back_populates="statuses", lazy="raise")
