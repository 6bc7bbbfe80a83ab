"""Ticket associations: any number of contacts and companies, one primary of each, within ticket access."""

from sqlalchemy import select

from admin_client import make_user
from frontdesk.model import OutboxEvent


async def test_associate_dissociate_and_the_primary(api, sessions):
    team = (await api.ok("POST", "/api/v1/teams", {"name": "One"}, expect=201))["id"]
    other_team = (await api.ok("POST", "/api/v1/teams", {"name": "Two"}, expect=201))["id"]
    owner_id, agent = await make_user(api, "agent@acme.test", access="team", primary_team_id=team)
    _, outsider = await make_user(api, "outsider@acme.test", access="team", primary_team_id=other_team)
    kim = await api.ok("POST", "/api/v1/contacts", {"email": "kim@client.test", "first_name": "Kim"}, expect=201)
    lee = await api.ok("POST", "/api/v1/contacts", {"email": "lee@client.test"}, expect=201)
    client = await api.ok("POST", "/api/v1/companies", {"name": "Client"}, expect=201)
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "Broken", "pipeline": "support", "status": "new",
                                                      "contact": {"id": kim["id"]}}, token=agent, expect=201)
    base = f"/api/v1/tickets/{ticket['id']}"

    def ids(answer, key="contacts"):
        return [(c["id"], c["primary"]) for c in answer[key]]

    assert ids(await api.ok("GET", f"{base}/contacts", token=agent)) == [(kim["id"], True)]
    answer = await api.ok("PUT", f"{base}/contacts/{lee['id']}", token=agent)
    assert ids(answer) == [(kim["id"], True), (lee["id"], False)]
    assert ids(await api.ok("PUT", f"{base}/contacts/{lee['id']}", token=agent)) == ids(answer)  # again is fine
    answer = await api.ok("PUT", f"{base}/contacts/{lee['id']}", {"primary": True}, token=agent)
    assert ids(answer) == [(kim["id"], False), (lee["id"], True)]
    detail = await api.ok("GET", base, token=agent)
    assert detail["contact"]["id"] == lee["id"] and ids(detail) == ids(answer)
    patched = await api.ok("PATCH", base, {"priority": "high"}, token=agent)
    assert ids(patched) == ids(detail) and patched["companies"] == detail["companies"] == []

    # Dissociating the primary hands the role to the oldest remaining contact.
    assert ids(await api.ok("DELETE", f"{base}/contacts/{lee['id']}", token=agent)) == [(kim["id"], True)]
    code, error = await api.delete(f"{base}/contacts/{lee['id']}", token=agent)
    assert code == 404
    code, error = await api.put(f"{base}/contacts/999999", token=agent)
    assert code == 404 and error["error"]["message"] == "contact not found"
    code, error = await api.put(f"{base}/contacts/{lee['id']}", {"primary": "yes"}, token=agent)
    assert code == 422 and error["error"]["field"] == "primary"

    answer = await api.ok("PUT", f"{base}/companies/{client['id']}", token=agent)
    assert ids(answer, "companies") == [(client["id"], True)]
    listed = await api.ok("GET", "/api/v1/tickets", token=agent)
    row = next(t for t in listed["tickets"] if t["id"] == ticket["id"])
    assert ids(row) == [(kim["id"], True)] and ids(row, "companies") == [(client["id"], True)]

    # A ticket outside the caller's access does not exist for them.
    for method in ("GET", "PUT", "DELETE"):
        path = f"{base}/contacts" if method == "GET" else f"{base}/contacts/{kim['id']}"
        code, _ = await api.call(method, path, token=outsider)
        assert code == 404, method
    assert ids(await api.ok("GET", f"{base}/contacts", token=agent)) == [(kim["id"], True)]

    async with sessions() as session:
        events = (await session.scalars(select(OutboxEvent).where(
            OutboxEvent.ticket_id == ticket["id"], OutboxEvent.type == "ticket.property_changed")
            .order_by(OutboxEvent.id))).all()
    changes = [e.body["payload"]["changes"] for e in events if "priority" not in e.body["payload"]["changes"]]
    assert changes[0] == {"contacts": {"from": [kim["id"]], "to": [kim["id"], lee["id"]]}}
    assert changes[1] == {"contact_id": {"from": kim["id"], "to": lee["id"]}}
    assert changes[2] == {"contacts": {"from": [kim["id"], lee["id"]], "to": [kim["id"]]},
                          "contact_id": {"from": lee["id"], "to": kim["id"]}}
    assert changes[3] == {"companies": {"from": [], "to": [client["id"]]},
                          "company_id": {"from": None, "to": client["id"]}}
    assert len(changes) == 4  # the repeated PUT and the refused ones changed nothing
    assert all(e.body["actor"] == {"kind": "agent", "id": str(owner_id)} for e in events)


