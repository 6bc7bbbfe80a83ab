"""The permission matrix: every role and ticket-access setting against every ticket endpoint, zero leaks.

Four owners in three teams, plus an unassigned ticket.  Each principal must
see exactly its expected set in the list and its total, get 404 (never 403)
for the others on detail, PATCH, replies, template preview and bulk move,
and be able to act on the ones it sees.
"""

from __future__ import annotations

from admin_client import make_user, status_named, support_pipeline

ALL = {"a", "b", "c", "o", "u"}


async def _world(api):
    teams = {}
    for name in ("One", "Two", "Three"):
        teams[name] = (await api.ok("POST", "/api/v1/teams", {"name": name}, expect=201))["id"]
    owners = {
        "a": await make_user(api, "alice@acme.test", primary_team_id=teams["One"]),
        "b": await make_user(api, "bob@acme.test", primary_team_id=teams["Two"]),
        "c": await make_user(api, "carol@acme.test", primary_team_id=teams["Three"]),
        "o": await make_user(api, "olga@acme.test", access="owned", primary_team_id=teams["Three"]),
    }
    tickets = {}
    for key, (user_id, _) in owners.items():
        tickets[key] = (await api.ok("POST", "/api/v1/tickets", {"name": f"ticket {key}", "pipeline": "support",
                                                                  "status": "new", "owner_id": user_id},
                                     expect=201))["id"]
    tickets["u"] = (await api.ok("POST", "/api/v1/tickets", {"name": "nobody's", "pipeline": "support",
                                                              "status": "new", "owner_id": None}, expect=201))["id"]
    return teams, owners, tickets


async def _principals(api, teams, owners):
    """(label, token, user id or None, expected without unassigned, expected with unassigned)."""
    super_id, super_token = await make_user(api, "root@acme.test", role="super_admin")
    admin_id, admin_token = await make_user(api, "admin@acme.test", role="admin")
    all_id, all_token = await make_user(api, "everything@acme.test", primary_team_id=teams["Three"])
    team1_id, team1_token = await make_user(api, "t1@acme.test", access="team", primary_team_id=teams["One"])
    team12_id, team12_token = await make_user(api, "t12@acme.test", access="team", primary_team_id=teams["One"],
                                              team_ids=[teams["Two"]])
    olga_id, olga_token = owners["o"]
    return [
        ("operator token", "test-api-token", None, ALL, ALL),
        ("super admin", super_token, super_id, ALL, ALL),
        ("admin", admin_token, admin_id, ALL, ALL),
        ("agent, all tickets", all_token, all_id, ALL, ALL),
        ("agent, team only (one team)", team1_token, team1_id, {"a"}, {"a", "u"}),
        ("agent, team only (two teams)", team12_token, team12_id, {"a", "b"}, {"a", "b", "u"}),
        ("agent, owned only", olga_token, olga_id, {"o"}, {"o", "u"}),
    ]


async def _check(api, label, token, tickets, expected, new_id, waiting_id):
    by_id = {v: k for k, v in tickets.items()}
    listed = await api.ok("GET", "/api/v1/tickets", params={"limit": "100"}, token=token)
    seen = {by_id[t["id"]] for t in listed["tickets"] if t["id"] in by_id}
    assert seen == expected, (label, "list", seen)
    assert listed["total"] == len(expected), (label, "total", listed["total"])
    filtered = await api.ok("GET", "/api/v1/tickets", params={"status": "new", "limit": "100"}, token=token)
    assert filtered["total"] == len(expected), (label, "filtered total", filtered["total"])
    for key, ticket_id in tickets.items():
        visible = key in expected
        checks = [
            ("detail", await api.get(f"/api/v1/tickets/{ticket_id}", token=token)),
            ("patch", await api.patch(f"/api/v1/tickets/{ticket_id}", {"priority": "high"}, token=token)),
            ("reply", await api.post(f"/api/v1/tickets/{ticket_id}/replies", {"text": "hello"}, token=token)),
            ("preview", await api.post("/api/v1/templates/ticket_received/preview", {"ticket_id": ticket_id},
                                       token=token)),
            ("bulk move", await api.post("/api/v1/tickets/bulk-move",
                                         {"ticket_ids": [ticket_id], "status_id": new_id}, token=token)),
        ]
        for endpoint, (code, body) in checks:
            if visible:
                assert code != 404 and code != 403, (label, endpoint, key, code, body)
            else:
                assert code == 404, (label, endpoint, key, code, body)
                assert f"ticket {key}" not in str(body) and "nobody's" not in str(body), (label, endpoint, body)
    # A bulk move of a whole status moves exactly the visible tickets.
    moved = await api.ok("POST", "/api/v1/tickets/bulk-move", {"from_status_id": new_id, "status_id": waiting_id},
                         token=token)
    assert {by_id[i] for i in moved["moved"]} == expected, (label, "bulk move by status", moved)
    await api.ok("POST", "/api/v1/tickets/bulk-move", {"from_status_id": waiting_id, "status_id": new_id})


