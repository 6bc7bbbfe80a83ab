"""The ticket read API over real HTTP, on tickets made by the real ingest pipeline: auth, pagination, filters, detail, raw source, downloads, access."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from api_harness import OPERATOR, create_user_token
from frontdesk.model import ApiToken, Attachment, Message, Status, Team, Ticket
from frontdesk.model.messages import OUTBOUND
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.pipeline import ingest_email

SUPPORT = "support@acme.test"

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def support_mail(*, subject: str, sender: str, message_id: str, body: str = "hello",
                 in_reply_to: str | None = None, attachment: tuple[str, str, bytes] | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = SUPPORT
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
        mail["References"] = f"<{in_reply_to}>"
    mail.set_content(body)
    if attachment:
        filename, content_type, data = attachment
        maintype, subtype = content_type.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


async def ingest(settings, sessions, blobs, raw: bytes):  # type: ignore[no-untyped-def]
    """Through the real pipeline, as the SMTP edge hands it over."""
    envelope = Envelope(channel="email", source="smtp", mail_from=None, rcpt_tos=(SUPPORT,), channel_key=SUPPORT)
    return await ingest_email(IngestContext(settings=settings, sessions=sessions, blobs=blobs), raw, envelope)


async def seed_ticket(
    settings, sessions, blobs, *, name: str, email: str, first_name: str = "Ada", minutes: int = 0,  # type: ignore[no-untyped-def]
    owner_id: int | None = None, priority: str | None = None, status: str = "new",
) -> int:
    """A ticket made by ingesting one email, then given an owner, priority, status and time as an agent would."""
    raw = support_mail(subject=name, sender=f"{first_name} Lovelace <{email}>", message_id=f"{uuid.uuid4().hex}@example.com",
                       body=f"about {name}")
    outcome = await ingest(settings, sessions, blobs, raw)
    assert outcome.kind == "ticket_created", outcome
    async with sessions.begin() as session:
        ticket = await session.get_one(Ticket, outcome.ticket_id)
        state = await session.scalar(
            select(Status).where(Status.pipeline_id == ticket.pipeline_id, Status.internal_name == status))
        when = T0 + timedelta(minutes=minutes)
        ticket.status_id, ticket.owner_id, ticket.priority = state.id, owner_id, priority
        ticket.description = f"about {name}"
        ticket.created_at = ticket.updated_at = when
    # onupdate=utcnow would have overwritten updated_at in that flush; set it alone, last.
    async with sessions.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == outcome.ticket_id).values(updated_at=when))
    return outcome.ticket_id


@pytest.fixture
async def three_tickets(settings, sessions, blobs) -> list[int]:  # type: ignore[no-untyped-def]
    """Oldest first: printer (high), network, printer again from Grace."""
    return [
        await seed_ticket(settings, sessions, blobs, name="The printer is on fire", email="ada@example.com", minutes=0,
                          priority="high"),
        await seed_ticket(settings, sessions, blobs, name="Network down", email="bob@example.com", first_name="Bob",
                          minutes=10),
        await seed_ticket(settings, sessions, blobs, name="Toner again", email="grace@example.org", first_name="Grace",
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


async def test_a_token_records_its_last_use_to_the_minute(client, sessions) -> None:  # type: ignore[no-untyped-def]
    user_id, headers = await create_user_token(sessions, email="last.used@acme.test")
    status, _ = await get_json(client, "/api/v1/tickets", headers=headers)
    assert status == 200
    async with sessions() as session:
        first = await session.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == user_id))
    assert first is not None
    status, _ = await get_json(client, "/api/v1/tickets", headers=headers)
    async with sessions() as session:
        assert await session.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == user_id)) == first
        # A minute later the next request records itself again.
        await session.execute(update(ApiToken).where(ApiToken.user_id == user_id)
                              .values(last_used_at=first - timedelta(minutes=2)))
        await session.commit()
    status, _ = await get_json(client, "/api/v1/tickets", headers=headers)
    async with sessions() as session:
        assert await session.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == user_id)) >= first


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
     ({"cursor": "garbage"}, "cursor"), ({"sort": "no_such_property"}, "sort"), ({"owner": "someone"}, "owner"),
     ({"page": "0"}, "page")],
)
async def test_bad_parameters_are_named(client, three_tickets, params, parameter) -> None:  # type: ignore[no-untyped-def]
    status, body = await get_json(client, "/api/v1/tickets", **params)
    assert status == 400
    assert body["error"]["code"] == "invalid_parameter" and body["error"]["parameter"] == parameter


async def test_detail_shows_messages_match_reasons_and_attachments(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    pdf = b"%PDF-1.4 not really a pdf"
    first_raw = support_mail(subject="The printer is on fire", sender="Ada Lovelace <ada@example.com>",
                             message_id="fire-1@example.com", body="It is burning.",
                             attachment=("smoke report.pdf", "application/pdf", pdf))
    created = await ingest(settings, sessions, blobs, first_raw)
    threaded = await ingest(settings, sessions, blobs, support_mail(
        subject="Re: The printer is on fire", sender="Ada Lovelace <ada@example.com>",
        message_id="fire-2@example.com", in_reply_to="fire-1@example.com",
        body="Still burning\n\nOn Monday, Support wrote:\n> It is burning.\n"))
    auto_reply = support_mail(subject="Out of office", sender="Ada Lovelace <ada@example.com>",
                              message_id="fire-3@example.com", in_reply_to="fire-1@example.com", body="I am away")
    auto_reply = b"Auto-Submitted: auto-replied\r\n" + auto_reply
    screened = await ingest(settings, sessions, blobs, auto_reply)
    assert (created.kind, threaded.kind, screened.kind) == ("ticket_created", "threaded", "screened")
    ticket_id = created.ticket_id
    async with sessions.begin() as session:  # an agent's answer, as the outbound side records it
        session.add(Message(ticket_id=ticket_id, direction=OUTBOUND, channel="email", external_id="fd.1.x.y@acme.test",
                            subject="Re: The printer is on fire", author_kind="agent", text_body="We are on it",
                            delivery_state="sent", created_at=datetime.now(timezone.utc) + timedelta(minutes=1)))

    status, ticket = await get_json(client, f"/api/v1/tickets/{ticket_id}")
    assert status == 200
    assert ticket["name"] == "The printer is on fire"
    assert (ticket["status"]["label"], ticket["status"]["internal_name"]) == ("New", "new")
    assert ticket["pipeline"]["internal_name"] == "support"
    assert ticket["contact"]["email"] == "ada@example.com"
    first, reply, out_of_office, answer = ticket["messages"]
    assert first["external_id"] == "fire-1@example.com" and first["match"]["rule"] == "new_ticket"
    assert first["direction"] == "inbound" and first["from"]["address"] == "ada@example.com"
    assert reply["match"]["rule"] == "in_reply_to" and "fire-1@example.com" in reply["match"]["detail"]
    assert reply["reply_text"] == "Still burning"
    assert out_of_office["screening"]["verdict"] == "auto_reply" and out_of_office["screening"]["reason"]
    assert answer["direction"] == "outbound" and answer["delivery_state"] == "sent" and answer["raw_url"] is None
    [attachment] = first["attachments"]
    assert attachment["filename"] == "smoke report.pdf" and attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(pdf) and attachment["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert attachment["inline"] is False and attachment["from_tnef"] is False

    async with client.get(attachment["download_url"], headers=OPERATOR) as response:
        assert response.status == 200
        assert await response.read() == pdf
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    async with client.get(first["raw_url"], headers=OPERATOR) as response:
        assert response.status == 200 and response.content_type == "message/rfc822"
        assert await response.read() == first_raw


async def test_unknown_ticket_is_404(client, three_tickets) -> None:  # type: ignore[no-untyped-def]
    status, body = await get_json(client, "/api/v1/tickets/999999")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_team_user_sees_only_their_teams_tickets(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        red, blue = Team(name="Red"), Team(name="Blue")
        session.add_all([red, blue])
        await session.flush()
        red_id, blue_id = red.id, blue.id
    me, my_headers = await create_user_token(sessions, email="me@acme.test", ticket_access="team", team_id=red_id)
    mate, _ = await create_user_token(sessions, email="mate@acme.test", team_id=red_id)
    other, _ = await create_user_token(sessions, email="other@acme.test", team_id=blue_id)
    mine = await seed_ticket(settings, sessions, blobs, name="Mine", email="a@example.com", owner_id=me, minutes=1)
    mates = await seed_ticket(settings, sessions, blobs, name="Mate's", email="b@example.com", owner_id=mate, minutes=2)
    foreign = await seed_ticket(settings, sessions, blobs, name="Other team's", email="c@example.com", owner_id=other,
                                minutes=3)
    unassigned = await seed_ticket(settings, sessions, blobs, name="Nobody's", email="d@example.com", minutes=4)

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


async def test_attachments_of_invisible_tickets_are_404(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    owner, _ = await create_user_token(sessions, email="owner@acme.test")
    _, outsider = await create_user_token(sessions, email="outsider@acme.test", ticket_access="owned")
    ticket_id = await seed_ticket(settings, sessions, blobs, name="Private", email="p@example.com", owner_id=owner)
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


async def test_raw_source_lost_from_blob_storage_is_410(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    ticket_id = await seed_ticket(settings, sessions, blobs, name="Lost bytes", email="l@example.com")
    async with sessions() as session:
        message = await session.scalar(select(Message).where(Message.ticket_id == ticket_id))
    blobs.path_for(message.raw_blob).unlink()
    async with client.get(f"/api/v1/messages/{message.id}/raw", headers=OPERATOR) as response:
        assert response.status == 410
        assert (await response.json())["error"]["code"] == "blob_missing"


async def test_patch_answers_with_the_ticket_as_get_shows_it(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    ticket_id = await seed_ticket(settings, sessions, blobs, name="Printer", email="ada@example.com")
    async with client.patch(f"/api/v1/tickets/{ticket_id}", headers=OPERATOR,
                            json={"status": "Closed", "priority": "high"}) as response:
        assert response.status == 200, await response.text()
        patched = await response.json()
    async with client.get(f"/api/v1/tickets/{ticket_id}", headers=OPERATOR) as response:
        shown = await response.json()
    shown.pop("sla")  # the SLA clocks move after the change commits (docs/sla.md)
    assert len(shown.pop("messages")) == 1 and patched == shown  # the same ticket, less its messages
    assert patched["status"]["internal_name"] == "closed" and patched["contact"]["email"] == "ada@example.com"
    assert patched["priority"] == "high" and patched["closed_at"]
    async with client.get("/openapi.json") as response:
        patch = (await response.json())["paths"]["/api/v1/tickets/{ticket_id}"]["patch"]
    assert patch["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TicketSummary"}
