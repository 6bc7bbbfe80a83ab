"""Every pipeline and status invariant is refused with an error that names the rule."""

from dataclasses import replace

import aiohttp
from sqlalchemy import func, select

from admin_client import Api, make_user, status_named, support_pipeline
from admin_client import serve
from frontdesk.model import AuditEntry, OutboxEvent, Ticket


async def _ticket(api: Api, pipeline_id: int, status_id: int, **extra) -> int:
    body = await api.ok("POST", "/api/v1/tickets", {"name": "Printer on fire", "pipeline_id": pipeline_id,
                                                    "status_id": status_id, **extra}, expect=201)
    return body["id"]


async def test_new_pipeline_gets_generated_internal_names_and_both_states(api):
    created = await api.ok("POST", "/api/v1/pipelines", {"name": "On-site service"}, expect=201)
    assert created["internal_name"] == "on_site_service"
    assert [(s["label"], s["state"]) for s in created["statuses"]] == [("New", "open"), ("Closed", "closed")]
    again = await api.ok("POST", "/api/v1/pipelines", {"name": "On-site service"}, expect=201)
    assert again["internal_name"] == "on_site_service_2"


async def test_pipeline_needs_an_open_and_a_closed_status_from_the_start(api):
    status, body = await api.post("/api/v1/pipelines", {"name": "Only open",
                                                        "statuses": [{"label": "A", "state": "open"}]})
    assert status == 409 and body["error"]["code"] == "pipeline_needs_open_and_closed_status"
    names = [p["name"] for p in (await api.ok("GET", "/api/v1/pipelines"))["pipelines"]]
    assert "Only open" not in names  # nothing half-made is left behind


async def test_last_open_and_last_closed_status_are_protected(api):
    pipeline = await api.ok("POST", "/api/v1/pipelines", {"name": "Two"}, expect=201)
    new, closed = pipeline["statuses"]
    base = f"/api/v1/pipelines/{pipeline['id']}/statuses"
    for status_id in (new["id"], closed["id"]):
        code, body = await api.delete(f"{base}/{status_id}")
        assert code == 409 and body["error"]["code"] == "pipeline_needs_open_and_closed_status"
    code, body = await api.patch(f"{base}/{closed['id']}", {"state": "open"})
    assert code == 409 and body["error"]["code"] == "pipeline_needs_open_and_closed_status"
    code, body = await api.patch(f"{base}/{new['id']}", {"state": "closed"})
    assert code == 409 and body["error"]["code"] == "pipeline_needs_open_and_closed_status"
    # With a second closed status, the first may go.
    await api.ok("POST", base, {"label": "Cancelled", "state": "closed"}, expect=201)
    await api.ok("DELETE", f"{base}/{closed['id']}")
    after = await api.ok("GET", f"/api/v1/pipelines/{pipeline['id']}")
    assert [(s["internal_name"], s["state"]) for s in after["statuses"]] == [("new", "open"), ("cancelled", "closed")]


async def test_internal_name_is_stable_and_unique(api):
    support = await support_pipeline(api)
    base = f"/api/v1/pipelines/{support['id']}/statuses"
    waiting = status_named(support, "waiting_on_us")
    renamed = await api.ok("PATCH", f"{base}/{waiting['id']}", {"label": "With the support team"})
    assert renamed["label"] == "With the support team" and renamed["internal_name"] == "waiting_on_us"
    code, body = await api.patch(f"{base}/{waiting['id']}", {"internal_name": "other"})
    assert code == 422 and body["error"]["code"] == "internal_name_immutable"
    first = await api.ok("POST", base, {"label": "Escalated", "state": "open"}, expect=201)
    second = await api.ok("POST", base, {"label": "Escalated", "state": "open"}, expect=201)
    assert (first["internal_name"], second["internal_name"]) == ("escalated", "escalated_2")
    # A new status labelled like an old label does not steal its internal name.
    third = await api.ok("POST", base, {"label": "Waiting on us", "state": "open"}, expect=201)
    assert third["internal_name"] == "waiting_on_us_2"
    code, body = await api.post(base, {"label": "X", "state": "open", "internal_name": "new"})
    assert code == 409 and body["error"]["code"] == "internal_name_taken"


