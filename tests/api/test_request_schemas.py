"""Request bodies are refused as the OpenAPI document says (api.request_body's schema gate), naming the field.

Each case is a class of input the document forbids and a handler used to
accept or silently ignore; ``negative_data_rejection`` in the schemathesis
run checks the same over generated bodies.
"""

from __future__ import annotations

import pytest

from api_harness import OPERATOR


async def _send(client, method: str, path: str, body) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    async with client.request(method, path, headers=OPERATOR, json=body) as response:
        return response.status, await response.json()


async def _first_status(client) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with client.get("/api/v1/pipelines", headers=OPERATOR) as response:
        pipeline = (await response.json())["pipelines"][0]
    return pipeline["id"], pipeline["statuses"][0]["id"]


@pytest.mark.parametrize(("body", "code", "detail"), [
    ({"name": "Tier 2", "colour": "red"}, "unknown_fields", {"fields": ["colour"]}),
    ({}, "field_required", {"field": "name"}),
    ({"name": "x" * 201}, "field_too_long", {"field": "name", "maximum": 200}),
    ({"name": "   "}, "field_invalid", {"field": "name"}),
    ({"name": 7}, "field_invalid", {"field": "name"}),
])
async def test_a_body_the_schema_forbids_is_422_naming_the_field(client, body, code, detail) -> None:  # type: ignore[no-untyped-def]
    status, answer = await _send(client, "POST", "/api/v1/teams", body)
    assert status == 422, answer
    assert answer["error"]["code"] == code and detail.items() <= answer["error"].items()


async def test_nested_fields_are_named_by_their_path(client) -> None:  # type: ignore[no-untyped-def]
    status, answer = await _send(client, "POST", "/api/v1/tickets", {
        "name": "Printer", "pipeline": "support", "status": "new", "contact": {"email": "a@b.test", "fax": "1"}})
    assert status == 422 and answer["error"]["code"] in ("unknown_fields", "field_invalid"), answer
    status, answer = await _send(client, "POST", "/api/v1/pipelines", {
        "name": "Sales", "statuses": [{"label": "Open", "state": "open"}, {"label": "Won", "state": "won"}]})
    assert status == 422 and answer["error"]["field"] == "statuses.1.state", answer
    assert answer["error"]["valid"] == ["open", "closed"]


async def test_a_rule_keeps_its_own_code_when_the_schema_refuses_first(client) -> None:  # type: ignore[no-untyped-def]
    status, answer = await _send(client, "POST", "/api/v1/tickets",
                                 {"name": "x", "pipeline": "support", "status": "new", "priority": "whenever"})
    assert status == 422 and answer["error"]["code"] == "property_value_invalid", answer
    assert answer["error"]["property"] == "priority"


async def test_an_action_refuses_the_fields_of_the_other_kind(client) -> None:  # type: ignore[no-untyped-def]
    _, status_id = await _first_status(client)
    base = f"/api/v1/statuses/{status_id}/actions"
    # A recipient on a send_email action used to be dropped without a word.
    status, answer = await _send(client, "POST", base, {"kind": "send_email", "template_key": "ticket_received",
                                                        "recipient": {"kind": "owner"}})
    assert status == 422 and answer["error"]["code"] == "unknown_fields" and answer["error"]["fields"] == ["recipient"]
    status, notify = await _send(client, "POST", base, {"kind": "notify", "recipient": {"kind": "owner"}})
    assert status == 201, notify
    # Without "kind" the schema cannot tell; the handler knows the action is a notify and refuses the template.
    status, answer = await _send(client, "PATCH", f"/api/v1/actions/{notify['id']}", {"template_key": "ticket_received"})
    assert status == 422 and answer["error"]["code"] == "action_field_mismatch", answer
    status, answer = await _send(client, "POST", base, {"kind": "notify", "recipient": {"kind": "user"}})
    assert status == 422 and answer["error"]["code"] == "action_recipient_invalid", answer


async def test_an_optional_body_still_reaches_the_handler(client) -> None:  # type: ignore[no-untyped-def]
    # The gate reads the body first; handlers that read an optional body must still see it.
    _, status_id = await _first_status(client)
    status, action = await _send(client, "POST", f"/api/v1/statuses/{status_id}/actions",
                                 {"kind": "notify", "recipient": {"kind": "owner"}})
    assert status == 201, action
    status, clone = await _send(client, "POST", f"/api/v1/actions/{action['id']}/clone", {"position": 0})
    assert status == 201 and clone["position"] == 0, clone


async def test_json_nested_too_deep_is_400_not_a_crash(client) -> None:  # type: ignore[no-untyped-def]
    deep = "[" * 100_000 + "]" * 100_000
    async with client.post("/api/v1/teams", headers={**OPERATOR, "Content-Type": "application/json"},
                           data=deep) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"


async def test_deleting_a_built_in_property_is_a_documented_422(client) -> None:  # type: ignore[no-untyped-def]
    # Found by the fuzzer: DELETE /properties/message_count answered a 422 the document did not list.
    async with client.delete("/api/v1/properties/message_count", headers=OPERATOR) as response:
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "built_in_property"
    async with client.get("/openapi.json") as response:
        operation = (await response.json())["paths"]["/api/v1/properties/{name}"]["delete"]
    assert "422" in operation["responses"]


async def test_a_channel_for_a_pipeline_that_is_not_there_is_a_documented_404(client) -> None:  # type: ignore[no-untyped-def]
    # Found by the fuzzer: an id in the body naming nothing is 404, which POST /channels did not list.
    status, answer = await _send(client, "POST", "/api/v1/channels",
                                 {"kind": "email", "key": "help@acme.test", "pipeline_id": 999_999})
    assert status == 404 and answer["error"]["code"] == "not_found", answer
    async with client.get("/openapi.json") as response:
        assert "404" in (await response.json())["paths"]["/api/v1/channels"]["post"]["responses"]


async def test_a_nul_character_is_refused_not_a_crash(client) -> None:  # type: ignore[no-untyped-def]
    # Found by the fuzzer on PostgreSQL, whose text cannot hold NUL: the driver failed (500).
    status, answer = await _send(client, "POST", "/api/v1/teams", {"name": "Tier\u00001"})
    assert status == 422 and answer["error"] == {**answer["error"], "code": "field_invalid", "field": "name"}
    status, answer = await _send(client, "POST", "/api/v1/pipelines",
                                 {"name": "Sales", "statuses": [{"label": "x\u0000", "state": "open"}]})
    assert status == 422 and answer["error"]["field"] == "statuses.0.label", answer
    for path, parameter in (("/api/v1/tickets?q=print%00er", "q"), ("/api/v1/audit?action=a%00", "action")):
        async with client.get(path, headers=OPERATOR) as response:
            assert response.status == 400, await response.text()
            error = (await response.json())["error"]
        assert error["code"] == "invalid_parameter" and error["parameter"] == parameter
