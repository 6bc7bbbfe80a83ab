"""The ticket read API over real HTTP: auth, pagination, filters, detail, raw source, downloads, access."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from api_harness import OPERATOR, create_user_token
from frontdesk.model import Attachment, Contact, Conversation, Message, Pipeline, Status, Team, Ticket
from frontdesk.model.messages import AUTO_REPLY, INBOUND, OUTBOUND

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


async def seed_ticket(
    sessions, blobs, *, name: str, email: str, first_name: str = "Ada", minutes: int = 0,  # type: ignore[no-untyped-def]
    owner_id: int | None = None, priority: str | None = None, status: str = "new",
) -> int:
    """A ticket in the Support pipeline with one inbound email whose raw bytes are in blob storage."""
    raw = f"From: {first_name} <{email}>\r\nTo: support@acme.test\r\nSubject: {name}\r\n\r\nhello\r\n".encode()
    digest = await blobs.put(raw)
    async with sessions.begin() as session:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == "support"))
        state = await session.scalar(
            select(Status).where(Status.pipeline_id == pipeline.id, Status.internal_name == status))
        contact = await session.scalar(select(Contact).where(Contact.email == email))
        if contact is None:
            contact = Contact(email=email, first_name=first_name, last_name="Lovelace")
            session.add(contact)
            await session.flush()
        when = T0 + timedelta(minutes=minutes)
        ticket = Ticket(name=name, description=f"about {name}", pipeline_id=pipeline.id, status_id=state.id,
                        priority=priority, owner_id=owner_id, source_channel="email", contact_id=contact.id,
                        created_at=when, updated_at=when)
        session.add(ticket)
        await session.flush()
        conversation = Conversation(ticket_id=ticket.id, channel="email", thread_key=f"{ticket.id}@example.com",
                                    contact_id=contact.id)
        session.add(conversation)
        await session.flush()
        session.add(Message(
            conversation_id=conversation.id, ticket_id=ticket.id, direction=INBOUND, channel="email",
            external_id=f"{ticket.id}@example.com", subject=name, from_address=email, from_name=first_name,
            to_addresses=["support@acme.test"], text_body="hello", reply_text="hello", raw_blob=digest,
            content_hash=digest, match_rule="new_ticket", match_detail="no thread matched", created_at=when,
        ))
        return ticket.id


@pytest.fixture
async def three_tickets(sessions, blobs) -> list[int]:  # type: ignore[no-untyped-def]
    """Oldest first: printer (high), network, printer again from Grace."""
    return [
        await seed_ticket(sessions, blobs, name="The printer is on fire", email="ada@example.com", minutes=0,
                          priority="high"),
        await seed_ticket(sessions, blobs, name="Network down", email="bob@example.com", first_name="Bob",
                          minutes=10),
        await seed_ticket(sessions, blobs, name="Toner again", email="grace@example.org", first_name="Grace",
                          minutes=20, status="waiting_on_us"),
    ]


async def get_json(client, path: str, headers=OPERATOR, **params):  # type: ignore[no-untyped-def]
    async with client.get(path, headers=headers, params=params) as response:
        return response.status, await response.json()


async def test_the_api_refuses_missing_and_wrong_tokens(client, three_tickets) -> None:  # type: ignore[no-untyped-def]
    status, body = await get_json(client, "/api/v1/tickets", headers={})
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    status, body = await get_json(client, "/api/v1/tickets", headers={"Authorization": "Bearer nope"})
    assert status == 401
    status, body = await get_json(client, f"/api/v1/tickets/{three_tickets[0]}", headers={"Authorization": "Basic x"})
    assert status == 401


async def test_list_is_newest_first_with_total_and_cursor_pages(client, three_tickets) -> None:  # type: ignore[no-untyped-def]
    status, first = await get_json(client, "/api/v1/tickets", limit="2")
    assert status == 200
    assert first["total"] == 3
    assert [t["id"] for t in first["tickets"]] == [three_tickets[2], three_tickets[1]]
    assert first["next_cursor"]
    status, second = await get_json(client, "/api/v1/tickets", limit="2", cursor=first["next_cursor"])
    assert [t["id"] for t in second["tickets"]] == [three_tickets[0]]
    assert second["next_cursor"] is None and second["total"] == 3

    status, page2 = await get_json(client, "/api/v1/tickets", limit="2", page="2")
    assert [t["id"] for t in page2["tickets"]] == [three_tickets[0]] and page2["page"] == 2

    status, oldest_first = await get_json(client, "/api/v1/tickets", sort="created_at", limit="2")
    assert [t["id"] for t in oldest_first["tickets"]] == three_tickets[:2]
    status, rest = await get_json(client, "/api/v1/tickets", sort="created_at", limit="2",
                                  cursor=oldest_first["next_cursor"])
    assert [t["id"] for t in rest["tickets"]] == [three_tickets[2]]


async def test_list_shows_status_pipeline_and_contact(client, three_tickets) -> None:  # type: ignore[no-untyped-def]
    _, body = await get_json(client, "/api/v1/tickets")
    toner = next(t for t in body["tickets"] if t["id"] == three_tickets[2])
    assert toner["status"]["internal_name"] == "waiting_on_us"
    assert toner["status"]["label"] == "Waiting on us"
    assert toner["pipeline"]["internal_name"] == "support"
    assert toner["contact"]["email"] == "grace@example.org"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "waiting_on_us"}, [2]),
        ({"status": "new", "pipeline": "support"}, [1, 0]),
        ({"pipeline": "no-such-pipeline"}, []),
        ({"priority": "high"}, [0]),
        ({"q": "PRINTER"}, [0]),  # ticket name, case-insensitive
        ({"q": "grace@example"}, [2]),  # contact email
        ({"q": "Bob Lovelace"}, [1]),  # contact full name
        ({"q": "about network"}, [1]),  # description
        ({"q": "100%"}, []),  # wildcards are literal
        ({"owner": "none"}, [2, 1, 0]),
        ({"team": "none", "status": "new"}, [1, 0]),
    ],
)
async def test_list_filters(client, three_tickets, params, expected) -> None:  # type: ignore[no-untyped-def]
    status, body = await get_json(client, "/api/v1/tickets", **params)
    assert status == 200
    assert [t["id"] for t in body["tickets"]] == [three_tickets[i] for i in expected]
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"), ({"limit": "5000"}, "limit"),
     ({"cursor": "garbage"}, "cursor"), ({"sort": "name"}, "sort"), ({"owner": "me"}, "owner"),
     ({"page": "0"}, "page")],
)
async def test_bad_parameters_are_named(client, three_tickets, params, parameter) -> None:  # type: ignore[no-untyped-def]
    status, body = await get_json(client, "/api/v1/tickets", **params)
    assert status == 400
    assert body["error"]["code"] == "invalid_parameter" and body["error"]["parameter"] == parameter


async def test_detail_shows_messages_match_reasons_and_attachments(client, sessions, blobs, three_tickets) -> None:  # type: ignore[no-untyped-def]
    ticket_id = three_tickets[0]
    pdf = b"%PDF-1.4 not really a pdf"
    pdf_digest = await blobs.put(pdf)
    async with sessions.begin() as session:
        first = await session.scalar(select(Message).where(Message.ticket_id == ticket_id))
        reply = Message(
            conversation_id=first.conversation_id, ticket_id=ticket_id, direction=INBOUND, channel="email",
            external_id="reply-1@example.com", in_reply_to=first.external_id, references=[first.external_id],
            subject="Re: The printer is on fire", from_address="ada@example.com", to_addresses=["support@acme.test"],
            text_body="Still burning\n\n> hello", reply_text="Still burning", screening=AUTO_REPLY,
            screening_reason="Auto-Submitted: auto-replied", match_rule="in_reply_to",
            match_detail=f"In-Reply-To <{first.external_id}> is message {first.id}",
            created_at=T0 + timedelta(minutes=5),
        )
        answer = Message(
            conversation_id=first.conversation_id, ticket_id=ticket_id, direction=OUTBOUND, channel="email",
            external_id="fd.1.x.y@acme.test", subject="Re: The printer is on fire", author_kind="agent",
            text_body="We are on it", delivery_state="sent", created_at=T0 + timedelta(minutes=6),
        )
        session.add_all([reply, answer])
        await session.flush()
        session.add(Attachment(message_id=reply.id, filename="smoke report.pdf", content_type="application/pdf",
                               size=len(pdf), blob=pdf_digest, is_inline=False, from_tnef=True))

    status, ticket = await get_json(client, f"/api/v1/tickets/{ticket_id}")
    assert status == 200
    assert ticket["name"] == "The printer is on fire"
    assert ticket["status"] == {"id": ticket["status"]["id"], "label": "New", "internal_name": "new",
                                "is_closed": False}
    assert ticket["contact"]["email"] == "ada@example.com"
    created, threaded, sent = ticket["messages"]
    assert created["match"] == {"rule": "new_ticket", "detail": "no thread matched"}
    assert threaded["match"]["rule"] == "in_reply_to"
    assert threaded["external_id"] == "reply-1@example.com"
    assert threaded["reply_text"] == "Still burning"
    assert threaded["screening"] == {"verdict": "auto_reply", "reason": "Auto-Submitted: auto-replied"}
    assert threaded["from"]["address"] == "ada@example.com"
    assert sent["direction"] == "outbound" and sent["delivery_state"] == "sent"
    [attachment] = threaded["attachments"]
    assert attachment["filename"] == "smoke report.pdf"
    assert attachment["size"] == len(pdf) and attachment["sha256"] == pdf_digest
    assert attachment["from_tnef"] is True and attachment["inline"] is False

    async with client.get(attachment["download_url"], headers=OPERATOR) as response:
        assert response.status == 200
        assert await response.read() == pdf
        assert response.headers["Content-Type"] == "application/pdf"
        assert "attachment" in response.headers["Content-Disposition"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    async with client.get(created["raw_url"], headers=OPERATOR) as response:
        assert response.status == 200
        raw = await response.read()
        assert raw.startswith(b"From: Ada <ada@example.com>") and response.content_type == "message/rfc822"
    assert sent["raw_url"] is None


async def test_unknown_ticket_is_404(client, three_tickets) -> None:  # type: ignore[no-untyped-def]
    status, body = await get_json(client, "/api/v1/tickets/999999")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_team_user_sees_only_their_teams_tickets(client, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        red, blue = Team(name="Red"), Team(name="Blue")
        session.add_all([red, blue])
        await session.flush()
        red_id, blue_id = red.id, blue.id
    me, my_headers = await create_user_token(sessions, email="me@acme.test", ticket_access="team", team_id=red_id)
    mate, _ = await create_user_token(sessions, email="mate@acme.test", team_id=red_id)
    other, _ = await create_user_token(sessions, email="other@acme.test", team_id=blue_id)
    mine = await seed_ticket(sessions, blobs, name="Mine", email="a@example.com", owner_id=me, minutes=1)
    mates = await seed_ticket(sessions, blobs, name="Mate's", email="b@example.com", owner_id=mate, minutes=2)
    foreign = await seed_ticket(sessions, blobs, name="Other team's", email="c@example.com", owner_id=other,
                                minutes=3)
    unassigned = await seed_ticket(sessions, blobs, name="Nobody's", email="d@example.com", minutes=4)

    status, body = await get_json(client, "/api/v1/tickets", headers=my_headers)
    assert status == 200
    assert [t["id"] for t in body["tickets"]] == [mates, mine]
    assert body["total"] == 2
    _, searched = await get_json(client, "/api/v1/tickets", headers=my_headers, q="team")
    assert searched["tickets"] == [] and searched["total"] == 0  # "Other team's" exists but is not theirs

    for hidden in (foreign, unassigned):
        status, body = await get_json(client, f"/api/v1/tickets/{hidden}", headers=my_headers)
        assert status == 404
    async with sessions() as session:
        hidden_message = await session.scalar(select(Message.id).where(Message.ticket_id == foreign))
    async with client.get(f"/api/v1/messages/{hidden_message}/raw", headers=my_headers) as response:
        assert response.status == 404
    status, _ = await get_json(client, f"/api/v1/tickets/{mates}", headers=my_headers)
    assert status == 200
    # The operator still sees all four.
    _, everything = await get_json(client, "/api/v1/tickets")
    assert everything["total"] == 4


async def test_attachments_of_invisible_tickets_are_404(client, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    owner, _ = await create_user_token(sessions, email="owner@acme.test")
    _, outsider = await create_user_token(sessions, email="outsider@acme.test", ticket_access="owned")
    ticket_id = await seed_ticket(sessions, blobs, name="Private", email="p@example.com", owner_id=owner)
    digest = await blobs.put(b"secret plans")
    async with sessions.begin() as session:
        message_id = await session.scalar(select(Message.id).where(Message.ticket_id == ticket_id))
        attachment = Attachment(message_id=message_id, filename="plans.txt", content_type="text/plain",
                                size=12, blob=digest)
        session.add(attachment)
        await session.flush()
        attachment_id = attachment.id
    async with client.get(f"/api/v1/attachments/{attachment_id}", headers=outsider) as response:
        assert response.status == 404
        assert "secret plans" not in await response.text()
    async with client.get(f"/api/v1/attachments/{attachment_id}", headers=OPERATOR) as response:
        assert response.status == 200 and await response.read() == b"secret plans"