async def test_permission_matrix(api):
    teams, owners, tickets = await _world(api)
    principals = await _principals(api, teams, owners)
    support = await support_pipeline(api)
    new_id = status_named(support, "new")["id"]
    waiting_id = status_named(support, "waiting_on_us")["id"]
    for label, token, user_id, without, with_unassigned in principals:
        for unassigned, expected in ((False, without), (True, with_unassigned)):
            if user_id is not None:
                await api.ok("PATCH", f"/api/v1/users/{user_id}", {"sees_unassigned": unassigned})
            await _check(api, f"{label}, unassigned={unassigned}", token, tickets, expected, new_id, waiting_id)


async def test_agents_can_create_tickets_and_see_them(api):
    teams, owners, tickets = await _world(api)
    for label, token, user_id, _, _ in await _principals(api, teams, owners):
        created = await api.ok("POST", "/api/v1/tickets", {"name": f"by {label}", "pipeline": "support",
                                                            "status": "new"}, token=token, expect=201)
        assert created["owner_id"] == user_id, label
        code, _ = await api.get(f"/api/v1/tickets/{created['id']}", token=token)
        assert code == 200, label


async def test_pipeline_access_list_hides_the_pipeline_and_its_tickets(api):
    teams, owners, tickets = await _world(api)
    support = await support_pipeline(api)
    alice_id, alice = owners["a"]
    bob_id, bob = owners["b"]
    restricted = await api.ok("POST", "/api/v1/pipelines", {"name": "Billing disputes"}, expect=201)
    hidden = (await api.ok("POST", "/api/v1/tickets", {"name": "secret", "pipeline_id": restricted["id"],
                                                        "status_id": restricted["statuses"][0]["id"],
                                                        "owner_id": alice_id}, expect=201))["id"]
    code, body = await api.put(f"/api/v1/pipelines/{restricted['id']}/access", {"team_ids": [teams["Two"]]},
                               token=alice)
    assert code == 403 and body["error"]["code"] == "super_admin_required"
    await api.ok("PUT", f"/api/v1/pipelines/{restricted['id']}/access", {"team_ids": [teams["Two"]]})
    # Alice owns the ticket but is not on the pipeline's list: she sees neither.
    assert (await api.get(f"/api/v1/tickets/{hidden}", token=alice))[0] == 404
    assert (await api.get(f"/api/v1/pipelines/{restricted['id']}", token=alice))[0] == 404
    names = [p["internal_name"] for p in (await api.ok("GET", "/api/v1/pipelines", token=alice))["pipelines"]]
    assert names == ["support"]
    code, _ = await api.post("/api/v1/tickets", {"name": "x", "pipeline_id": restricted["id"],
                                                 "status_id": restricted["statuses"][0]["id"]}, token=alice)
    assert code == 404
    assert (await api.get(f"/api/v1/tickets/{hidden}", token=bob))[0] == 200
    assert support["access"]["restricted"] is False


async def test_revoked_token_gets_401(api):
    user_id, token = await make_user(api, "leaver@acme.test")
    assert (await api.get("/api/v1/tickets", token=token))[0] == 200
    tokens = (await api.ok("GET", f"/api/v1/users/{user_id}/tokens"))["tokens"]
    assert "token" not in tokens[0] and "token_hash" not in tokens[0]
    await api.ok("DELETE", f"/api/v1/tokens/{tokens[0]['id']}", expect=204)
    code, body = await api.get("/api/v1/tickets", token=token)
    assert code == 401 and body["error"]["code"] == "unauthenticated"
