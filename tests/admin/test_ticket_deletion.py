"""Soft delete: within the caller's access, gone from every answer, listed and restored by admins, evented and audited."""

from sqlalchemy import select

from admin_client import make_user
from frontdesk.model import AuditEntry, OutboxEvent


async def test_delete_within_access_then_restore_by_an_admin(api, sessions):
    one = (await api.ok("POST", "/api/v1/teams", {"name": "One"}, expect=201))["id"]
    two = (await api.ok("POST", "/api/v1/teams", {"name": "Two"}, expect=201))["id"]
    alice, _ = await make_user(api, "alice@acme.test", primary_team_id=one)
    bob, _ = await make_user(api, "bob@acme.test", primary_team_id=two)
    agent_id, agent = await make_user(api, "t1@acme.test", access="team", primary_team_id=one)
    _, admin = await make_user(api, "admin@acme.test", role="admin")
    tickets = {}
    for key, owner in (("a", alice), ("b", bob), ("keep", alice)):
        tickets[key] = (await api.ok("POST", "/api/v1/tickets", {"name": key, "pipeline": "support", "status": "new",
                                                                  "owner_id": owner}, expect=201))["id"]
    a, b = tickets["a"], tickets["b"]

    code, _ = await api.delete(f"/api/v1/tickets/{b}", token=agent)  # not theirs to see
    assert code == 404
    assert (await api.ok("GET", f"/api/v1/tickets/{b}"))["id"] == b
    code, _ = await api.delete(f"/api/v1/tickets/{a}", token=agent)
    assert code == 204

    # Gone for everyone, super admins included: detail, list, total, changes, replies.
    for token in (agent, admin, None):
        kw = {"token": token} if token else {}
        code, _ = await api.get(f"/api/v1/tickets/{a}", **kw)
        assert code == 404
        listed = await api.ok("GET", "/api/v1/tickets", **kw)
        assert a not in {t["id"] for t in listed["tickets"]}
    listed = await api.ok("GET", "/api/v1/tickets", token=agent)
    assert {t["id"] for t in listed["tickets"]} == {tickets["keep"]} and listed["total"] == 1
    assert (await api.ok("GET", "/api/v1/tickets"))["total"] == 2
    for method, path, body in (("PATCH", f"/api/v1/tickets/{a}", {"priority": "high"}),
                               ("DELETE", f"/api/v1/tickets/{a}", None),
                               ("GET", f"/api/v1/tickets/{a}/contacts", None)):
        code, _ = await api.call(method, path, body)
        assert code == 404, (method, path)

    # Only admins see the deleted tickets and restore them.
    code, error = await api.get("/api/v1/tickets/deleted", token=agent)
    assert code == 403 and error["error"]["code"] == "admin_required"
    code, _ = await api.post(f"/api/v1/tickets/{a}/restore", token=agent)
    assert code == 403
    deleted = await api.ok("GET", "/api/v1/tickets/deleted", token=admin)
    assert [(t["id"], t["deleted_by_id"]) for t in deleted["tickets"]] == [(a, agent_id)]
    code, _ = await api.post(f"/api/v1/tickets/{b}/restore", token=admin)  # not deleted
    assert code == 404
    restored = await api.ok("POST", f"/api/v1/tickets/{a}/restore", token=admin)
    assert restored["id"] == a and restored["name"] == "a"
    assert (await api.ok("GET", f"/api/v1/tickets/{a}", token=agent))["id"] == a
    assert (await api.ok("GET", "/api/v1/tickets/deleted", token=admin))["tickets"] == []

    async with sessions() as session:
        events = (await session.scalars(select(OutboxEvent.type).where(OutboxEvent.ticket_id == a)
                                        .order_by(OutboxEvent.id))).all()
        audit = (await session.execute(select(AuditEntry.action, AuditEntry.actor_label)
                                       .where(AuditEntry.entity == "ticket", AuditEntry.entity_id == str(a))
                                       .order_by(AuditEntry.id))).all()
    assert list(events) == ["ticket.created", "ticket.deleted", "ticket.restored"]
    assert [tuple(r) for r in audit] == [("ticket.deleted", "t1@acme.test"), ("ticket.restored", "admin@acme.test")]
