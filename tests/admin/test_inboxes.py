"""Inboxes and moving conversations: who may move, reassignment and the comment, and the ticket staying in the help desk."""

from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from admin_client import make_user
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import AuditEntry, Channel, Message, OutboxEvent, utcnow
from frontdesk.runtime.config import ConfigApplyError, apply_config, export_config


async def _mail(settings, sessions, blobs, to: str, message_id: str):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Ada <ada@example.com>", to, "Can I buy more seats?"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("Hello, we need ten more seats.")
    envelope = Envelope(channel="email", source="smtp", mail_from="ada@example.com", rcpt_tos=(to,),
                        received_at=utcnow())
    return await ingest_email(IngestContext(settings=settings, sessions=sessions, blobs=blobs), msg.as_bytes(),
                              envelope)


async def test_moving_conversations_between_the_help_desk_and_an_inbox(api, settings, sessions, blobs):
    team = (await api.ok("POST", "/api/v1/teams", {"name": "Sales"}, expect=201))["id"]
    _, root = await make_user(api, "root@acme.test", role="super_admin")
    mover_id, mover = await make_user(api, "mover@acme.test")
    await api.ok("PATCH", f"/api/v1/users/{mover_id}", {"account_access": True})
    _, agent = await make_user(api, "agent@acme.test")
    _, narrow = await make_user(api, "narrow@acme.test", access="team", primary_team_id=team)
    seller_id, _ = await make_user(api, "seller@acme.test", primary_team_id=team)
    narrow_id = (await api.ok("GET", "/api/v1/me", token=narrow))["user_id"]
    await api.ok("PATCH", f"/api/v1/users/{narrow_id}", {"account_access": True})
    assert (await api.ok("GET", "/api/v1/me", token=mover))["account_access"] is True

    code, error = await api.post("/api/v1/inboxes", {"name": "Sales chat"}, token=mover)
    assert code == 403
    sales = await api.ok("POST", "/api/v1/inboxes", {"name": "Sales chat"}, token=root, expect=201)
    assert (sales["key"], sales["kind"]) == ("sales_chat", "conversations")
    code, error = await api.post("/api/v1/inboxes", {"name": "sales CHAT"}, token=root)
    assert code == 409 and error["error"]["code"] == "inbox_name_taken"
    inboxes = (await api.ok("GET", "/api/v1/inboxes", token=agent))["inboxes"]
    help_desk = next(i for i in inboxes if i["kind"] == "help_desk")
    assert [i["key"] for i in inboxes] == ["help_desk", "sales_chat"]

    created = await _mail(settings, sessions, blobs, "support@acme.test", "m1@example.com")
    ticket_id = created.ticket_id
    conversation_id = (await api.ok("GET", f"/api/v1/tickets/{ticket_id}"))["messages"][0]["conversation_id"]
    path = f"/api/v1/conversations/{conversation_id}"
    assert (await api.ok("GET", path, token=agent))["inbox_id"] == help_desk["id"]

    # Who may move: super admins and account access, within ticket access.
    body = {"inbox_id": sales["id"], "owner_id": seller_id, "comment": "Sales question, over to you"}
    code, error = await api.post(f"{path}/move", body, token=agent)
    assert code == 403 and error["error"]["code"] == "account_access_required"
    code, _ = await api.post(f"{path}/move", body, token=narrow)  # sees only the team's tickets
    assert code == 404
    for bad, field in (({"inbox_id": 999999}, "inbox_id"), ({"inbox_id": sales["id"], "owner_id": 999999}, "owner_id")):
        code, error = await api.post(f"{path}/move", bad, token=mover)
        assert code == 422 and error["error"]["field"] == field, error
    moved = await api.ok("POST", f"{path}/move", body, token=mover)
    assert (moved["inbox_id"], moved["owner_id"], moved["ticket_id"]) == (sales["id"], seller_id, ticket_id)
    assert [(m["from_inbox_id"], m["to_inbox_id"], m["comment"]) for m in moved["moves"]] == [
        (help_desk["id"], sales["id"], "Sales question, over to you")]
    code, error = await api.post(f"{path}/move", {"inbox_id": sales["id"]}, token=mover)
    assert code == 409 and error["error"]["code"] == "already_in_inbox"

    # The ticket stays in the help desk, as it was: same owner, still listed, its messages still there.
    ticket = await api.ok("GET", f"/api/v1/tickets/{ticket_id}")
    assert ticket["owner_id"] is None and [m["conversation_id"] for m in ticket["messages"]] == [conversation_id]
    assert ticket_id in {t["id"] for t in (await api.ok("GET", "/api/v1/tickets"))["tickets"]}

    # Back into the help desk by a super admin, reassigned: the ticket follows the new owner.
    back = await api.ok("POST", f"{path}/move", {"inbox_id": help_desk["id"], "owner_id": mover_id,
                                                 "comment": "Billing after all"}, token=root)
    assert back["inbox_id"] == help_desk["id"] and len(back["moves"]) == 2
    assert (await api.ok("GET", f"/api/v1/tickets/{ticket_id}"))["owner_id"] == mover_id

    # A conversation with no ticket gets one when it comes into the help desk.
    async with sessions.begin() as session:
        await session.execute(update(Channel).where(Channel.key == "billing@acme.test").values(create_tickets=False))
    loose = await _mail(settings, sessions, blobs, "billing@acme.test", "m2@example.com")
    assert loose.ticket_id is None
    async with sessions() as session:
        loose_conversation = await session.scalar(select(Message.conversation_id).where(Message.id == loose.message_id))
    loose_path = f"/api/v1/conversations/{loose_conversation}"
    code, _ = await api.get(loose_path, token=agent)  # no ticket: only for those who may move it
    assert code == 404
    await api.ok("POST", f"{loose_path}/move", {"inbox_id": sales["id"]}, token=root)
    entered = await api.ok("POST", f"{loose_path}/move", {"inbox_id": help_desk["id"], "owner_id": seller_id,
                                                          "comment": "Needs a ticket"}, token=root)
    new_ticket = await api.ok("GET", f"/api/v1/tickets/{entered['ticket_id']}")
    assert new_ticket["name"] == "Can I buy more seats?" and new_ticket["owner_id"] == seller_id
    assert [m["id"] for m in new_ticket["messages"]] == [loose.message_id]
    assert new_ticket["contact"]["email"] == "ada@example.com"

    async with sessions() as session:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "conversation.moved")
                                        .order_by(OutboxEvent.id))).all()
        audited = (await session.scalars(select(AuditEntry.action).where(AuditEntry.entity == "conversation"))).all()
    assert [(e.ticket_id, e.body["payload"]["to_inbox_id"], e.body["payload"]["ticket_created"]) for e in events] == [
        (ticket_id, sales["id"], False), (ticket_id, help_desk["id"], False),
        (None, sales["id"], False), (entered["ticket_id"], help_desk["id"], True)]
    assert list(audited) == ["conversation.moved"] * 4


