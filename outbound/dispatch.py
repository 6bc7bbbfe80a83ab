"""Which function delivers a queued outbound message on each channel.

The delivery loop (:mod:`outbound.deliveries`) looks the channel of every
due ``Delivery`` row up in its :data:`Deliverers` table, which the daemon and
the worker build at start-up and pass in: email
(:func:`outbound.email.deliver.deliver_email`), and the webhook channels'
``"messenger"`` and ``"chat"`` (:mod:`channels.webhooks.deliverers`).

A deliverer has the signature::

    async def deliver(job: DeliveryJob) -> str | None

It sends ``job`` once and returns the provider's id for the sent message
(a Messenger ``mid``, an SMTP queue id) or ``None``.  It raises
:class:`TemporaryDeliveryError` for anything worth retrying (4xx, timeouts,
connection refused: the loop reschedules with backoff) and
:class:`PermanentDeliveryError` when retrying cannot help (5xx, unknown
recipient): the delivery is marked ``failed``.  Any other exception counts
as temporary.

Messenger and chat replies (``POST /api/v1/tickets/{id}/replies``) are
queued with ``recipient`` = the contact's id on that channel (the
``ContactIdentity.external_id``: a PSID, a chat visitor id) and
``payload = {"text": ..., "channel_id": <channels.id>, "thread_key": ...}``.

A deliverer may be called again for the same job after a
crash, so it must send the same content each time (email reuses the stored
MIME bytes, hence the same Message-ID).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore

if TYPE_CHECKING:
    from frontdesk.outbound.email.smarthost import SmarthostConnections


class TemporaryDeliveryError(Exception):
    """Sending failed in a way that may succeed later."""


class PermanentDeliveryError(Exception):
    """Sending failed and will fail again: give up on this delivery."""


@dataclass(frozen=True)
class DeliveryJob:
    """One attempt at one ``Delivery`` row, detached from the database session."""

    delivery_id: int
    idempotency_key: str
    channel: str
    recipient: str
    kind: str
    ticket_id: int | None
    message_id: int | None  # our messages.id, when the send is part of a conversation
    attempt: int  # 1 for the first try
    payload: Mapping[str, Any]
    settings: Settings
    blobs: BlobStore
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The delivery loop's open smarthost sessions, reused by the email deliverer; None sends one-shot.
    smarthost: SmarthostConnections | None = None


Deliverer = Callable[[DeliveryJob], Awaitable[str | None]]

# Channel kind -> its deliverer.
Deliverers = Mapping[str, Deliverer]