async def test_manual_create_takes_existing_ids_and_new_contacts_and_companies(api):
    known = await api.ok("POST", "/api/v1/contacts", {"email": "kim@client.test"}, expect=201)
    company = await api.ok("POST", "/api/v1/companies", {"name": "Client"}, expect=201)
    ticket = await api.ok("POST", "/api/v1/tickets", {
        "name": "Onboarding", "pipeline": "support", "status": "new",
        "contacts": [{"email": "new@partner.test", "first_name": "Nia", "mobile_phone": "+1 555 0101"},
                     {"id": known["id"]}, {"email": "KIM@client.test"}, {"first_name": "Walk-in"}],
        "companies": [{"name": "Partner", "domain": "partner.test"}, {"id": company["id"]}]}, expect=201)
    detail = await api.ok("GET", f"/api/v1/tickets/{ticket['id']}")
    contacts = detail["contacts"]
    assert [c["primary"] for c in contacts] == [True, False, False]
    assert [c["email"] for c in contacts] == ["new@partner.test", "kim@client.test", None]
    assert contacts[0]["mobile_phone"] == "+1 555 0101" and contacts[2]["first_name"] == "Walk-in"
    assert [(c["name"], c["primary"]) for c in detail["companies"]] == [("Partner", True), ("Client", False)]
    # The new primary contact joins the primary company; the known contact keeps none of it.
    assert contacts[0]["company_id"] == detail["companies"][0]["id"] and contacts[1]["company_id"] is None
    assert ticket["contacts"] == contacts and ticket["companies"] == detail["companies"]
    for body, field in (({"contacts": [{"id": 999999}]}, "contact"), ({"companies": [{"id": 999999}]}, "company"),
                        ({"companies": [{"domain": "x.test"}]}, "companies.0"),  # the request schema names it
                        ({"companies": {"id": 1}}, "companies")):
        code, error = await api.post("/api/v1/tickets", {"name": "x", "pipeline": "support", "status": "new", **body})
        assert code == 422 and error["error"]["field"] == field, (body, error)


async def test_search_finds_a_ticket_by_any_associated_contact_or_company_as_they_are_now(api):
    kim = await api.ok("POST", "/api/v1/contacts", {"email": "kim@client.test", "first_name": "Kim"}, expect=201)
    lee = await api.ok("POST", "/api/v1/contacts", {"email": "lee@client.test", "first_name": "Leopold"}, expect=201)
    firm = await api.ok("POST", "/api/v1/companies", {"name": "Quuxworks"}, expect=201)
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "Broken", "pipeline": "support", "status": "new",
                                                      "contact": {"id": kim["id"]}}, expect=201)
    base = f"/api/v1/tickets/{ticket['id']}"

    async def found(text: str) -> list[int]:
        return [t["id"] for t in (await api.ok("GET", f"/api/v1/tickets?q={text}"))["tickets"]]

    assert await found("Leopold") == [] and await found("Quuxworks") == []
    await api.ok("PUT", f"{base}/contacts/{lee['id']}")  # not the primary contact
    await api.ok("PUT", f"{base}/companies/{firm['id']}")
    assert await found("Leopold") == [ticket["id"]] and await found("Quuxworks") == [ticket["id"]]
    # An edit of the contact or the company is what search sees next.
    await api.ok("PATCH", f"/api/v1/contacts/{lee['id']}", {"first_name": "Ludmila"})
    await api.ok("PATCH", f"/api/v1/companies/{firm['id']}", {"name": "Zyxcorp"})
    assert await found("Leopold") == [] and await found("Ludmila") == [ticket["id"]]
    assert await found("Quuxworks") == [] and await found("Zyxcorp") == [ticket["id"]]
    await api.ok("DELETE", f"{base}/contacts/{lee['id']}")
    assert await found("Ludmila") == []