async def test_config_export_and_apply_carry_inboxes_and_account_access(api, settings, sessions, blobs):
    user_id, _ = await make_user(api, "mover@acme.test")
    await api.ok("PATCH", f"/api/v1/users/{user_id}", {"account_access": True})
    sales = await api.ok("POST", "/api/v1/inboxes", {"name": "Sales chat"}, expect=201)
    await api.ok("POST", "/api/v1/inboxes", {"name": "Partners", "key": "partners"}, expect=201)
    async with sessions() as session:
        doc = await export_config(session)
    assert doc["inboxes"] == [{"key": "partners", "name": "Partners"}, {"key": "sales_chat", "name": "Sales chat"}]
    assert next(u for u in doc["users"] if u["email"] == "mover@acme.test")["account_access"] is True

    doc["inboxes"] = [{"key": "sales_chat", "name": "Sales"}, {"key": "vip", "name": "VIP"}]
    assert (await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)).changed
    inboxes = (await api.ok("GET", "/api/v1/inboxes"))["inboxes"]
    assert [(i["key"], i["name"]) for i in inboxes] == [("help_desk", "Help desk"), ("sales_chat", "Sales"),
                                                        ("vip", "VIP")]
    assert next(i for i in inboxes if i["key"] == "sales_chat")["id"] == sales["id"]

    # An inbox that holds a conversation is not dropped by a file that leaves it out.
    created = await _mail(settings, sessions, blobs, "support@acme.test", "m1@example.com")
    conversation_id = (await api.ok("GET", f"/api/v1/tickets/{created.ticket_id}"))["messages"][0]["conversation_id"]
    await api.ok("POST", f"/api/v1/conversations/{conversation_id}/move", {"inbox_id": sales["id"]})
    doc["inboxes"] = []
    with pytest.raises(ConfigApplyError) as refused:
        await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)
    assert refused.value.code == "inbox_in_use"
    assert len((await api.ok("GET", "/api/v1/inboxes"))["inboxes"]) == 3
