"""Snippets through the API: shared and private scopes, who writes them, shortcut rules, and config export/apply."""

from __future__ import annotations

from admin_client import make_user
from frontdesk.runtime.config import apply_config, export_config

GREETING = "Hi {{ contact.first_name }}, about {{ ticket.name }}."


async def test_snippet_scopes_and_rules(api, sessions, settings):  # type: ignore[no-untyped-def]
    _, admin = await make_user(api, "boss@acme.test", role="admin")
    ann_id, ann = await make_user(api, "ann@acme.test")
    _, bo = await make_user(api, "bo@acme.test")

    shared = await api.ok("POST", "/api/v1/snippets", {"name": "Greeting", "shortcut": "greet", "body": GREETING,
                                                      "shared": True}, token=admin, expect=201)
    assert shared["shared"] is True and shared["owner_user_id"] is None
    # A private snippet may reuse a shared shortcut; within one scope a shortcut is unique.
    mine = await api.ok("POST", "/api/v1/snippets", {"name": "My greeting", "shortcut": "greet", "body": "Yo"},
                        token=ann, expect=201)
    assert (mine["shared"], mine["owner_user_id"]) == (False, ann_id)
    status, body = await api.post("/api/v1/snippets", {"name": "Again", "shortcut": "greet", "body": "x"}, token=ann)
    assert (status, body["error"]["code"]) == (409, "snippet_shortcut_taken")

    for payload, code in (({"name": "n", "shortcut": "Has Space", "body": "x"}, "snippet_shortcut_invalid"),
                          ({"name": "n", "shortcut": "broken", "body": "{{ ticket.name "}, "template_syntax_error"),
                          ({"shortcut": "noname", "body": "x"}, "field_required")):
        status, body = await api.post("/api/v1/snippets", payload, token=ann)
        assert (status, body["error"]["code"]) == (422, code), payload
    # Shared snippets are for admins to write.
    status, body = await api.post("/api/v1/snippets", {"name": "n", "shortcut": "x", "body": "x", "shared": True},
                                  token=ann)
    assert (status, body["error"]["code"]) == (403, "shared_snippet_admin_only")
    status, body = await api.patch(f"/api/v1/snippets/{shared['id']}", {"body": "changed"}, token=ann)
    assert status == 403

    # Bo sees the shared snippet, not Ann's private one, which does not exist for him.
    listed = await api.ok("GET", "/api/v1/snippets", token=bo)
    assert [s["id"] for s in listed["snippets"]] == [shared["id"]]
    assert {s["id"] for s in (await api.ok("GET", "/api/v1/snippets", token=ann))["snippets"]} == {shared["id"], mine["id"]}
    for method in ("GET", "PATCH", "DELETE"):
        status, _ = await api.call(method, f"/api/v1/snippets/{mine['id']}", {"body": "x"}, token=bo)
        assert status == 404, method

    edited = await api.ok("PATCH", f"/api/v1/snippets/{mine['id']}", {"shortcut": "hello"}, token=ann)
    assert edited["shortcut"] == "hello" and edited["body"] == "Yo"

    # Config: shared snippets only, by shortcut; applying a changed file leaves private snippets alone.
    async with sessions() as session:
        doc = await export_config(session)
    assert doc["snippets"] == [{"shortcut": "greet", "name": "Greeting", "body": GREETING}]
    doc["snippets"] = [{"shortcut": "bye", "name": "Goodbye", "body": "Bye {{ contact.first_name }}"}]
    result = await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)
    assert result.changed and "shortcut: bye" in result.diff
    shortcuts = {(s["shortcut"], s["shared"]) for s in (await api.ok("GET", "/api/v1/snippets", token=ann))["snippets"]}
    assert shortcuts == {("bye", True), ("hello", False)}
    assert not (await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)).changed

    await api.ok("DELETE", f"/api/v1/snippets/{mine['id']}", token=ann, expect=204)
    assert [s["shortcut"] for s in (await api.ok("GET", "/api/v1/snippets", token=ann))["snippets"]] == ["bye"]
