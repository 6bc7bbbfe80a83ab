"""A form post held back by the honeypot is replayable, as documented: the operator's replay lets it through."""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import select

from _webhooks_support import count_rows
from frontdesk.channels.webhooks.replay import webhook_replayers
from frontdesk.ingest.pipeline import replay_email
from frontdesk.ingest.quarantine import list_quarantine, replay_quarantined
from frontdesk.model import Contact, QuarantinedItem, Ticket

URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_a_honeypot_quarantined_post_becomes_a_ticket_when_replayed(webhooks, sessions) -> None:
    # A person whose browser autofilled the hidden field.
    form = {"email": "ann@customer.test", "subject": "Invoice question", "message": "Hello", "website": "autofill"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(form), headers=URLENCODED)
    assert response.status == 200
    await webhooks.settle()
    [item] = await list_quarantine(webhooks.ctx, cause="spam_honeypot")
    assert await count_rows(sessions, Ticket) == {"tickets": 0}

    replayers = {"email": replay_email, **webhook_replayers(webhooks.config)}
    outcome = await replay_quarantined(webhooks.ctx, item.id, replayers)
    assert outcome.kind == "replayed", outcome
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket))
        contact = await session.get(Contact, ticket.contact_id)
        stored = await session.get(QuarantinedItem, item.id)
    assert ticket.name == "Invoice question" and contact.email == "ann@customer.test"
    assert stored.replayed_at is not None and await list_quarantine(webhooks.ctx) == []

    # Replaying again adds nothing.
    await replay_quarantined(webhooks.ctx, item.id, replayers)
    assert await count_rows(sessions, Ticket) == {"tickets": 1}
