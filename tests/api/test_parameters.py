"""Integer path and query parameters: ASCII digits only, bounded, never a 500 (found by the schema fuzzer)."""

from __future__ import annotations

import pytest

from api_harness import OPERATOR

HUGE = "1" * 30  # overflowed the database driver into a 500
SUPERSCRIPT_TWO = "%C2%B2"  # "²": str.isdigit() said yes, int() said no


@pytest.mark.parametrize("path", [
    f"/api/v1/tickets/{HUGE}",
    f"/api/v1/tickets/{2**63}",
    f"/api/v1/tickets/{2**31}",  # beyond PostgreSQL's integer ids: asyncpg refused it with a 500
    f"/api/v1/attachments/{2**39 + 1}",
    f"/api/v1/messages/{HUGE}/raw",
    f"/api/v1/attachments/{HUGE}",
    f"/api/v1/pipelines/{HUGE}",
    f"/api/v1/pipelines/{SUPERSCRIPT_TWO}",
    f"/api/v1/users/{HUGE}/tokens",
    f"/api/v1/statuses/{HUGE}/properties",
    f"/api/v1/pipelines/{HUGE}/automation",
])
async def test_a_path_id_that_cannot_exist_is_not_found(client, path: str) -> None:  # type: ignore[no-untyped-def]
    async with client.get(path, headers=OPERATOR) as response:
        assert response.status == 404, await response.text()
        assert (await response.json())["error"]["code"] == "not_found"


async def test_writes_to_a_huge_path_id_are_not_found(client) -> None:  # type: ignore[no-untyped-def]
    for method, path, body in (("PATCH", f"/api/v1/tickets/{HUGE}", {"name": "x"}),
                               ("POST", f"/api/v1/tickets/{HUGE}/replies", {"text": "x"}),
                               ("PATCH", f"/api/v1/teams/{HUGE}", {"name": "x"}),
                               ("DELETE", f"/api/v1/actions/{HUGE}", None)):
        async with client.request(method, path, headers=OPERATOR, json=body) as response:
            assert response.status == 404, (method, path, await response.text())


@pytest.mark.parametrize("query", [
    "limit=-1", "limit=0", "limit=201", f"limit={HUGE}", f"limit={SUPERSCRIPT_TWO}", "limit=", "limit=1.5",
    f"page={HUGE}", "page=0", f"owner={HUGE}", f"team={SUPERSCRIPT_TWO}", f"pipeline={HUGE}",
])
async def test_ticket_list_refuses_bad_integers(client, query: str) -> None:  # type: ignore[no-untyped-def]
    async with client.get(f"/api/v1/tickets?{query}", headers=OPERATOR) as response:
        assert response.status == 400, (query, await response.text())
        error = (await response.json())["error"]
        assert error["code"] == "invalid_parameter"
        assert error["parameter"] == query.split("=")[0]


@pytest.mark.parametrize("query", ["limit=-1", "limit=0", "limit=1001", f"limit={HUGE}", f"before_id={HUGE}",
                                   f"before_id={SUPERSCRIPT_TWO}", "before_id=-5"])
async def test_audit_refuses_bad_integers(client, query: str) -> None:  # type: ignore[no-untyped-def]
    async with client.get(f"/api/v1/audit?{query}", headers=OPERATOR) as response:
        assert response.status == 400, (query, await response.text())
        assert (await response.json())["error"]["parameter"] == query.split("=")[0]


async def test_audit_limit_bounds_the_page(client) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b", "c"):
        async with client.post("/api/v1/teams", headers=OPERATOR, json={"name": name}) as response:
            assert response.status == 201
    async with client.get("/api/v1/audit?limit=2", headers=OPERATOR) as response:
        assert response.status == 200
        assert len((await response.json())["entries"]) == 2
    async with client.get("/api/v1/audit?limit=1000", headers=OPERATOR) as response:
        assert len((await response.json())["entries"]) == 3


async def test_a_huge_id_in_a_body_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    async with client.post("/api/v1/tickets/bulk-move", headers=OPERATOR,
                           json={"status_id": 10**30, "ticket_ids": [1]}) as response:
        assert response.status == 422, await response.text()
        assert (await response.json())["error"]["field"] == "status_id"


async def test_every_authenticated_operation_documents_the_common_errors(client) -> None:  # type: ignore[no-untyped-def]
    async with client.get("/openapi.json") as response:
        document = await response.json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters" or operation.get("security") == []:
                continue
            responses = operation["responses"]
            assert {"401", "503"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if method in ("post", "put", "patch"):
                assert {"400", "413", "422"} <= set(responses), (method, path)


async def test_a_notify_recipient_id_beyond_the_id_columns_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    # Found by the fuzzer on PostgreSQL: recipient.id = -1.6e22 reached the driver (500).
    async with client.get("/api/v1/pipelines", headers=OPERATOR) as response:
        status_id = (await response.json())["pipelines"][0]["statuses"][0]["id"]
    for bad in (-16520804879733725593600, 2**31, 0, True):
        body = {"kind": "notify", "recipient": {"kind": "team", "id": bad}}
        async with client.post(f"/api/v1/statuses/{status_id}/actions", headers=OPERATOR, json=body) as response:
            assert response.status == 422, (bad, await response.text())
            assert (await response.json())["error"]["code"] == "action_recipient_invalid"
