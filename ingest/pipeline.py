"""The ingest pipelines and their runner: raw input in, one committed outcome (or a quarantined item) out.

A pipeline is plain data, an ordered tuple of stages; each stage is a
small async function of the :class:`Ingest` state.  Final outcomes that
end a pipeline early are exceptions (:class:`FinalOutcome`,
:class:`~ingest.message.QuarantineMessage`), caught in exactly one place,
:func:`run_pipeline`, which owns the transaction:

* success: commit, then run the context's on-commit callbacks;
* a storage outage: roll back and raise
  :class:`~frontdesk.storage.database.StorageUnavailable` so the edge
  answers "retry later" (SMTP 451, IMAP leaves the mail unseen);
* anything else (a bug, input we cannot handle): roll back and keep the
  raw input in the quarantine, with a cause, for replay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Channel, Contact, Message
from frontdesk.model.channels import EMAIL
from frontdesk.model.messages import ACCEPTED
from frontdesk.storage.database import StorageUnavailable, is_storage_outage
from frontdesk.ingest import contacts, persist, threading
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_channels import email_channels, own_addresses
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.parse_email import parse_email
from frontdesk.ingest.quarantine import store_quarantined
from frontdesk.ingest.screening import screen as screen_message
from frontdesk.ingest.screening.rule import Ours
from frontdesk.ingest.writer import writer_turn

log = logging.getLogger(__name__)


class FinalOutcome(Exception):
    """A stage has decided what becomes of the message; no later stage runs."""

    def __init__(self, outcome: IngestOutcome) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome


@dataclass
class Ingest:
    """What the stages of one run share (Mailman's ``msgdata``)."""

    ctx: IngestContext
    session: AsyncSession | None
    envelope: Envelope
    raw: bytes | None
    raw_blob: str
    message: InboundMessage | None = None
    channel: Channel | None = None
    contact: Contact | None = None
    match: threading.ThreadMatch | None = None
    attachment_blobs: list[str | None] | None = None
    email_channels: list[Channel] = field(default_factory=list)
    outcome: IngestOutcome | None = None

    @property
    def db(self) -> AsyncSession:
        assert self.session is not None, "a database stage ran outside the transaction"
        return self.session

    @property
    def inbound(self) -> InboundMessage:
        assert self.message is not None, "the parse stage did not run"
        return self.message


Stage = Callable[[Ingest], Awaitable[None]]


# -- stages -----------------------------------------------------------------

async def parse(state: Ingest) -> None:
    """Raw RFC 5322 bytes to an :class:`InboundMessage`."""
    assert state.raw is not None
    state.message = parse_email(state.raw, envelope=state.envelope, raw_blob=state.raw_blob)


async def screen(state: Ingest) -> None:
    """Flag auto-replies, bounces and loops; they are stored but never start a ticket."""
    settings = state.ctx.settings
    ours = Ours.of(settings.secret_key, await own_addresses(state.ctx.sessions), settings.from_address)
    state.message = screen_message(state.inbound, ours)


async def store_attachments(state: Ingest) -> None:
    """Attachment bytes to the blob store, before the transaction, so it holds no lock while fsyncing."""
    state.attachment_blobs = [
        await state.ctx.blobs.put(part.data) if part.data is not None else None
        for part in state.inbound.attachments
    ]


async def resolve_email_channel(state: Ingest) -> None:
    """The support address the mail was sent to picks the channel, its pipeline and its switches.

    IMAP pollers name it (``envelope.channel_key``); over SMTP it is the
    envelope recipient; the To / Cc headers are the last resort.
    """
    message = state.inbound
    state.email_channels = await email_channels(state.db, state.ctx.sessions)
    # A disabled channel receives nothing: its mail waits in the quarantine.
    channels = {c.key.lower(): c for c in state.email_channels if c.enabled}
    tried = [state.envelope.channel_key, message.channel_key, *state.envelope.rcpt_tos, *message.to, *message.cc]
    for value in tried:
        address = contacts.normalize_address(value)
        if address in channels:
            state.channel = channels[address]
            message.channel_key = state.channel.key
            return
    raise QuarantineMessage("unknown_channel", f"no support address among {[t for t in tried if t][:10]}")


async def resolve_message_channel(state: Ingest) -> None:
    """Webhook channels name themselves: (kind, key) such as (messenger, page id)."""
    message = state.inbound
    state.channel = await state.db.scalar(
        select(Channel).where(Channel.kind == message.channel, Channel.key == (message.channel_key or ""),
                              Channel.enabled))
    if state.channel is None:
        raise QuarantineMessage("unknown_channel", f"no {message.channel} channel {message.channel_key!r}")


async def reject_duplicate(state: Ingest) -> None:
    """An exact redelivery (same Message-ID, same bytes) is acknowledged and not stored again.

    SMTP redelivery after a lost 250 and an IMAP UIDVALIDITY resync both
    bring back byte-identical mail.  Nothing is written: the first copy
    already holds the same raw bytes, and the outcome names it.
    """
    message = state.inbound
    if state.db.get_bind().dialect.name == "postgresql":
        # Two copies arriving at the same moment (SMTP retry racing an IMAP
        # poll) take turns here, so the second one sees the first's row.
        # SQLite writers take turns anyway (ingest.writer).
        key = int.from_bytes(bytes.fromhex(message.content_hash[:16]), "big", signed=True)
        await state.db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    query = select(Message.id, Message.ticket_id).where(Message.content_hash == message.content_hash)
    if message.external_id:
        query = query.where(Message.external_id == persist.clean_text(message.external_id, 998))
    elif message.channel == EMAIL:
        query = query.where(Message.external_id.is_(None))
    else:
        # One webhook body can carry several messages without ids: only
        # the provider's message id can tell a redelivery apart.
        return
    first = (await state.db.execute(query.order_by(Message.id).limit(1))).first()
    if first is not None:
        raise FinalOutcome(IngestOutcome("duplicate", first.ticket_id, first.id, reason="same Message-ID and content"))


async def identify_email_contact(state: Ingest) -> None:
    """Find or create the sender as a contact; screened mail (MAILER-DAEMON, vacation) creates none."""
    if state.inbound.screening == ACCEPTED:
        state.contact = await contacts.identify_email_sender(state.db, state.inbound)


async def identify_channel_contact(state: Ingest) -> None:
    assert state.channel is not None
    if state.inbound.screening == ACCEPTED:
        state.contact = await contacts.identify_channel_sender(state.db, state.inbound, state.channel.id)


async def thread_email(state: Ingest) -> None:
    if state.inbound.screening != ACCEPTED:
        state.match = await threading.link_screened(state.db, state.inbound, state.ctx.secret_key)
    else:
        state.match = await threading.thread_email(state.db, state.inbound, state.ctx.secret_key)


async def thread_conversation(state: Ingest) -> None:
    assert state.channel is not None
    state.match = await threading.thread_by_key(state.db, state.inbound, state.channel.id)


async def store(state: Ingest) -> None:
    """One transaction (the runner's): conversation, ticket, message, attachments, participants, events."""
    assert state.channel is not None and state.match is not None
    if not state.email_channels:
        state.email_channels = await email_channels(state.db, state.ctx.sessions)
    own = {c.key.lower() for c in state.email_channels}
    stored = await persist.persist_message(
        state.db, state.ctx.blobs, state.inbound,
        channel=state.channel, contact=state.contact, match=state.match, own_addresses=own,
        attachment_blobs=state.attachment_blobs,
    )
    await persist.record_ingest_events(state.db, state.inbound, stored)
    state.outcome = persist.outcome_for(stored, state.match, state.inbound)


# -- the pipelines, as data -------------------------------------------------

# Every stage by name; pipelines list names, so adding a step is one
# function here and one name in a tuple.
STAGES: dict[str, Stage] = {stage.__name__: stage for stage in (
    parse, screen, store_attachments, resolve_email_channel, resolve_message_channel, reject_duplicate,
    identify_email_contact, identify_channel_contact, thread_email, thread_conversation, store,
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
    "reject_duplicate",
    "identify_channel_contact",
    "thread_conversation",
    "store",
)

PIPELINES: dict[str, tuple[str, ...]] = {"email": EMAIL_PIPELINE, "message": MESSAGE_PIPELINE}

# Stages that touch no database run before the transaction opens, so a
# slow parse or an fsync never holds it (or SQLite's single writer) open.
# They lead their pipeline; every later stage runs inside the transaction.
BEFORE_TRANSACTION = frozenset({"parse", "screen", "store_attachments"})


# -- the runner ---------------------------------------------------------------

# The webhook intake imported this name before it was public.
_writer_turn = writer_turn


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:4000]


# PostgreSQL's "try again" answers: a deadlock victim or a serialization
# failure.  The whole transaction is re-run, which is safe because it
# was rolled back.
TRANSACTION_ATTEMPTS = 3
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _lost_a_race(error: DBAPIError) -> bool:
    original = error.orig
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


async def run_pipeline(
    ctx: IngestContext,
    pipeline: str,
    *,
    envelope: Envelope,
    raw: bytes | None,
    raw_blob: str,
    message: InboundMessage | None = None,
    replay_of: int | None = None,
) -> IngestOutcome:
    """Run the named pipeline in one transaction; the single place final outcomes and failures are handled."""
    stage_name = "begin"
    stages = PIPELINES[pipeline]
    leading = 0
    while leading < len(stages) and stages[leading] in BEFORE_TRANSACTION:
        leading += 1
    try:
        state = Ingest(ctx, None, envelope, raw, raw_blob, message=message)
        try:
            for stage_name in stages[:leading]:
                await STAGES[stage_name](state)
            for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                try:
                    async with writer_turn(ctx):
                        async with ctx.sessions() as session:
                            async with session.begin():
                                state.session = session
                                for stage_name in stages[leading:]:
                                    await STAGES[stage_name](state)
                                stage_name = "commit"
                    break
                except DBAPIError as error:
                    if attempt == TRANSACTION_ATTEMPTS or not _lost_a_race(error):
                        raise
                    log.info("ingest: transaction lost a race with another (%s); retrying", _describe(error))
            outcome = state.outcome or IngestOutcome("quarantined", reason="no outcome")
        except FinalOutcome as final:
            outcome = final.outcome
    except QuarantineMessage as error:
        cause, detail = error.cause, error.detail
    except Exception as error:  # noqa: BLE001 - the one place every failure is sorted out
        if is_storage_outage(error):
            log.warning("ingest: storage unavailable in stage %s: %s", stage_name, _describe(error))
            raise StorageUnavailable(f"storage unavailable during {stage_name}: {_describe(error)}") from error
        log.exception("ingest: stage %s failed; quarantining", stage_name)
        cause, detail = f"{stage_name}_failed", _describe(error)
    else:
        if outcome.kind != "duplicate":
            try:
                await ctx.committed()
            except Exception:  # noqa: BLE001 - the message is durable; automation polls anyway
                log.exception("ingest: on-commit callback failed after a successful commit")
        return outcome

    quarantine_id = await store_quarantined(
        ctx,
        channel=envelope.channel,
        source=envelope.source,
        blob=raw_blob,
        cause=cause,
        detail=f"stage {stage_name}: {detail}" if detail else f"stage {stage_name}",
        envelope=_envelope_record(envelope, message),
        replay_of=replay_of,
    )
    return IngestOutcome("quarantined", quarantine_id=quarantine_id, reason=cause)


def _envelope_record(envelope: Envelope, message: InboundMessage | None) -> dict:
    record = envelope.to_dict()
    if message is not None and message.external_id:
        # Lets a webhook channel's replayer pick this message out of its payload.
        record["external_id"] = message.external_id
    return record


async def _store_raw(ctx: IngestContext, raw: bytes) -> str:
    try:
        return await ctx.blobs.put(raw)
    except StorageUnavailable:
        raise
    except OSError as error:
        raise StorageUnavailable(f"blob store cannot write: {error}") from error


async def ingest_email(ctx: IngestContext, raw: bytes, envelope: Envelope, *,
                       replay_of: int | None = None) -> IngestOutcome:
    """Store ``raw`` durably, then parse, screen, identify, thread and persist it in one transaction.

    Raises :class:`StorageUnavailable` when the database or blob store is
    down (the caller answers "retry later"); every other failure ends in
    the quarantine with outcome ``quarantined``.  ``replay_of`` is the
    quarantined item being replayed, updated instead of a new one added.
    """
    raw_blob = await _store_raw(ctx, raw)
    return await run_pipeline(ctx, "email", envelope=envelope, raw=raw, raw_blob=raw_blob,
                              replay_of=replay_of)


async def ingest_message(ctx: IngestContext, message: InboundMessage, *,
                         replay_of: int | None = None) -> IngestOutcome:
    """Ingest an already-normalized Messenger / chat / form message (raw payload already in the blob store).

    Threaded by (channel, thread key) on conversations; same persistence,
    events and quarantine as email.
    """
    envelope = Envelope(channel=message.channel, source=message.source, channel_key=message.channel_key)
    return await run_pipeline(ctx, "message", envelope=envelope, raw=None, raw_blob=message.raw_blob,
                              message=message, replay_of=replay_of)
