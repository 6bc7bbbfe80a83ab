"""Ingest and contacts: who writes on a ticket is associated with it, and a new address is one contact even in a race."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import Company, Contact, TicketCompany, TicketContact
from _ingest_mail import mail, smtp_envelope


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


async def _linked(sessions, model, column, ticket_id):
    async with sessions() as session:
        return set((await session.scalars(select(column).where(model.ticket_id == ticket_id))).all())


async def test_senders_on_a_ticket_are_associated_with_it_and_their_companies(ctx, sessions):
    async with sessions.begin() as session:
        session.add(Company(name="Partner", domain="partner.test"))
    first = await ingest_email(ctx, mail(message_id="m1@example.com", cc="bo@partner.test"), smtp_envelope())
    reply = await ingest_email(ctx, mail(sender="Bo <BO@partner.test>", message_id="m2@partner.test",
                                         in_reply_to="m1@example.com", subject="Re: fire"), smtp_envelope())
    assert reply.ticket_id == first.ticket_id
    async with sessions() as session:
        ids = {c.email: c.id for c in (await session.scalars(select(Contact))).all()}
        partner = await session.scalar(select(Company.id))
    assert set(ids) == {"ada@example.com", "bo@partner.test"}
    assert await _linked(sessions, TicketContact, TicketContact.contact_id, first.ticket_id) == set(ids.values())
    assert await _linked(sessions, TicketCompany, TicketCompany.company_id, first.ticket_id) == {partner}


async def test_mails_from_a_new_address_at_the_same_instant_make_one_contact(ctx, sessions):
    # Each ingest runs in its own session and transaction; on PostgreSQL they
    # race for the address, on SQLite they take the writer turn in order.
    senders = ("Nia Okafor <nia@newco.test>", "NIA@NewCo.test", "nia@newco.test", "Nia <Nia@newco.TEST>")
    outcomes = await asyncio.gather(*(
        ingest_email(ctx, mail(sender=sender, message_id=f"race-{i}@newco.test", subject=f"Question {i}"),
                     smtp_envelope(mail_from="nia@newco.test"))
        for i, sender in enumerate(senders)))
    assert [o.kind for o in outcomes] == ["ticket_created"] * 4
    async with sessions() as session:
        contacts = (await session.scalars(select(Contact))).all()
        assert [c.email for c in contacts] == ["nia@newco.test"]
        linked = (await session.execute(select(TicketContact.ticket_id, TicketContact.contact_id))).all()
        assert await session.scalar(select(func.count()).select_from(Contact)) == 1
    assert sorted(linked) == sorted((o.ticket_id, contacts[0].id) for o in outcomes)
