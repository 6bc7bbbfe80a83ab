"""The ingest pipelines, as data, and their two entry points: raw email, and normalized messages.

A pipeline is an ordered tuple of stage names (the stages are
:mod:`ingest.stages`); adding a step is one function there and one name in
a tuple here.  :func:`ingest_emails` hands the email pipeline and a batch
of mail to :func:`ingest.batch_runner.run_email_batch`,
:func:`ingest_messages` the message pipeline and a batch of channel
messages (the webhook processor) to
:func:`ingest.batch_runner.run_message_batch`, and :func:`ingest_message`
the message pipeline and one message (replays, tools) to
:func:`ingest.runner.run_pipeline`; the runners own the transaction and
every outcome.
"""

from __future__ import annotations

from typing import Any, Sequence

from frontdesk.ingest.context import IngestContext
from frontdesk.model import Channel
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome
from frontdesk.ingest.batch_runner import EmailItem, MessageItem, run_email_batch, run_message_batch
from frontdesk.ingest.runner import Step, run_pipeline
from frontdesk.ingest.stages import (
    Stage,
    identify_channel_contact,
    identify_email_contact,
    parse,
    reject_duplicate,
    reject_known_message,
    resolve_email_channel,
    resolve_message_channel,
    screen,
    store,
    store_attachments,
    thread_conversation,
    thread_email,
)

# Every stage by name; pipelines list names.
STAGES: dict[str, Stage] = {stage.__name__: stage for stage in (
    parse, screen, store_attachments, resolve_email_channel, resolve_message_channel, reject_duplicate,
    reject_known_message, identify_email_contact, identify_channel_contact, thread_email, thread_conversation, store,
)}

# Email runs in batches (ingest.batch_runner): the stages up to
# thread_email only decide, from facts read once for the batch; the
# contact and the message are written after them.
EMAIL_PIPELINE: tuple[str, ...] = (
    "parse",
    "screen",
    "store_attachments",
    "resolve_email_channel",
    "reject_duplicate",
    "thread_email",
    "identify_email_contact",
    "store",
)

# Messenger, chat and forms arrive already normalized by their channel.
MESSAGE_PIPELINE: tuple[str, ...] = (
    "store_attachments",
    "resolve_message_channel",
    "reject_known_message",
    "identify_channel_contact",
    "thread_conversation",
    "store",
)

PIPELINES: dict[str, tuple[str, ...]] = {"email": EMAIL_PIPELINE, "message": MESSAGE_PIPELINE}

# Stages that touch no database run before the transaction opens, so a
# slow parse or an fsync never holds it (or SQLite's single writer) open.
# They lead their pipeline; every later stage runs inside the transaction.
BEFORE_TRANSACTION = frozenset({"parse", "screen", "store_attachments"})

# The stages that write; once one has run for a mail, its failure rolls its
# batch back (the others only decide, so a failure there quarantines the
# one mail and the batch goes on).
WRITING = frozenset({"identify_email_contact", "store"})


def steps(pipeline: str) -> list[Step]:
    """The named pipeline's stages, looked up now (so a test may swap one in ``STAGES``)."""
    return [Step(name, STAGES[name], in_transaction=name not in BEFORE_TRANSACTION) for name in PIPELINES[pipeline]]


async def ingest_emails(ctx: IngestContext, items: Sequence[EmailItem]) -> list[IngestOutcome]:
    """Parse, screen, identify, thread and persist a batch of mail in one transaction; the outcomes, in order.

    The one way email comes in: the intake processor (SMTP, IMAP), an IMAP
    poller without intake and the quarantine replayer all come here
    (:mod:`ingest.batch_runner`).  Raises
    :class:`~frontdesk.storage.database.StorageUnavailable` when the
    database or blob store is down (nothing settled; the caller retries);
    every other failure ends in the quarantine with outcome ``quarantined``.
    """
    return await run_email_batch(ctx, steps("email"), items, writing=WRITING)


async def ingest_email(ctx: IngestContext, raw: bytes, envelope: Envelope, *,
                       replay_of: int | None = None, intake_id: int | None = None) -> IngestOutcome:
    """One mail through :func:`ingest_emails`.

    ``replay_of`` is the quarantined item being replayed, updated instead of
    a new one added.  ``intake_id`` is the durable intake row the mail
    came in (settled in the pipeline's transaction).
    """
    return (await ingest_emails(ctx, [EmailItem(raw, envelope, intake_id=intake_id, replay_of=replay_of)]))[0]


async def ingest_messages(ctx: IngestContext, items: Sequence[MessageItem]) -> list[IngestOutcome]:
    """Ingest a batch of Messenger / chat / form messages in arrival order, in one transaction; their outcomes.

    A later message of the batch threads onto (or duplicates) an earlier
    one exactly as if they had come in separate runs.  Raises
    :class:`~frontdesk.storage.database.StorageUnavailable` when storage
    is down or the transaction keeps losing races (nothing stored; the
    caller retries); every other failure quarantines its message.
    """
    return await run_message_batch(ctx, steps("message"), items, writing=WRITING)


async def ingest_message(ctx: IngestContext, message: InboundMessage, *, channel: Channel | None = None,
                         replay_of: int | None = None) -> IngestOutcome:
    """Ingest an already-normalized Messenger / chat / form message (raw payload already in the blob store).

    Threaded by (channel, thread key) on conversations; same persistence,
    events and quarantine as email.  ``channel`` is the message's channel
    row when the caller already looked it up.
    """
    envelope = Envelope(channel=message.channel, source=message.source, channel_key=message.channel_key)
    return await run_pipeline(ctx, steps("message"), envelope=envelope, raw=None, raw_blob=message.raw_blob,
                              message=message, channel=channel, replay_of=replay_of)


async def replay_email(ctx: IngestContext, raw: bytes, envelope: Envelope, record: dict[str, Any],
                       item_id: int) -> IngestOutcome:
    """The quarantine replayer for email: the raw mail through :func:`ingest_email` again."""
    return await ingest_email(ctx, raw, envelope, replay_of=item_id)
