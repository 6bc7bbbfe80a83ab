"""Ticket property definitions (built-in and custom) and per-status stage properties."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base


class PropertyDefinition(Base):
    """A custom ticket property; built-in ones live in code, not in this table."""

    __tablename__ = "property_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))  # string, number, enumeration, date, boolean
    options: Mapped[list[Any]] = mapped_column(default=list)  # enumeration values
    read_only: Mapped[bool] = mapped_column(default=False)
    calculated: Mapped[bool] = mapped_column(default=False)


class StageProperty(Base):
    """A property shown, and maybe required, when a ticket is put in a status by hand."""

    __tablename__ = "stage_properties"
    __table_args__ = (UniqueConstraint("status_id", "property_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    property_name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    required: Mapped[bool] = mapped_column(default=False)
