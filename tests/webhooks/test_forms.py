"""Web forms: field mapping, 422 naming fields, no-email submissions, signatures, honeypot, rate limit."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from sqlalchemy import select

from _webhooks_support import FORM_SECRET, count_rows
from frontdesk.model import Company, Contact, InboundPayload, Message, PropertyDefinition, QuarantinedItem, Ticket

URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_mapped_fields_set_ticket_and_contact_properties(webhooks, sessions) -> None:
    form = {"email": "Grace@Example.com", "first": "Grace", "last": "Hopper", "phone": "+1 555 0100",
            "company": "Navy", "subject": "Printer on fire", "message": "Room 4, second floor.",
            "urgency": "High", "topic": "hardware", "order": "A-17", "website": "", "referrer": "ad"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(form), headers=URLENCODED)
    assert response.status == 200, await response.text()
    await webhooks.settle()
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket))
        contact = await session.get(Contact, ticket.contact_id)
        company = await session.get(Company, contact.company_id) if contact.company_id else None
        message = await session.scalar(select(Message))
    assert (ticket.name, ticket.description, ticket.priority, ticket.category) == (
        "Printer on fire", "Room 4, second floor.", "high", "hardware")
    assert ticket.custom_properties.get("order_number") == "A-17"
    assert ticket.source_channel == "form"
    assert (contact.email, contact.first_name, contact.last_name, contact.phone) == (
        "grace@example.com", "Grace", "Hopper", "+1 555 0100")
    assert company is not None and company.name == "Navy"
    assert message.ticket_id == ticket.id


async def test_json_submissions_are_accepted_too(webhooks, sessions) -> None:
    body = json.dumps({"email": "linus@example.com", "subject": "Login", "message": "Cannot log in"}).encode()
    response = await webhooks.client.post("/webhooks/forms/contact", data=body,
                                          headers={"Content-Type": "application/json"})
    assert response.status == 200
    await webhooks.settle()
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket.name == "Login" and ticket.description == "Cannot log in"


async def test_missing_and_invalid_fields_get_422_naming_each(webhooks, sessions) -> None:
    form = {"email": "not-an-address", "subject": "", "urgency": "whenever", "phone": "call me maybe"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(form), headers=URLENCODED)
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"email", "subject", "urgency", "phone"}
    assert "valid email" in fields["email"] and fields["subject"] == "is required"
    missing_email = await webhooks.client.post("/webhooks/forms/contact", data=urlencode({"subject": "Hi"}),
                                               headers=URLENCODED)
    assert missing_email.status == 422 and set((await missing_email.json())["error"]["fields"]) == {"email"}
    nested = await webhooks.client.post("/webhooks/forms/contact", headers={"Content-Type": "application/json"},
                                        data=json.dumps({"email": "a@b.example", "subject": ["x"]}))
    assert nested.status == 422 and (await nested.json())["error"]["fields"] == {"subject": "must be a single value"}
    await webhooks.settle()
    assert await count_rows(sessions, InboundPayload, Ticket) == {"inbound_payloads": 0, "tickets": 0}


async def test_a_form_that_allows_it_makes_a_ticket_without_an_email(webhooks, sessions) -> None:
    response = await webhooks.client.post("/webhooks/forms/anonymous", headers=URLENCODED,
                                          data=urlencode({"message": "The lift is broken", "name": "Anon"}))
    assert response.status == 200
    await webhooks.settle()
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket is not None and ticket.description == "The lift is broken"
    if ticket.contact_id is not None:
        async with sessions() as session:
            assert (await session.get(Contact, ticket.contact_id)).email is None


async def test_refusals_for_unknown_forms_content_types_bodies_and_signatures(webhooks, sessions) -> None:
    good = json.dumps({"email": "a@example.com", "message": "signed"}).encode()
    statuses = [
        (await webhooks.client.post("/webhooks/forms/nope", data="x=1", headers=URLENCODED)).status,
        (await webhooks.client.post("/webhooks/forms/contact", data=b"--x\r\n",
                                    headers={"Content-Type": "multipart/form-data; boundary=x"})).status,
        (await webhooks.client.post("/webhooks/forms/contact", data=b"{broken",
                                    headers={"Content-Type": "application/json"})).status,
        (await webhooks.client.post("/webhooks/forms/contact", data=b"a" * (webhooks.config.max_body_size + 1),
                                    headers=URLENCODED)).status,
        (await webhooks.client.post("/webhooks/forms/signed", data=good,
                                    headers={"Content-Type": "application/json"})).status,
        (await webhooks.post_signed("/webhooks/forms/signed", good, secret="guess")).status,
    ]
    assert statuses == [404, 415, 400, 413, 403, 403]
    assert await count_rows(sessions, InboundPayload) == {"inbound_payloads": 0}
    signed = await webhooks.post_signed("/webhooks/forms/signed", good, secret=FORM_SECRET)
    assert signed.status == 200
    await webhooks.settle()
    assert await count_rows(sessions, Ticket) == {"tickets": 1}


async def test_a_filled_honeypot_is_answered_like_success_but_kept_in_quarantine(webhooks, sessions) -> None:
    form = {"email": "bot@spam.example", "subject": "Cheap pills", "message": "buy", "website": "http://spam"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(form), headers=URLENCODED)
    assert response.status == 200
    await webhooks.settle()
    async with sessions() as session:
        item = await session.scalar(select(QuarantinedItem))
    assert item is not None and item.cause == "spam_honeypot"
    assert await count_rows(sessions, Ticket, Message) == {"tickets": 0, "messages": 0}


async def test_identical_resubmission_is_one_ticket(webhooks, sessions) -> None:
    form = urlencode({"email": "a@example.com", "subject": "Twice", "message": "double click"})
    for _ in range(2):
        assert (await webhooks.client.post("/webhooks/forms/contact", data=form, headers=URLENCODED)).status == 200
    await webhooks.settle()
    assert await count_rows(sessions, Ticket) == {"tickets": 1}


async def test_rate_limit_per_client_address(webhooks, sessions) -> None:
    statuses = []
    for n in range(5):
        response = await webhooks.client.post("/webhooks/forms/anonymous", headers=URLENCODED,
                                              data=urlencode({"message": f"message {n}"}))
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
    assert statuses == [200, 200, 200, 429, 429]
    await webhooks.settle()
    assert await count_rows(sessions, Ticket) == {"tickets": 3}


async def _define_seats_and_plan(sessions) -> None:
    async with sessions.begin() as session:
        session.add_all([
            PropertyDefinition(name="seats", label="Seats", type="number", options=[]),
            PropertyDefinition(name="plan", label="Plan", type="enumeration", options=["basic", "pro"]),
        ])


async def test_a_number_property_is_stored_as_a_number(webhooks, sessions) -> None:
    await _define_seats_and_plan(sessions)
    form = {"email": "ada@example.com", "subject": "Licences", "seats": "3", "plan": "pro", "order": "A-18"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(form), headers=URLENCODED)
    assert response.status == 200, await response.text()
    await webhooks.settle()
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket.custom_properties == {"seats": 3, "plan": "pro", "order_number": "A-18"}


async def test_a_value_its_property_refuses_gets_422_naming_the_field(webhooks, sessions) -> None:
    await _define_seats_and_plan(sessions)
    not_a_number = {"email": "ada@example.com", "subject": "Licences", "seats": "abc"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(not_a_number), headers=URLENCODED)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid_fields" and set(error["fields"]) == {"seats"}
    assert error["fields"]["seats"] == "property 'seats': must be a number"
    not_an_option = {"email": "ada@example.com", "subject": "Licences", "seats": "2", "plan": "gold"}
    response = await webhooks.client.post("/webhooks/forms/contact", data=urlencode(not_an_option), headers=URLENCODED)
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert fields == {"plan": "property 'plan': must be one of basic, pro"}
    await webhooks.settle()
    assert await count_rows(sessions, InboundPayload, Ticket) == {"inbound_payloads": 0, "tickets": 0}
