"""A pipeline's automation settings: status triggers, status action chains, email templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base, utcnow

# Action kinds
SEND_EMAIL = "send_email"
NOTIFY = "notify"

# Notification recipients
TO_USER = "user"
TO_TEAM = "team"
TO_OWNER = "owner"
TO_OWNER_TEAM = "owner_team"


class PipelineAutomation(Base):
    """The two status triggers and the source filter of one pipeline."""

    __tablename__ = "pipeline_automation"

    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    email_sent_enabled: Mapped[bool] = mapped_column(default=True)
    email_sent_status_id: Mapped[int | None] = mapped_column(ForeignKey("statuses.id", ondelete="SET NULL"))
    customer_replied_enabled: Mapped[bool] = mapped_column(default=True)
    customer_replied_status_id: Mapped[int | None] = mapped_column(ForeignKey("statuses.id", ondelete="SET NULL"))
    # Channels whose tickets status actions also apply to; email and forms
    # always do, chat and Messenger only when listed here.
    action_sources: Mapped[list[Any]] = mapped_column(default=list)


class StatusAction(Base):
    """One link of the ordered action chain that runs when a ticket enters a status."""

    __tablename__ = "status_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("email_templates.id"))
    recipient_kind: Mapped[str | None] = mapped_column(String(20))
    recipient_id: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)


class EmailTemplate(Base):
    __tablename__ = "email_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # Transactional mail reaches any contact; other automated mail only marketing contacts.
    transactional: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
