"""The batched email pipeline: one bad mail does not sink its batch, threading inside a batch, same events."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from frontdesk.ingest import pipeline
from frontdesk.ingest.batch_runner import EmailItem
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.intake import store_payload
from frontdesk.ingest.pipeline import ingest_email, ingest_emails
from frontdesk.model import InboundPayload, Message, OutboxEvent, QuarantinedItem, Ticket
from _ingest_mail import mail, smtp_envelope


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


def items(*raws: bytes) -> list[EmailItem]:
    return [EmailItem(raw, smtp_envelope()) for raw in raws]


async def test_a_mail_that_fails_while_writing_is_quarantined_alone_and_the_rest_of_its_batch_commits(
        ctx, sessions, monkeypatch):
    real_store = pipeline.STAGES["store"]

    async def store_or_choke(state):  # type: ignore[no-untyped-def]
        await real_store(state)  # it has written: only rolling the batch back undoes that
        if state.inbound.subject == "Poison":
            raise RuntimeError("persistence bug")

    monkeypatch.setitem(pipeline.STAGES, "store", store_or_choke)
    raws = [mail(message_id="a@example.com", subject="Printer"),
            mail(message_id="p@example.com", subject="Poison"),
            b"\x00\x01 not mail",
            mail(message_id="b@example.com", subject="Re: Printer", in_reply_to="a@example.com")]
    rows = [(await store_payload(ctx, channel="email", route="smtp", raw=raw,
                                 envelope=smtp_envelope().to_dict())).id for raw in raws]

    outcomes = await ingest_emails(ctx, [EmailItem(raw, smtp_envelope(), intake_id=row)
                                         for raw, row in zip(raws, rows)])

    assert [o.kind for o in outcomes] == ["ticket_created", "quarantined", "quarantined", "threaded"]
    assert outcomes[3].ticket_id == outcomes[0].ticket_id
    async with sessions() as session:
        stored = (await session.scalars(select(Message.external_id).order_by(Message.id))).all()
        quarantined = {item.id: item for item in (await session.scalars(select(QuarantinedItem))).all()}
        states = dict((await session.execute(select(InboundPayload.id, InboundPayload.state))).all())
        poison_events = (await session.scalars(
            select(OutboxEvent.ticket_id).where(OutboxEvent.ticket_id.not_in([outcomes[0].ticket_id])))).all()
    assert stored == ["a@example.com", "b@example.com"]  # nothing of the poison mail is left
    assert poison_events == []
    poison, garbage = quarantined[outcomes[1].quarantine_id], quarantined[outcomes[2].quarantine_id]
    assert poison.cause == "store_failed" and "persistence bug" in poison.detail
    assert poison.envelope["inbound_payload_id"] == rows[1]
    assert garbage.cause == "parse_error"
    assert ctx.blobs.get_sync(poison.blob) == raws[1]
    assert states == {rows[0]: "processed", rows[1]: "quarantined", rows[2]: "quarantined", rows[3]: "processed"}


async def test_a_reply_in_the_same_batch_as_its_parent_threads_onto_it(ctx):
    outcomes = await ingest_emails(ctx, items(
        mail(message_id="parent@example.com", subject="Printer"),
        mail(message_id="other@example.com", subject="Printer", sender="bo@example.com"),
        mail(message_id="reply@example.com", subject="Re: Printer", in_reply_to="parent@example.com"),
        # A reply to the reply, naming only its direct parent.
        mail(message_id="again@example.com", subject="Re: Printer", in_reply_to="reply@example.com"),
        mail(message_id="parent@example.com", subject="Printer"),  # an exact redelivery
    ))
    parent, other, reply, again, copy = outcomes
    assert (parent.kind, other.kind) == ("ticket_created", "ticket_created") and parent.ticket_id != other.ticket_id
    assert (reply.kind, reply.reason, reply.ticket_id) == ("threaded", "in_reply_to", parent.ticket_id)
    assert (again.kind, again.ticket_id) == ("threaded", parent.ticket_id)
    assert (copy.kind, copy.ticket_id, copy.message_id) == ("duplicate", parent.ticket_id, parent.message_id)


async def test_a_subject_token_from_a_participant_added_earlier_in_the_batch_is_trusted(ctx):
    first = (await ingest_emails(ctx, items(mail(message_id="t1@example.com", subject="Refund"))))[0]
    token = f"Re: [#{first.ticket_id}] Refund"
    outcomes = await ingest_emails(ctx, items(
        mail(message_id="t2@example.com", subject=token, sender="cy@example.com"),  # not a participant yet
        mail(message_id="t3@example.com", subject="Re: Refund", sender="Ada <ada@example.com>",
             cc="cy@example.com", in_reply_to="t1@example.com"),  # makes Cy one
        mail(message_id="t4@example.com", subject=token, sender="cy@example.com"),
    ))
    assert outcomes[0].kind == "ticket_created" and outcomes[0].ticket_id != first.ticket_id
    assert outcomes[1].ticket_id == first.ticket_id
    assert (outcomes[2].kind, outcomes[2].reason, outcomes[2].ticket_id) == (
        "threaded", "subject_token", first.ticket_id)


async def test_a_reply_ahead_of_its_parent_in_one_batch_goes_as_it_would_in_two_batches(ctx):
    def pair(tag: str) -> tuple[bytes, bytes]:
        return (mail(message_id=f"reply-{tag}@example.com", subject="Re: Printer", in_reply_to=f"parent-{tag}@example.com"),
                mail(message_id=f"parent-{tag}@example.com", subject="Printer"))

    apart = [await ingest_email(ctx, raw, smtp_envelope()) for raw in pair("apart")]
    together = await ingest_emails(ctx, items(*pair("together")))

    assert [(o.kind, o.reason) for o in together] == [(o.kind, o.reason) for o in apart] == [
        ("ticket_created", "new_ticket"), ("ticket_created", "new_ticket")]
    assert together[0].ticket_id != together[1].ticket_id


def conversation(tag: str) -> list[bytes]:
    """A small mixed workload, its ids and senders unique to ``tag``."""
    ada, bo = f"Ada <ada-{tag}@example.com>", f"bo-{tag}@example.com"
    return [
        mail(message_id=f"{tag}-1@example.com", sender=ada, subject="Printer",
             attachments=[("log.txt", "text/plain", b"paper jam")]),
        mail(message_id=f"{tag}-2@example.com", sender=bo, subject="Invoice"),
        mail(message_id=f"{tag}-3@example.com", sender=ada, subject="Re: Printer", in_reply_to=f"{tag}-1@example.com",
             cc=bo),
        mail(message_id=f"{tag}-4@example.com", sender=bo, subject="Out of office",
             extra_headers=[("Auto-Submitted", "auto-replied")], in_reply_to=f"{tag}-2@example.com"),
        mail(message_id=f"{tag}-2@example.com", sender=bo, subject="Invoice"),  # an exact redelivery
    ]


def normalized(events: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """Events with their ids replaced by their order of first appearance, and ``tag`` by a constant."""
    seen: dict[tuple[str, Any], int] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items() if k not in ("id", "occurred_at")}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str):
            value = value.replace(tag, "TAG")
        if value is not None and key.endswith("_id"):
            return seen.setdefault((key, value), len([k for k in seen if k[0] == key]))
        return value

    return [walk(event) for event in events]


async def test_a_batch_records_the_same_events_as_one_mail_at_a_time(ctx, sessions):
    async def events_since(last: int) -> list[dict[str, Any]]:
        async with sessions() as session:
            return list((await session.scalars(
                select(OutboxEvent.body).where(OutboxEvent.id > last).order_by(OutboxEvent.id))).all())

    one_by_one = [await ingest_email(ctx, raw, smtp_envelope()) for raw in conversation("single")]
    single_events = normalized(await events_since(0), "single")
    async with sessions() as session:
        last = max((await session.scalars(select(OutboxEvent.id))).all())
    batched = await ingest_emails(ctx, items(*conversation("batch")))  # 5 mails: parsed in the process pool

    assert [(o.kind, o.reason) for o in batched] == [(o.kind, o.reason) for o in one_by_one]
    assert [o.kind for o in batched] == ["ticket_created", "ticket_created", "threaded", "screened", "duplicate"]
    assert [e["type"] for e in single_events] == [
        "ticket.created", "message.received", "ticket.created", "message.received", "message.received",
        "message.screened"]
    assert normalized(await events_since(last), "batch") == single_events


async def test_a_batch_indexes_each_touched_ticket_once_with_all_its_mail_and_its_contact(ctx, sessions):
    from frontdesk.model import TicketSearchDocument

    outcomes = await ingest_emails(ctx, items(
        mail(message_id="s1@example.com", subject="Printer", body="The toner smudges."),
        mail(message_id="s2@example.com", subject="Invoice", sender="Bo Brant <bo@example.com>", body="Wrong VAT."),
        mail(message_id="s3@example.com", subject="Re: Printer", in_reply_to="s1@example.com", body="Also jams."),
    ))
    printer, invoice = outcomes[0].ticket_id, outcomes[1].ticket_id
    async with sessions() as session:
        documents = {d.ticket_id: d for d in (await session.scalars(select(TicketSearchDocument))).all()}
    assert set(documents) == {printer, invoice}
    assert "toner smudges" in documents[printer].document and "also jams" in documents[printer].document
    assert "ada@example.com" in documents[printer].names and "wrong vat" not in documents[printer].document
    assert "bo brant" not in documents[printer].names and "brant" in documents[invoice].names


async def test_a_new_sender_twice_in_one_batch_is_one_contact_named_as_mail_by_mail(ctx, sessions):
    from frontdesk.model import Contact

    outcomes = await ingest_emails(ctx, items(
        mail(message_id="c1@example.com", sender="cy@example.com", subject="One"),
        mail(message_id="c2@example.com", sender="Cy Young <CY@example.com>", subject="Two"),
    ))
    assert [o.kind for o in outcomes] == ["ticket_created", "ticket_created"]
    async with sessions() as session:
        contacts = (await session.scalars(select(Contact).where(Contact.email == "cy@example.com"))).all()
        tickets = {t.id: t.contact_id for t in (await session.scalars(select(Ticket))).all()}
    assert [(c.first_name, c.last_name) for c in contacts] == [("Cy", "Young")]
    assert tickets == {outcomes[0].ticket_id: contacts[0].id, outcomes[1].ticket_id: contacts[0].id}