async def test_reorder_statuses_and_pipelines(api):
    support = await support_pipeline(api)
    ids = [s["id"] for s in support["statuses"]]
    reordered = await api.ok("POST", f"/api/v1/pipelines/{support['id']}/statuses/reorder",
                             {"order": list(reversed(ids))})
    assert [s["internal_name"] for s in reordered["statuses"]] == ["closed", "waiting_on_us",
                                                                   "waiting_on_contact", "new"]
    code, body = await api.post(f"/api/v1/pipelines/{support['id']}/statuses/reorder", {"order": ids[:2]})
    assert code == 422 and body["error"]["code"] == "order_incomplete"
    other = await api.ok("POST", "/api/v1/pipelines", {"name": "Second"}, expect=201)
    await api.ok("POST", "/api/v1/pipelines/reorder", {"order": [other["id"], support["id"]]})
    listed = (await api.ok("GET", "/api/v1/pipelines"))["pipelines"]
    assert [p["internal_name"] for p in listed] == ["second", "support"]


async def test_deleting_a_pipeline_with_tickets_is_refused_with_the_count(api):
    pipeline = await api.ok("POST", "/api/v1/pipelines", {"name": "Busy"}, expect=201)
    for _ in range(2):
        await _ticket(api, pipeline["id"], pipeline["statuses"][0]["id"])
    code, body = await api.delete(f"/api/v1/pipelines/{pipeline['id']}")
    assert code == 409 and body["error"]["code"] == "pipeline_has_tickets" and body["error"]["ticket_count"] == 2
    empty = await api.ok("POST", "/api/v1/pipelines", {"name": "Empty"}, expect=201)
    code, _ = await api.delete(f"/api/v1/pipelines/{empty['id']}")
    assert code == 204
    assert (await api.get(f"/api/v1/pipelines/{empty['id']}"))[0] == 404


async def test_deleting_a_status_with_tickets_needs_a_target_and_moves_them_with_events(api, sessions):
    support = await support_pipeline(api)
    base = f"/api/v1/pipelines/{support['id']}/statuses"
    doomed = status_named(support, "waiting_on_us")
    target = status_named(support, "new")
    tickets = [await _ticket(api, support["id"], doomed["id"]) for _ in range(3)]
    code, body = await api.delete(f"{base}/{doomed['id']}")
    assert code == 409 and body["error"]["code"] == "status_has_tickets" and body["error"]["ticket_count"] == 3
    result = await api.ok("DELETE", f"{base}/{doomed['id']}", params={"target_status_id": target["id"]})
    assert result["tickets_moved"] == 3
    async with sessions() as session:
        statuses = set((await session.scalars(select(Ticket.status_id).where(Ticket.id.in_(tickets)))).all())
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "ticket.status_changed"))).all()
    assert statuses == {target["id"]}
    moved = {e.ticket_id: e.body["payload"] for e in events}
    assert set(moved) == set(tickets)
    assert all(p["from_status"] == "waiting_on_us" and p["to_status"] == "new" for p in moved.values())


async def test_pipeline_cap(settings, sessions, blobs):
    capped = replace(settings, max_pipelines=2)
    async for base in serve(capped, sessions, blobs):
        async with aiohttp.ClientSession() as http:
            api = Api(http, base)
            await api.ok("POST", "/api/v1/pipelines", {"name": "Second"}, expect=201)
            code, body = await api.post("/api/v1/pipelines", {"name": "Third"})
    assert code == 409 and body["error"]["code"] == "pipeline_limit_reached" and body["error"]["limit"] == 2


