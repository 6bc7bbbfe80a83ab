"""The email intake processor: batches in arrival order, poison quarantined alone, every row settled once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from frontdesk.ingest import pipeline
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_intake import EmailIntake
from frontdesk.ingest.intake import store_payload
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import InboundPayload, Message, QuarantinedItem
from _ingest_mail import mail, smtp_envelope


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


async def intake_states(sessions) -> dict[int, str]:
    async with sessions() as session:
        return dict((await session.execute(select(InboundPayload.id, InboundPayload.state))).all())


async def inbound_ids(sessions) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(Message.external_id).order_by(Message.id))).all())


async def test_a_poison_mail_is_quarantined_with_its_cause_and_the_rest_of_the_batch_lands(ctx, sessions, monkeypatch):
    real_thread = pipeline.STAGES["thread_email"]

    async def thread_or_choke(state):  # type: ignore[no-untyped-def]
        if state.inbound.subject == "Poison":
            raise RuntimeError("threading bug")
        await real_thread(state)

    monkeypatch.setitem(pipeline.STAGES, "thread_email", thread_or_choke)
    intake = EmailIntake(ctx)  # not started: the test runs its batch
    first = await intake.accept(mail(message_id="a@example.com", subject="Printer"), smtp_envelope())
    poison = await intake.accept(mail(message_id="p@example.com", subject="Poison"), smtp_envelope())
    # An envelope the processor cannot read fails outside the pipeline: quarantined all the same.
    unreadable = (await store_payload(ctx, channel="email", route="smtp", raw=mail(message_id="u@example.com"),
                                      envelope={"garbled": True})).id
    reply = await intake.accept(mail(message_id="b@example.com", subject="Re: Printer", in_reply_to="a@example.com"),
                                smtp_envelope())

    assert await intake.process_batch() == 4
    assert await inbound_ids(sessions) == ["a@example.com", "b@example.com"]
    assert await intake_states(sessions) == {first: "processed", poison: "quarantined",
                                             unreadable: "quarantined", reply: "processed"}
    async with sessions() as session:
        items = {item.envelope["inbound_payload_id"]: item
                 for item in (await session.scalars(select(QuarantinedItem))).all()}
        bodies = (await session.scalars(select(InboundPayload.body))).all()
    assert items[poison].cause == "thread_email_failed" and "threading bug" in items[poison].detail
    assert items[unreadable].cause == "processing_error"
    assert ctx.blobs.get_sync(items[poison].blob) == mail(message_id="p@example.com", subject="Poison")
    assert bodies == [None] * 4  # settled rows keep no body: it is in the blob store
    assert intake.outcomes[reply].kind == "threaded"
    assert await intake.process_batch() == 0  # nothing pending any more


async def test_two_processors_on_the_same_rows_store_each_mail_once(ctx, sessions):
    # Two daemons on one database: each mail's transaction claims its row
    # (FOR UPDATE SKIP LOCKED on PostgreSQL), so one of them skips it.
    one, two = EmailIntake(ctx), EmailIntake(ctx)
    ids = [await one.accept(mail(message_id=f"m{n}@example.com", subject=f"Mail {n}"), smtp_envelope())
           for n in range(5)]
    await asyncio.gather(one.process_batch(), two.process_batch())
    assert sorted(await inbound_ids(sessions)) == sorted(f"m{n}@example.com" for n in range(5))
    assert set((await intake_states(sessions)).values()) == {"processed"}
    kinds = sorted(intake.outcomes[i].kind for intake in (one, two) for i in ids if i in intake.outcomes)
    assert kinds.count("ticket_created") == 5 and set(kinds) <= {"ticket_created", "skipped"}


async def test_a_settled_row_is_never_processed_again(ctx, sessions):
    raw = mail(message_id="once@example.com")
    intake_id = (await store_payload(ctx, channel="email", route="smtp", raw=raw,
                                     envelope=smtp_envelope().to_dict())).id
    assert (await ingest_email(ctx, raw, smtp_envelope(), intake_id=intake_id)).kind == "ticket_created"
    again = await ingest_email(ctx, raw, smtp_envelope(), intake_id=intake_id)
    assert again.kind == "skipped"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1


async def test_the_running_processor_drains_what_was_accepted_and_recovers_rows_left_pending(ctx, sessions):
    left_over = (await store_payload(ctx, channel="email", route="smtp", raw=mail(message_id="old@example.com"),
                                     envelope=smtp_envelope().to_dict())).id
    intake = EmailIntake(ctx)
    await intake.start()
    try:
        fresh = await intake.accept(mail(message_id="new@example.com", subject="New"), smtp_envelope())
        await asyncio.wait_for(intake.drained(), 30)
    finally:
        await intake.stop()
    assert await intake_states(sessions) == {left_over: "processed", fresh: "processed"}
    assert await inbound_ids(sessions) == ["old@example.com", "new@example.com"]
