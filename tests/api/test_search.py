"""The search box on both databases: each searchable field, partial and case-insensitive, phone formats, non-ASCII, bodies."""

from __future__ import annotations

from api_harness import OPERATOR, create_user_token
from frontdesk.events import Actor
from frontdesk.model import Company, Contact, Message, Status
from frontdesk.tickets.creation import create_ticket
from frontdesk.tickets.search_index import refresh_ticket_index
from sqlalchemy import select


async def _seed(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        new = await session.scalar(select(Status).where(Status.internal_name == "new"))
        acme = Company(name="Société Générale Ümlaut")
        session.add(acme)
        await session.flush()
        zoe = Contact(first_name="Zoë", last_name="Ångström", email="zoe.angstrom@example.org",
                      phone="+1 (555) 010-2030", mobile="07700 900123", company_id=acme.id)
        bob = Contact(first_name="Bob", last_name="Smith", email="bob@builder.test")
        session.add_all([zoe, bob])
        await session.flush()
        ids = {}
        for key, contact, company, name, description in (
            ("zoe", zoe, acme.id, "Invoice question", "Charged twice in March"),
            ("bob", bob, None, "Printer on fire", None),
        ):
            ticket = await create_ticket(session, actor=Actor.agent(None), status=new, source="api", name=name,
                                         description=description, contact_id=contact.id, company_id=company)
            ids[key] = ticket.id
        session.add(Message(ticket_id=ids["bob"], direction="inbound", channel="email",
                            text_body="The flux capacitor smells of burnt toast"))
        await refresh_ticket_index(session, ids["bob"])
    return ids


async def _found(client, q: str, headers=OPERATOR) -> set[int]:  # type: ignore[no-untyped-def]
    async with client.get("/api/v1/tickets", headers=headers, params={"q": q}) as response:
        assert response.status == 200, await response.text()
        return {t["id"] for t in (await response.json())["tickets"]}


async def test_each_searchable_field(client, sessions) -> None:  # type: ignore[no-untyped-def]
    ids = await _seed(sessions)
    zoe, bob = {ids["zoe"]}, {ids["bob"]}
    for q in ("invoice", "INVOICE QUE", "voic",  # ticket name, partial, any case
              "charged twice", "march",  # description words
              "zoë", "ZOË", "ångström", "ÅNGSTRÖM", "ngstr",  # non-ASCII names, partial
              "zoe.angstrom@example", "EXAMPLE.ORG",  # email
              "société", "générale", "ümlaut",  # company name
              "555-010-2030", "(555) 0102030", "+15550102030", "010 2030", "07700900123", "900-123"):  # phones
        assert await _found(client, q) == zoe, q
    for q in ("capacitor", "Burnt Toast", "printer", "bob@builder", "smith"):
        assert await _found(client, q) == bob, q
    assert await _found(client, str(ids["bob"])) >= bob  # the ticket id
    assert await _found(client, "no such words anywhere") == set()
    assert await _found(client, "%") == set() and await _found(client, '"') == set()


async def test_search_respects_access(client, sessions) -> None:  # type: ignore[no-untyped-def]
    await _seed(sessions)
    _, owned_only = await create_user_token(sessions, email="own@acme.test", ticket_access="owned")
    assert await _found(client, "invoice", owned_only) == set()


async def test_text_no_database_can_hold_is_harmless(client, sessions) -> None:  # type: ignore[no-untyped-def]
    ids = await _seed(sessions)
    # A NUL never reaches the database (PostgreSQL refuses it): 400 naming the parameter, on every endpoint.
    for name, value in (("q", "zo\x00ë"), ("filter", "name:contains:a\x00")):
        async with client.get("/api/v1/tickets", headers=OPERATOR, params={name: value}) as response:
            assert response.status == 400 and (await response.json())["error"]["parameter"] == name
    assert await _found(client, "zoë") == {ids["zoe"]}


async def test_search_results_page_with_their_total(client, sessions) -> None:  # type: ignore[no-untyped-def]
    """A search is counted in the pass that pages it: every page, and a page past the end, has the same total."""
    ids = await _seed(sessions)
    async with sessions.begin() as session:
        new = await session.scalar(select(Status).where(Status.internal_name == "new"))
        zoe = await session.scalar(select(Contact).where(Contact.first_name == "Zoë"))
        for n in (2, 3):  # three tickets of Zoë's in all, one of Bob's
            await create_ticket(session, actor=Actor.agent(None), status=new, source="api",
                                name=f"Invoice question {n}", contact_id=zoe.id)

    async def page(**params):  # type: ignore[no-untyped-def]
        async with client.get("/api/v1/tickets", headers=OPERATOR, params={"q": "zoë", "limit": "2", **params}) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    first = await page()
    second = await page(cursor=first["next_cursor"])
    assert first["total"] == second["total"] == 3
    assert len(first["tickets"]) == 2 and len(second["tickets"]) == 1 and second["next_cursor"] is None
    found = [t["id"] for t in first["tickets"] + second["tickets"]]
    assert len(set(found)) == 3 and ids["zoe"] in found and ids["bob"] not in found
    assert all(t["contact"]["first_name"] == "Zoë" for t in first["tickets"] + second["tickets"])
    beyond = await page(page="3")
    assert beyond["tickets"] == [] and beyond["total"] == 3
    assert (await page(q="no such words anywhere"))["total"] == 0
