"""Automation settings: triggers, channels, action chains (add, edit, delete, clone, move), templates."""

from admin_client import make_user, status_named, support_pipeline


async def test_trigger_must_target_a_status_of_its_pipeline(api):
    support = await support_pipeline(api)
    other = await api.ok("POST", "/api/v1/pipelines", {"name": "Other"}, expect=201)
    code, body = await api.patch(f"/api/v1/pipelines/{support['id']}/automation",
                                 {"customer_replied": {"status_id": other["statuses"][0]["id"]}})
    assert code == 422 and body["error"]["code"] == "trigger_status_outside_pipeline"
    code, body = await api.patch(f"/api/v1/pipelines/{support['id']}/automation", {"action_sources": ["fax"]})
    assert code == 422 and body["error"]["code"] == "action_sources_invalid"
    new = status_named(support, "new")
    result = await api.ok("PATCH", f"/api/v1/pipelines/{support['id']}/automation",
                          {"customer_replied": {"status_id": new["id"], "enabled": False},
                           "action_sources": ["messenger", "chat"]})
    assert result["customer_replied"] == {"enabled": False, "status_id": new["id"]}
    assert result["action_sources"] == ["chat", "messenger"]


async def test_connected_channels_and_ticket_creation_switch(api):
    support = await support_pipeline(api)
    channels = (await api.ok("GET", f"/api/v1/pipelines/{support['id']}/channels"))["channels"]
    assert {c["key"] for c in channels} == {"support@acme.test", "billing@acme.test"}
    billing = next(c for c in channels if c["key"] == "billing@acme.test")
    switched = await api.ok("PATCH", f"/api/v1/channels/{billing['id']}", {"create_tickets": False})
    assert switched["create_tickets"] is False
    chat = await api.ok("POST", "/api/v1/channels", {"kind": "chat", "key": "website", "pipeline_id": support["id"]},
                        expect=201)
    assert chat["create_tickets"] is True
    code, body = await api.post("/api/v1/channels", {"kind": "chat", "key": "website", "pipeline_id": support["id"]})
    assert code == 409 and body["error"]["code"] == "channel_exists"


async def test_action_chain_operations(api):
    support = await support_pipeline(api)
    closed = status_named(support, "closed")
    new = status_named(support, "new")
    base = f"/api/v1/statuses/{closed['id']}/actions"
    chain = (await api.ok("GET", base))["actions"]
    assert [(a["kind"], a["template_key"]) for a in chain] == [("send_email", "ticket_closed"), ("notify", None)]
    user_id, _ = await make_user(api, "lead@acme.test")
    added = await api.ok("POST", base, {"kind": "notify", "recipient": {"kind": "user", "id": user_id},
                                        "comment": "Tell the lead"}, expect=201)
    assert added["position"] == 2 and added["comment"] == "Tell the lead"
    code, body = await api.post(base, {"kind": "notify", "recipient": {"kind": "user", "id": 999999}})
    assert code == 422 and body["error"]["code"] == "action_recipient_invalid"
    code, body = await api.post(base, {"kind": "send_email", "template_key": "nope"})
    assert code == 422 and body["error"]["code"] == "unknown_template"
    edited = await api.ok("PATCH", f"/api/v1/actions/{added['id']}", {"comment": "Tell the lead, kindly"})
    assert edited["comment"] == "Tell the lead, kindly" and edited["recipient"] == {"kind": "user", "id": user_id}
    clone = await api.ok("POST", f"/api/v1/actions/{chain[0]['id']}/clone", {}, expect=201)
    assert clone["position"] == 1 and clone["template_key"] == "ticket_closed"
    moved = await api.ok("POST", f"/api/v1/actions/{clone['id']}/move", {"status_id": new["id"], "position": 0})
    assert moved["status_id"] == new["id"] and moved["position"] == 0
    assert [a["template_key"] for a in (await api.ok("GET", f"/api/v1/statuses/{new['id']}/actions"))["actions"]] \
        == ["ticket_closed", "ticket_received"]
    assert [a["id"] for a in (await api.ok("GET", base))["actions"]] == [chain[0]["id"], chain[1]["id"], added["id"]]
    result = await api.ok("DELETE", f"/api/v1/actions/{chain[1]['id']}", params={"scope": "this_and_after"})
    assert result["deleted"] == [chain[1]["id"], added["id"]]
    assert [a["id"] for a in result["actions"]] == [chain[0]["id"]]
    result = await api.ok("DELETE", f"/api/v1/actions/{chain[0]['id']}")
    assert result["actions"] == []


async def test_templates_edit_create_and_preview(api):
    templates = {t["key"]: t for t in (await api.ok("GET", "/api/v1/templates"))["templates"]}
    assert templates["ticket_received"]["default"] and templates["ticket_closed"]["transactional"]
    edited = await api.ok("PATCH", "/api/v1/templates/ticket_received",
                          {"subject": "Got it: {{ ticket.name }}", "transactional": False})
    assert edited["subject"] == "Got it: {{ ticket.name }}" and edited["transactional"] is False
    code, body = await api.patch("/api/v1/templates/ticket_received", {"body_text": "{% if %}"})
    assert code == 422 and body["error"]["code"] == "template_syntax_error"
    code, body = await api.delete("/api/v1/templates/ticket_closed")
    assert code == 409 and body["error"]["code"] == "default_template"
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "Login <broken>", "pipeline": "support",
                                                      "status": "new", "contact": {"email": "ann@x.test",
                                                                                   "first_name": "Ann"}}, expect=201)
    preview = await api.ok("POST", "/api/v1/templates/ticket_received/preview", {"ticket_id": ticket["id"]})
    assert preview["subject"] == "Got it: Login <broken>"
    assert "Hello Ann" in preview["text"] and "&lt;" not in preview["text"]
    unsaved = await api.ok("POST", "/api/v1/templates/ticket_received/preview",
                           {"ticket_id": ticket["id"], "body_html": "<p>{{ ticket.name }}</p>"})
    assert unsaved["html"] == "<p>Login &lt;broken&gt;</p>"
    # The sandbox keeps templates away from Python internals.
    code, body = await api.post("/api/v1/templates/ticket_received/preview",
                                {"ticket_id": ticket["id"], "body_text": "{{ ''.__class__.__mro__ }}"})
    assert code == 422 and body["error"]["code"] == "template_render_error"
