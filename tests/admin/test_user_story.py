"""The issue's story end to end: a super admin, an admin who sets up On-site service, an agent at work."""

from sqlalchemy import select

from admin_client import story_setup
from frontdesk.model import Contact, OutboxEvent, Ticket


async def test_the_user_story(api, sessions):
    story = await story_setup(api)
    admin_id, admin = story["admin"]
    agent_id, agent = story["agent"]
    ids = story["statuses"]

    # What the admin built, as the agent sees it.
    onsite = await api.ok("GET", f"/api/v1/pipelines/{story['pipeline']}", token=agent)
    assert [(s["label"], s["state"]) for s in onsite["statuses"]] == [
        ("Requested", "open"), ("Escalated", "open"), ("Technician booked", "open"), ("Follow-up", "open"),
        ("Closed", "closed")]
    automation = await api.ok("GET", f"/api/v1/pipelines/{story['pipeline']}/automation", token=agent)
    assert automation["customer_replied"] == {"enabled": True, "status_id": ids["follow_up"]}
    assert automation["email_sent"]["enabled"] is False and automation["action_sources"] == ["chat"]
    chain = await api.ok("GET", f"/api/v1/statuses/{ids['escalated']}/actions", token=agent)
    assert [(a["kind"], a["recipient"]) for a in chain["actions"]] == [("notify", {"kind": "owner_team", "id": None})]

    # The agent creates a ticket by hand, with a new contact and company.
    ticket = await api.ok("POST", "/api/v1/tickets", {
        "name": "Boiler makes a noise", "pipeline": "on_site_service", "status": "requested", "priority": "high",
        "contact": {"email": "Ida@Customer.test", "first_name": "Ida"},
        "company": {"name": "Customer Ltd", "domain": "customer.test"}}, token=agent, expect=201)
    assert ticket["owner_id"] == agent_id and ticket["status"]["internal_name"] == "requested"
    listed = await api.ok("GET", "/api/v1/tickets", token=agent)
    assert [t["id"] for t in listed["tickets"]] == [ticket["id"]]

    # Moving through the statuses; closing without a Resolution names the rule.
    moved = await api.ok("PATCH", f"/api/v1/tickets/{ticket['id']}", {"status": "escalated"}, token=agent)
    assert moved["status"]["internal_name"] == "escalated"
    code, body = await api.patch(f"/api/v1/tickets/{ticket['id']}", {"status": "closed"}, token=agent)
    assert code == 422 and body["error"]["code"] == "required_properties_missing"
    assert body["error"]["missing"] == ["resolution"]
    code, body = await api.post("/api/v1/tickets", {"name": "Quick fix", "pipeline": "on_site_service",
                                                    "status": "closed"}, token=agent)
    assert code == 422 and body["error"]["missing"] == ["resolution"]
    closed = await api.ok("POST", "/api/v1/tickets", {"name": "Quick fix", "pipeline": "on_site_service",
                                                      "status": "closed", "properties": {"resolution": "fixed"}},
                          token=agent, expect=201)
    assert closed["status"]["is_closed"] and closed["closed_at"]

    # The preview of the admin's template renders for the agent's ticket.
    preview = await api.ok("POST", "/api/v1/templates/visit_booked/preview", {"ticket_id": ticket["id"]}, token=agent)
    assert preview["subject"] == "Your visit for Boiler makes a noise"

    async with sessions() as session:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.ticket_id == ticket["id"])
                                        .order_by(OutboxEvent.id))).all()
        stored = await session.get(Ticket, ticket["id"])
        contact = await session.get(Contact, stored.contact_id)
    assert [(e.type, e.body["actor"]) for e in events] == [
        ("ticket.created", {"kind": "agent", "id": str(agent_id)}),
        ("ticket.status_changed", {"kind": "agent", "id": str(agent_id)})]
    assert events[1].body["payload"]["to_status"] == "escalated"
    assert contact.email == "ida@customer.test" and contact.company_id == stored.company_id

    # Every admin change is in the audit log, with who made it.
    entries = (await api.ok("GET", "/api/v1/audit", params={"limit": "200"}))["entries"]
    by_admin = {e["action"] for e in entries if e["actor_user_id"] == admin_id}
    assert {"pipeline.created", "status.updated", "status.reordered", "property.created", "stage_properties.set",
            "automation.updated", "action.created", "template.created"} <= by_admin
    assert {"user.created", "team.created", "token.created", "pipeline.access_set"} <= {e["action"] for e in entries}
