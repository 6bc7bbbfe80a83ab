"""A reply that inserts a snippet and a template: rendered for the ticket, and what the customer receives is
exactly what is stored, through the real outbound path (delivery loop to an SMTP sink)."""

from __future__ import annotations

from sqlalchemy import select

from _api_world import create_user_token, stepped_api  # noqa: F401  (a fixture)
from _automation_world import make_ticket
from frontdesk.model import Message

OPERATOR = {"Authorization": "Bearer test-api-token"}


async def test_inserted_snippets_and_templates_are_rendered_and_sent(sessions, stepped_api, deliveries, sink) -> None:  # type: ignore[no-untyped-def]
    api, (handler, _) = stepped_api, sink
    ann, ann_h = await create_user_token(sessions, email="ann@acme.test")
    _, bob_h = await create_user_token(sessions, email="bob@acme.test")
    ticket = await make_ticket(sessions, owner_id=ann)
    answer = await api.post("/api/v1/snippets", json={
        "name": "Hello", "shortcut": "hello",
        "body": "Hi {{ contact.first_name }}, {{ owner.name }} here about ticket #{{ ticket.id }}."}, headers=ann_h)
    assert answer.status == 201, await answer.text()
    snippet = (await answer.json())["id"]
    answer = await api.post("/api/v1/snippets", json={"name": "Bob's", "shortcut": "bob", "body": "secret"},
                            headers=bob_h)
    bobs = (await answer.json())["id"]
    answer = await api.post("/api/v1/templates", headers=OPERATOR, json={
        "key": "signoff", "name": "Sign-off", "subject": "unused", "body_text": "Kind regards,\n{{ owner.name }}",
        "body_html": "<p>Kind regards,<br>{{ owner.name }}</p>"})
    assert answer.status == 201, await answer.text()

    rendered = await (await api.post(f"/api/v1/snippets/{snippet}/render", json={"ticket_id": ticket},
                                     headers=ann_h)).json()
    assert rendered == {"text": f"Hi Ada, ann here about ticket #{ticket}."}

    # Someone else's private snippet, or a template that does not exist, is refused and nothing is sent.
    for insert in ({"snippet": bobs}, {"template": "nope"}):
        answer = await api.post(f"/api/v1/tickets/{ticket}/replies", json={"text": "x", "insert": [insert]},
                                headers=ann_h)
        assert (answer.status, (await answer.json())["error"]["code"]) == (422, "insert_not_found"), insert
    answer = await api.post(f"/api/v1/tickets/{ticket}/replies", json={"insert": [{"snippet": "hello"}]},
                            headers=ann_h)
    assert (answer.status, (await answer.json())["error"]["code"]) == (422, "insert_invalid")

    answer = await api.post(f"/api/v1/tickets/{ticket}/replies", headers=ann_h, json={
        "text": "Thanks for writing.", "html": "<p>Thanks for writing.</p>",
        "insert": [{"snippet": snippet}, {"template": "signoff"}]})
    assert answer.status == 201, await answer.text()
    await deliveries.deliver_due()
    [mail] = handler.to("ada@example.com")
    expected = f"Thanks for writing.\n\nHi Ada, ann here about ticket #{ticket}.\n\nKind regards,\nann"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == expected
    body_html = mail.get_body(("html",)).get_content()
    assert "<p>Kind regards,<br>ann</p>" in body_html and f"ticket #{ticket}." in body_html
    async with sessions() as session:
        stored = await session.scalar(select(Message).where(Message.ticket_id == ticket, Message.direction == "outbound"))
    assert stored.text_body == expected

    # Inserted content alone makes a reply.
    answer = await api.post(f"/api/v1/tickets/{ticket}/replies", json={"insert": [{"template": "signoff"}]},
                            headers=ann_h)
    assert answer.status == 201, await answer.text()
    await deliveries.deliver_due()
    assert handler.to("ada@example.com")[1].get_body(("plain",)).get_content().split() == ["Kind", "regards,", "ann"]
