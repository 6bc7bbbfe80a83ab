"""Manual ticket creation: what it requires, what it associates, and the event it emits."""

from sqlalchemy import select

from admin_client import support_pipeline
from frontdesk.model import Contact, OutboxEvent, TicketParticipant


async def test_name_pipeline_and_status_are_required(api):
    support = await support_pipeline(api)
    for body, field in (({"pipeline": "support", "status": "new"}, "name"),
                        ({"name": "x", "status": "new"}, "pipeline_id"),
                        ({"name": "x", "pipeline": "support"}, "status_id")):
        code, error = await api.post("/api/v1/tickets", body)
        assert code == 422 and error["error"]["code"] == "field_required" and error["error"]["field"] == field
    other = await api.ok("POST", "/api/v1/pipelines", {"name": "Other"}, expect=201)
    code, error = await api.post("/api/v1/tickets", {"name": "x", "pipeline_id": support["id"],
                                                     "status_id": other["statuses"][0]["id"]})
    assert code == 422 and error["error"]["code"] == "status_not_in_pipeline"
    code, error = await api.post("/api/v1/tickets", {"name": "x", "pipeline": "support", "status": "new",
                                                     "priority": "whenever"})
    assert code == 422 and error["error"]["code"] == "property_value_invalid" and error["error"]["property"] == "priority"
    code, error = await api.post("/api/v1/tickets", {"name": "x", "pipeline": "support", "status": "new",
                                                     "properties": {"created_at": "2020-01-01"}})
    assert code == 422 and error["error"]["code"] == "unknown_property"


async def test_existing_and_new_contacts_and_companies(api, sessions):
    first = await api.ok("POST", "/api/v1/tickets", {"name": "A", "pipeline": "support", "status": "new",
                                                     "contact": {"email": "kim@client.test", "first_name": "Kim"},
                                                     "company": {"name": "Client", "domain": "client.test"}},
                         expect=201)
    second = await api.ok("POST", "/api/v1/tickets", {
        "name": "B", "pipeline": "support", "status": "new", "company": {"id": first["companies"][0]["id"]},
        "contacts": [{"id": first["contact"]["id"]}, {"email": "lee@client.test"}, {"email": "KIM@client.test"}]},
        expect=201)
    # The answer has GET's shape: the main contact, every contact and company with its primary mark.
    assert second["contact"]["id"] == first["contact"]["id"]
    assert [(c["id"], c["primary"]) for c in second["companies"]] == [(first["companies"][0]["id"], True)]
    assert [c["email"] for c in second["contacts"]] == ["kim@client.test", "lee@client.test"]
    detail = await api.ok("GET", f"/api/v1/tickets/{second['id']}")
    assert {key: detail[key] for key in second} == second
    async with sessions() as session:
        assert await session.scalar(select(Contact.id).where(Contact.email == "lee@client.test")) is not None
        participants = set((await session.scalars(select(TicketParticipant.address)
                                                  .where(TicketParticipant.ticket_id == second["id"]))).all())
        event = await session.scalar(select(OutboxEvent).where(OutboxEvent.ticket_id == second["id"]))
    assert participants == {"kim@client.test", "lee@client.test"}
    assert event.type == "ticket.created" and event.body["actor"]["kind"] == "agent"
    assert event.body["payload"]["source"] == "manual"


async def test_header_fields_are_one_line(api, sessions):
    """A name or contact that reaches a mail header is refused with its field named (issue: hostile input)."""
    base = {"pipeline": "support", "status": "new"}
    cases = (({"name": "a\r\nBcc: x@evil.test"}, "name"),
             ({"name": "a", "contact": {"email": "kim@client.test\r\nBcc: x@evil.test"}}, "contact.email"),
             ({"name": "a", "contact": {"email": "Kim <kim@client.test>"}}, "contact.email"),
             ({"name": "a", "contact": {"email": "kim@new.test", "first_name": "Kim\rBcc: x@evil.test"}},
              "contact.first_name"))
    for body, field in cases:
        code, error = await api.post("/api/v1/tickets", {**base, **body})
        assert code == 422 and error["error"]["field"] == field, (body, error)
    async with sessions() as session:
        assert await session.scalar(select(Contact.id).where(Contact.email.like("kim@%"))) is None


async def test_references_of_the_wrong_type_are_named_not_a_crash(api):
    # Found by the API fuzzer: an object as the pipeline reached the database driver (500).
    for body, field in (({"name": "x", "pipeline": {}, "status": "new"}, "pipeline"),
                        ({"name": "x", "pipeline_id": {}, "status": "new"}, "pipeline_id"),
                        ({"name": "x", "pipeline": "support", "status": ["new"]}, "status"),
                        ({"name": "x", "pipeline_id": 2**40, "status": "new"}, "pipeline_id")):
        code, error = await api.post("/api/v1/tickets", body)
        assert code == 422 and error["error"]["field"] == field, (body, error)
