"""Mail replying to a deleted ticket starts a new ticket; the deleted one stays deleted and untouched."""

from __future__ import annotations

from sqlalchemy import select

from frontdesk.api.auth import OPERATOR
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import Message, Ticket
from frontdesk.tickets.lifecycle import delete_ticket
from _ingest_mail import mail, smtp_envelope


async def test_a_reply_to_a_deleted_ticket_starts_a_new_one(settings, sessions, blobs):
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    first = await ingest_email(ctx, mail(message_id="m1@example.com"), smtp_envelope())
    async with sessions.begin() as session:
        await delete_ticket(session, OPERATOR, first.ticket_id)
    reply = await ingest_email(ctx, mail(message_id="m2@example.com", in_reply_to="m1@example.com",
                                         subject=f"Re: [#{first.ticket_id}] fire"), smtp_envelope())
    assert reply.kind == "ticket_created" and reply.ticket_id != first.ticket_id
    # The next reply in the thread joins the new ticket, not the deleted one.
    again = await ingest_email(ctx, mail(message_id="m3@example.com", in_reply_to="m2@example.com",
                                         references=["m1@example.com", "m2@example.com"]), smtp_envelope())
    assert (again.kind, again.ticket_id) == ("threaded", reply.ticket_id)
    async with sessions() as session:
        old = await session.get(Ticket, first.ticket_id)
        on_old = (await session.scalars(select(Message.external_id).where(Message.ticket_id == old.id))).all()
    assert old.deleted_at is not None and list(on_old) == ["m1@example.com"]
