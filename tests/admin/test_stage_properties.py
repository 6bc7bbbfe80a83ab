"""Conditional stage properties: read-only ones refused; required ones enforced on create, move and bulk move."""

from sqlalchemy import select

from admin_client import make_user, status_named, support_pipeline
from frontdesk.model import Ticket


async def _setup(api):
    support = await support_pipeline(api)
    await api.ok("POST", "/api/v1/properties", {"name": "resolution", "label": "Resolution", "type": "enumeration",
                                                 "options": ["fixed", "wont_fix", "duplicate"]}, expect=201)
    closed = status_named(support, "closed")
    await api.ok("PUT", f"/api/v1/statuses/{closed['id']}/properties",
                 {"properties": [{"property": "priority"}, {"property": "resolution", "required": True}]})
    return support, closed


async def test_read_only_and_calculated_properties_cannot_be_stage_properties(api):
    support = await support_pipeline(api)
    new = status_named(support, "new")
    registry = {p["name"]: p for p in (await api.ok("GET", "/api/v1/properties"))["properties"]}
    assert registry["created_at"]["read_only"] and registry["created_at"]["calculated"]
    assert registry["source"]["read_only"] and not registry["priority"]["read_only"]
    for name in ("created_at", "closed_at", "message_count", "source"):
        code, body = await api.put(f"/api/v1/statuses/{new['id']}/properties", {"properties": [{"property": name}]})
        assert code == 422 and body["error"]["code"] == "stage_property_read_only" and body["error"]["property"] == name
    await api.ok("POST", "/api/v1/properties", {"name": "score", "type": "number", "calculated": True}, expect=201)
    code, body = await api.put(f"/api/v1/statuses/{new['id']}/properties", {"properties": ["score"]})
    assert code == 422 and body["error"]["code"] == "stage_property_read_only"
    code, body = await api.put(f"/api/v1/statuses/{new['id']}/properties", {"properties": ["no_such_thing"]})
    assert code == 422 and body["error"]["code"] == "unknown_property"
    assert (await api.ok("GET", f"/api/v1/statuses/{new['id']}/properties"))["properties"] == []


async def test_stage_properties_are_ordered(api):
    support, closed = await _setup(api)
    listed = await api.ok("GET", f"/api/v1/statuses/{closed['id']}/properties")
    assert listed["properties"] == [{"property": "priority", "required": False},
                                    {"property": "resolution", "required": True}]


async def test_required_property_on_create(api):
    support, closed = await _setup(api)
    body = {"name": "Done already", "pipeline": "support", "status": "closed"}
    code, error = await api.post("/api/v1/tickets", body)
    assert code == 422 and error["error"]["code"] == "required_properties_missing"
    assert error["error"]["missing"] == ["resolution"]
    code, error = await api.post("/api/v1/tickets", {**body, "properties": {"resolution": "maybe"}})
    assert code == 422 and error["error"]["code"] == "property_value_invalid"
    created = await api.ok("POST", "/api/v1/tickets", {**body, "properties": {"resolution": "fixed"}}, expect=201)
    assert created["custom_properties"] == {"resolution": "fixed"} and created["closed_at"]


async def test_required_property_on_move(api):
    support, closed = await _setup(api)
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "T", "pipeline": "support", "status": "new"},
                          expect=201)
    code, error = await api.patch(f"/api/v1/tickets/{ticket['id']}", {"status": "closed"})
    assert code == 422 and error["error"]["code"] == "required_properties_missing"
    assert error["error"]["missing"] == ["resolution"]


async def test_required_property_on_bulk_move_is_all_or_nothing(api, sessions):
    support, closed = await _setup(api)
    new = status_named(support, "new")
    ok = await api.ok("POST", "/api/v1/tickets", {"name": "Has it", "pipeline": "support", "status": "new",
                                                  "properties": {"resolution": "fixed"}}, expect=201)
    lacking = await api.ok("POST", "/api/v1/tickets", {"name": "Lacks it", "pipeline": "support",
                                                       "status": "new"}, expect=201)
    code, error = await api.post("/api/v1/tickets/bulk-move",
                                 {"ticket_ids": [ok["id"], lacking["id"]], "status_id": closed["id"]})
    assert code == 422 and error["error"]["code"] == "required_properties_missing"
    assert error["error"]["ticket_id"] == lacking["id"] and error["error"]["missing"] == ["resolution"]
    async with sessions() as session:
        assert set((await session.scalars(select(Ticket.status_id))).all()) == {new["id"]}
    code, error = await api.post("/api/v1/tickets/bulk-move", {"from_status_id": new["id"], "status_id": closed["id"]})
    assert code == 422 and error["error"]["code"] == "required_properties_missing"
    moved = await api.ok("POST", "/api/v1/tickets/bulk-move", {"ticket_ids": [ok["id"]], "status_id": closed["id"]})
    assert moved["moved"] == [ok["id"]]


async def test_automation_moves_are_exempt(sessions):
    from frontdesk.tickets.stage_properties import check_required_properties
    from frontdesk.model import PropertyDefinition, StageProperty, Status

    async with sessions.begin() as session:
        closed = await session.scalar(select(Status).where(Status.internal_name == "closed"))
        session.add(PropertyDefinition(name="resolution", label="Resolution", type="string", options=[]))
        session.add(StageProperty(status_id=closed.id, property_name="resolution", required=True))
        await session.flush()
        await check_required_properties(session, {"name": "x"}, closed.id, actor_kind="automation")


async def test_stage_properties_need_the_permission(api):
    support = await support_pipeline(api)
    _, agent = await make_user(api, "agent@acme.test")
    code, body = await api.put(f"/api/v1/statuses/{support['statuses'][0]['id']}/properties",
                               {"properties": []}, token=agent)
    assert code == 403 and body["error"]["code"] == "edit_property_settings_required"


async def test_required_property_when_a_deleted_status_moves_its_tickets(api):
    support, closed = await _setup(api)
    await api.ok("POST", f"/api/v1/pipelines/{support['id']}/statuses", {"label": "Cancelled", "state": "closed"},
                 expect=201)
    cancelled = status_named(await support_pipeline(api), "cancelled")
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "T", "pipeline": "support", "status": "cancelled"},
                          expect=201)
    code, error = await api.delete(f"/api/v1/pipelines/{support['id']}/statuses/{cancelled['id']}",
                                   params={"target_status_id": closed["id"]})
    assert code == 422 and error["error"]["code"] == "required_properties_missing"
    assert error["error"]["ticket_id"] == ticket["id"]
    assert status_named(await support_pipeline(api), "cancelled")  # still there
