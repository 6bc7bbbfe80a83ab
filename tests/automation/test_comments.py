"""Internal comments through the real API: access, authorship, the timeline, events and audit, and
@mention emails through the outbox, the embedded runner and the SMTP sink, exactly once."""

from __future__ import annotations

from sqlalchemy import func, select

from _api_world import create_user_token, stepped_api  # noqa: F401  (a fixture)
from _automation_world import make_ticket
from frontdesk.automation.handlers import handle_event
from frontdesk.events import DomainEvent
from frontdesk.model import AuditEntry, Delivery, OutboxEvent, Team
from frontdesk.model.access import ACCESS_TEAM


async def team(sessions, name: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        row = Team(name=name)
        session.add(row)
        await session.flush()
        return row.id


async def deliveries_to(sessions, address: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Delivery).where(Delivery.recipient == address))


async def test_comments_mentions_and_the_timeline(sessions, stepped_api, runner, deliveries, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    api = stepped_api
    ann, ann_h = await create_user_token(sessions, email="ann@acme.test")
    carl, carl_h = await create_user_token(sessions, email="carl@acme.test")
    dan, _ = await create_user_token(sessions, email="dan@acme.test")
    # Bob is team-only on another team: Ann's ticket is outside his access.
    bob, bob_h = await create_user_token(sessions, email="bob@acme.test", ticket_access=ACCESS_TEAM,
                                       team_id=await team(sessions, "B"))
    ticket = await make_ticket(sessions, owner_id=ann)
    url = f"/api/v1/tickets/{ticket}"

    answer = await api.post(f"{url}/comments", json={"body": "hi"}, headers={"Authorization": "Bearer test-api-token"})
    assert (answer.status, (await answer.json())["error"]["code"]) == (403, "user_required")
    # Mentioning someone who cannot see the ticket is refused, naming them; nothing is stored.
    answer = await api.post(f"{url}/comments", json={"body": f"@[user:{bob}] look"}, headers=ann_h)
    assert answer.status == 422
    error = (await answer.json())["error"]
    assert error["code"] == "mention_without_access" and "bob@acme.test" in error["message"]
    assert [u["id"] for u in error["users"]] == [bob]
    answer = await api.post(f"{url}/comments", json={"body": "@[user:999999] @[user:9999999999] hi"}, headers=ann_h)
    error = (await answer.json())["error"]
    assert (answer.status, error["code"], error["user_ids"]) == (422, "mention_unknown_user", [999999, 9999999999])

    answer = await api.post(f"{url}/comments", json={"body": f"@[user:{carl}] can you check the toner?"},
                            headers=ann_h)
    assert answer.status == 201, await answer.text()
    comment = await answer.json()
    assert comment["mentions"] == [{"id": carl, "name": "carl", "email": "carl@acme.test"}]
    assert comment["edited"] is False

    # Bob cannot see the ticket: 404 everywhere, not 403.
    for method, path in (("GET", f"{url}/comments"), ("GET", f"{url}/timeline"),
                         ("PATCH", f"{url}/comments/{comment['id']}"), ("DELETE", f"{url}/comments/{comment['id']}")):
        async with api.request(method, path, json={"body": "x"}, headers=bob_h) as answer:
            assert answer.status == 404, (method, path)
    # Carl sees it, but only the author edits or deletes.
    for method in ("PATCH", "DELETE"):
        async with api.request(method, f"{url}/comments/{comment['id']}", json={"body": "mine now"},
                               headers=carl_h) as answer:
            assert (answer.status, (await answer.json())["error"]["code"]) == (403, "not_comment_author")

    # The timeline: the customer's message, then the comment, one per page.
    first = await (await api.get(f"{url}/timeline", params={"limit": "1"}, headers=carl_h)).json()
    assert [e["kind"] for e in first["entries"]] == ["message"]
    second = await (await api.get(f"{url}/timeline", params={"limit": "1", "cursor": first["next_cursor"]},
                                  headers=carl_h)).json()
    assert [(e["kind"], e["comment"]["id"]) for e in second["entries"]] == [("comment", comment["id"])]
    assert second["next_cursor"] is None

    # Carl is notified once; the customer gets nothing.
    await runner.run_until_idle()
    await deliveries.deliver_due()
    mails = handler.to("carl@acme.test")
    assert len(mails) == 1
    assert f"[#{ticket}]" in mails[0]["Subject"]
    assert "@carl can you check the toner?" in mails[0].get_content()
    assert await deliveries_to(sessions, "ada@example.com") == 0

    # Editing to add Dan notifies only Dan.
    answer = await api.patch(f"{url}/comments/{comment['id']}",
                             json={"body": f"@[user:{carl}] @[user:{dan}] toner, please"}, headers=ann_h)
    assert answer.status == 200 and (await answer.json())["edited"] is True
    await runner.run_until_idle()
    await deliveries.deliver_due()
    assert (len(handler.to("carl@acme.test")), len(handler.to("dan@acme.test"))) == (1, 1)

    # A worker restart redelivers the events: replaying each twice sends nothing more.
    async with sessions() as session:
        bodies = (await session.scalars(select(OutboxEvent.body).where(OutboxEvent.type.like("comment.%"))
                                        .order_by(OutboxEvent.id))).all()
    for body in bodies * 2:
        await handle_event(runner.services, DomainEvent.from_dict(body))
    await deliveries.deliver_due()
    assert (await deliveries_to(sessions, "carl@acme.test"), await deliveries_to(sessions, "dan@acme.test")) == (1, 1)
    assert len(handler.received) == 2

    assert (await api.delete(f"{url}/comments/{comment['id']}", headers=ann_h)).status == 204
    assert (await (await api.get(f"{url}/comments", headers=carl_h)).json())["comments"] == []
    async with sessions() as session:
        types = (await session.scalars(select(OutboxEvent.type).where(OutboxEvent.type.like("comment.%"))
                                       .order_by(OutboxEvent.id))).all()
        audit = (await session.scalars(select(AuditEntry.action).where(AuditEntry.entity == "comment")
                                       .order_by(AuditEntry.id))).all()
    assert types == ["comment.created", "comment.edited", "comment.deleted"]
    assert audit == ["comment.edited", "comment.deleted"]

