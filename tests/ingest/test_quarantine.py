"""The quarantine: unprocessable input is kept raw with a cause, listed, and replayed idempotently."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from frontdesk.defaults import ensure_defaults
from frontdesk.model import Message, QuarantinedItem, Ticket
from frontdesk.settings import SupportAddress
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_email, replay_email
from frontdesk.ingest.quarantine import list_quarantine, replay_quarantined
from _ingest_mail import count, counts, mail, smtp_envelope


REPLAYERS = {"email": replay_email}


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


async def test_input_that_is_no_email_is_quarantined_raw_with_its_cause(ctx, sessions, blobs):
    raw = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR this is a picture, not a message"
    outcome = await ingest_email(ctx, raw, smtp_envelope())
    assert outcome.kind == "quarantined" and outcome.reason == "parse_error"
    [entry] = await list_quarantine(ctx)
    assert entry.id == outcome.quarantine_id and entry.cause == "parse_error" and entry.detail
    assert blobs.get_sync(entry.blob) == raw
    assert await counts(sessions) == {"tickets": 0, "messages": 0, "events": 0, "quarantine": 1}

    # Replaying what still cannot be parsed updates the item; it adds no second
    # one, and the item stays listed (so replay --all tries it again) with its
    # attempts and the cause of the last failure.
    for attempt in (1, 2):
        again = await replay_quarantined(ctx, outcome.quarantine_id, REPLAYERS)
        assert again.kind == "quarantined" and again.quarantine_id == outcome.quarantine_id
        [entry] = await list_quarantine(ctx)
        assert entry.id == outcome.quarantine_id and entry.replayed_at is None
        assert entry.replay_attempts == attempt and entry.last_replay_cause.startswith("parse_error")
    assert await count(sessions, QuarantinedItem) == 1


async def test_a_replayer_that_crashes_leaves_the_item_listed_with_the_error(ctx):
    outcome = await ingest_email(ctx, b"\x00\x01 not mail", smtp_envelope())

    async def broken(*_args):  # type: ignore[no-untyped-def]
        raise RuntimeError("replayer bug")

    with pytest.raises(RuntimeError):
        await replay_quarantined(ctx, outcome.quarantine_id, {"email": broken})
    [entry] = await list_quarantine(ctx)
    assert entry.replay_attempts == 1 and entry.last_replay_cause == "replay_error: RuntimeError: replayer bug"


async def test_mail_for_an_unknown_address_waits_in_quarantine_until_the_address_is_configured(
        ctx, settings, sessions):
    raw = mail(to="sales@acme.test", message_id="sales-1@example.com")
    outcome = await ingest_email(ctx, raw, smtp_envelope(rcpt="sales@acme.test"))
    assert outcome.kind == "quarantined" and outcome.reason == "unknown_channel"
    [entry] = await list_quarantine(ctx, cause="unknown_channel")
    assert "sales@acme.test" in entry.detail

    configured = replace(settings, support_addresses=(*settings.support_addresses, SupportAddress("sales@acme.test")))
    await ensure_defaults(sessions, configured)
    replayed = await replay_quarantined(ctx, entry.id, REPLAYERS)
    assert replayed.kind == "ticket_created"
    async with sessions() as session:
        message = await session.get(Message, replayed.message_id)
        ticket = await session.get(Ticket, replayed.ticket_id)
    assert message.external_id == "sales-1@example.com" and ticket.name == "The printer is on fire"

    # Idempotent: a second replay finds the stored message and adds nothing.
    again = await replay_quarantined(ctx, entry.id, REPLAYERS)
    assert again.kind == "duplicate" and again.message_id == replayed.message_id
    assert await count(sessions, Message) == 1 and await count(sessions, Ticket) == 1
    assert await list_quarantine(ctx) == []
    [done] = await list_quarantine(ctx, include_replayed=True)
    assert done.replay_outcome.startswith("duplicate")


async def test_replaying_an_unknown_item_says_so(ctx):
    with pytest.raises(LookupError):
        await replay_quarantined(ctx, 999, REPLAYERS)


async def test_list_filters_by_cause_and_keeps_order(ctx, sessions):
    await ingest_email(ctx, b"\x00\x01 not mail", smtp_envelope())
    await ingest_email(ctx, mail(to="nobody@acme.test", message_id="n@example.com"),
                       smtp_envelope(rcpt="nobody@acme.test"))
    await ingest_email(ctx, b"   \n", smtp_envelope())
    entries = await list_quarantine(ctx)
    assert [e.cause for e in entries] == ["parse_error", "unknown_channel", "parse_error"]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert [e.cause for e in await list_quarantine(ctx, cause="unknown_channel")] == ["unknown_channel"]
    assert len(await list_quarantine(ctx, limit=1)) == 1
    async with sessions() as session:
        envelopes = (await session.scalars(select(QuarantinedItem.envelope))).all()
    assert all(e["source"] == "smtp" and e["rcpt_tos"] for e in envelopes)