async def test_changes_are_audited_and_only_super_admins_read_the_log(api, sessions):
    support = await support_pipeline(api)
    status = status_named(support, "new")
    await api.ok("PATCH", f"/api/v1/pipelines/{support['id']}/statuses/{status['id']}", {"label": "Fresh"})
    entries = (await api.ok("GET", "/api/v1/audit", params={"entity": "status"}))["entries"]
    entry = entries[0]
    assert entry["action"] == "status.updated" and entry["actor"] == "operator token"
    assert entry["before"]["label"] == "New" and entry["after"]["label"] == "Fresh"
    _, admin = await make_user(api, "admin@acme.test", role="admin")
    code, body = await api.get("/api/v1/audit", token=admin)
    assert code == 403 and body["error"]["code"] == "super_admin_required"
    # A refused change leaves no audit entry: it shares the change's transaction.
    async with sessions() as session:
        before = await session.scalar(select(func.count()).select_from(AuditEntry))
    await api.delete(f"/api/v1/pipelines/{support['id']}/statuses/{status_named(support, 'closed')['id']}")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == before


async def test_permissions_on_admin_endpoints(api):
    support = await support_pipeline(api)
    _, admin = await make_user(api, "admin@acme.test", role="admin")
    _, agent = await make_user(api, "agent@acme.test")
    code, body = await api.post("/api/v1/users", {"name": "x", "email": "x@acme.test"}, token=admin)
    assert code == 403 and body["error"]["code"] == "super_admin_required"
    await api.ok("POST", f"/api/v1/pipelines/{support['id']}/statuses", {"label": "Escalated", "state": "open"},
                 token=admin, expect=201)
    code, body = await api.post(f"/api/v1/pipelines/{support['id']}/statuses", {"label": "E", "state": "open"},
                                token=agent)
    assert code == 403 and body["error"]["code"] == "edit_property_settings_required"
    code, body = await api.get("/api/v1/pipelines", token="")
    assert code == 401 and body["error"]["code"] == "unauthenticated"
    code, _ = await api.get("/api/v1/pipelines", token="not-a-token")
    assert code == 401


async def test_reorder_pipelines_with_restricted_access_sees_only_visible_ones(api):
    """An admin who sees some pipelines reorders those; hidden ones are neither revealed nor moved."""
    support = await support_pipeline(api)
    team = await api.ok("POST", "/api/v1/teams", {"name": "Desk"}, expect=201)
    admin_id, admin = await make_user(api, "ada@acme.test", role="admin", primary_team_id=team["id"])
    hidden = await api.ok("POST", "/api/v1/pipelines", {"name": "Hidden"}, expect=201)
    mine = await api.ok("POST", "/api/v1/pipelines", {"name": "Mine"}, expect=201)
    await api.ok("PUT", f"/api/v1/pipelines/{mine['id']}/access", {"user_ids": [admin_id]})
    outsider = await api.ok("POST", "/api/v1/teams", {"name": "Elsewhere"}, expect=201)
    await api.ok("PUT", f"/api/v1/pipelines/{hidden['id']}/access", {"team_ids": [outsider["id"]]})
    seen = [p["id"] for p in (await api.ok("GET", "/api/v1/pipelines", token=admin))["pipelines"]]
    assert seen == [support["id"], mine["id"]]
    # Only what the admin sees: accepted, and the hidden pipeline keeps its slot between them.
    await api.ok("POST", "/api/v1/pipelines/reorder", {"order": [mine["id"], support["id"]]}, token=admin)
    listed = [p["internal_name"] for p in (await api.ok("GET", "/api/v1/pipelines"))["pipelines"]]
    assert listed == ["mine", "hidden", "support"]
    # A hidden id is refused as if it did not exist; nothing moves.
    code, body = await api.post("/api/v1/pipelines/reorder", {"order": [hidden["id"], support["id"], mine["id"]]},
                                token=admin)
    assert code == 404 and body["error"]["code"] == "not_found"
    code, body = await api.post("/api/v1/pipelines/reorder", {"order": [support["id"]]}, token=admin)
    assert code == 422 and body["error"]["code"] == "order_incomplete"
    assert [p["internal_name"] for p in (await api.ok("GET", "/api/v1/pipelines"))["pipelines"]] == listed
