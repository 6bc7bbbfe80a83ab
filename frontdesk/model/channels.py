"""Connected channels: a support address, a Messenger Page, a chat or a web form.

A channel maps its inbound messages to a pipeline and has the "create
tickets" and "enabled" switches.  This table alone says which channels
exist and receive: the settings only seed it at start-up.  Secrets (app
secrets, page tokens) stay in the settings file and never land in this table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.model.base import Base

EMAIL = "email"
MESSENGER = "messenger"
CHAT = "chat"
FORM = "form"
CHANNEL_KINDS = (EMAIL, MESSENGER, CHAT, FORM)


class Channel(Base):
    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # email: the support address; messenger: the Page id; chat/form: the slug in the URL.
    key: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"), index=True)
    create_tickets: Mapped[bool] = mapped_column(default=True)
    # A disabled channel receives nothing (email: RCPT answers 550) but stays,
    # with its tickets and contacts; its address still counts as ours.
    enabled: Mapped[bool] = mapped_column(default=True)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
