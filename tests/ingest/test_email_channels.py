"""Email channels are cached per process, and a change to them applies without a restart."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from frontdesk.model import Channel, Pipeline
from frontdesk.ingest import email_channels as cache
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_email
from _ingest_mail import mail, smtp_envelope


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


async def test_a_support_address_added_in_this_process_is_used_by_the_next_mail(ctx, sessions):
    first = await ingest_email(ctx, mail(to="sales@acme.test", message_id="s1@example.com"),
                               smtp_envelope(rcpt="sales@acme.test"))
    assert first.kind == "quarantined" and first.reason == "unknown_channel"
    async with sessions.begin() as session:
        pipeline_id = await session.scalar(select(Pipeline.id).limit(1))
        session.add(Channel(kind="email", key="sales@acme.test", name="Sales", pipeline_id=pipeline_id))
    second = await ingest_email(ctx, mail(to="sales@acme.test", message_id="s2@example.com"),
                                smtp_envelope(rcpt="sales@acme.test"))
    assert second.kind == "ticket_created"


async def test_a_change_by_another_process_applies_after_the_ttl(ctx, sessions, monkeypatch):
    monkeypatch.setattr(cache, "TTL_SECONDS", 3600.0)  # no test may depend on the machine's speed
    outcome = await ingest_email(ctx, mail(message_id="a@example.com"), smtp_envelope())
    assert outcome.kind == "ticket_created"
    # Plain SQL, as another process would write it: no ORM event here sees it.
    async with sessions.begin() as session:
        await session.execute(text("UPDATE channels SET create_tickets = false WHERE kind = 'email'"))
    async with sessions() as session:
        assert all((c.create_tickets for c in await cache.email_channels(session, sessions)))  # still cached
    monkeypatch.setattr(cache, "TTL_SECONDS", 0.0)
    outcome = await ingest_email(ctx, mail(message_id="b@example.com", subject="Another"), smtp_envelope())
    assert outcome.kind == "no_ticket"


async def test_cached_channels_are_never_attached_to_a_session(sessions):
    async with sessions() as session:
        first = await cache.email_channels(session, sessions)
        second = await cache.email_channels(session, sessions)
    assert first and [c.key for c in first] == [c.key for c in second]
    assert all(a is not b for a, b in zip(first, second))
    assert all(c not in session for c in first + second)
