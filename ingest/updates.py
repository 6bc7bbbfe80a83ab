"""The normalized change to a message we already hold, as every channel produces it.

A customer message is an :class:`~ingest.message.InboundMessage`; what
happens *to* messages afterwards is a :class:`MessageUpdate`: a delivery or
read receipt for our sends, an echo of a message the channel's account sent
(ours or from another tool), an edit or an unsend by the customer.  The
update pipeline (:mod:`ingest.update_pipeline`) applies it; channels never
write these rows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DELIVERED = "delivered"  # receipt: our messages named by id, or all up to the watermark, reached the person
READ = "read"  # receipt: our messages up to the watermark were read
ECHO = "echo"  # a message the channel's own account sent: ours, or from another tool
EDITED = "edited"  # the customer edited a message we stored
UNSENT = "unsent"  # the customer withdrew a message we stored

KINDS = (DELIVERED, READ, ECHO, EDITED, UNSENT)


@dataclass(frozen=True)
class MessageUpdate:
    kind: str  # one of KINDS
    channel: str  # channel kind: "messenger"
    channel_id: int  # the Channel row, looked up once by the caller
    thread_key: str | None  # the person's conversation, as InboundMessage.thread_key
    source: str  # "webhook:messenger/<page id>"
    raw_blob: str  # sha256 of the stored raw payload
    provider_message_id: str | None = None  # the message concerned (echo: the echo's own id)
    receipt_message_ids: tuple[str, ...] = ()  # delivery receipts may name our messages
    watermark: datetime | None = None  # receipts: everything sent up to here
    sent_at: datetime | None = None  # when the provider says this happened
    text: str | None = None  # echo text, or the edited text
    edit_count: int | None = None  # edits: the provider's running count
    our_message_id: int | None = None  # echo: our messages.id, when the send carried our marker
    content_hash: str | None = None  # echo: stored on the outbound message it records
    extra: dict[str, Any] = field(default_factory=dict)  # echo: kept in messages.extra

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown message update kind {self.kind!r}")
