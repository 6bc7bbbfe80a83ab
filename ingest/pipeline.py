"""The ingest pipelines, as data, and their two entry points: raw email, and normalized messages.

A pipeline is an ordered tuple of stage names (the stages are
:mod:`ingest.stages`); adding a step is one function there and one name in
a tuple here.  :func:`ingest_email` and :func:`ingest_message` hand the
named pipeline to :func:`ingest.runner.run_pipeline`, which owns the
transaction and every outcome.
"""

from __future__ import annotations

from typing import Any

from frontdesk.ingest.context import IngestContext
from frontdesk.model import Channel
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome
from frontdesk.ingest.runner import Step, run_pipeline, store_raw
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

EMAIL_PIPELINE: tuple[str, ...] = (
    "parse",
    "screen",
    "store_attachments",
    "resolve_email_channel",
    "reject_duplicate",
    "identify_email_contact",
    "thread_email",
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


def steps(pipeline: str) -> list[Step]:
    """The named pipeline's stages, looked up now (so a test may swap one in ``STAGES``)."""
    return [Step(name, STAGES[name], in_transaction=name not in BEFORE_TRANSACTION) for name in PIPELINES[pipeline]]


async def ingest_email(ctx: IngestContext, raw: bytes, envelope: Envelope, *,
                       replay_of: int | None = None, intake_id: int | None = None) -> IngestOutcome:
    """Store ``raw`` durably, then parse, screen, identify, thread and persist it in one transaction.

    Raises :class:`~frontdesk.storage.database.StorageUnavailable` when the
    database or blob store is down (the caller answers "retry later"); every
    other failure ends in the quarantine with outcome ``quarantined``.
    ``replay_of`` is the quarantined item being replayed, updated instead of
    a new one added.  ``intake_id`` is the durable intake row the mail
    came in (settled in the pipeline's transaction, :mod:`ingest.runner`).
    """
    raw_blob = await store_raw(ctx, raw)
    return await run_pipeline(ctx, steps("email"), envelope=envelope, raw=raw, raw_blob=raw_blob,
                              replay_of=replay_of, intake_id=intake_id)


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
