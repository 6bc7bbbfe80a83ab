"""The default views for every access kind: the exact tickets, their counts, and no leaks in lists or search."""

from __future__ import annotations

from workspace_world import TICKETS, USERS, build_world, expected, planned_world, visible

VIEWS = ("unassigned", "assigned_to_me", "my_team_open", "all_open", "sent", "spam")


async def _all_pages(client, path: str, headers, limit: str = "50", **params) -> tuple[list[int], int]:  # type: ignore[no-untyped-def]
    """Every ticket id of a list, walking its cursors; and the total it reported."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        async with client.get(path, headers=headers, params=query) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        ids += [t["id"] for t in body["tickets"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, body["total"]


async def test_each_default_view_for_each_access_kind(client, sessions) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessions)
    for user in USERS:
        headers = world.headers[user]
        async with client.get("/api/v1/views", headers=headers) as response:
            assert response.status == 200
            counts = {v["id"]: v["count"] for v in (await response.json())["views"] if v["kind"] == "default"}
        for view in VIEWS:
            want = expected(world, user, view)
            # Two at a time through one view: its cursors never repeat or skip a ticket.
            ids, total = await _all_pages(client, f"/api/v1/views/{view}/tickets", headers,
                                          limit="2" if view == "all_open" else "50")
            assert (set(ids), len(ids), total, counts[view]) == (want, len(want), len(want), len(want)), (user, view)
        # The ticket list and the search box: what the caller may see, spam left out.
        visible_ids = {world.tickets[t] for t in TICKETS if visible(world, user, t) and not TICKETS[t][4]}
        ids, total = await _all_pages(client, "/api/v1/tickets", headers)
        assert set(ids) == visible_ids and total == len(visible_ids), user
        ids, total = await _all_pages(client, "/api/v1/tickets", headers, q="zebra")
        assert set(ids) == visible_ids and total == len(visible_ids), user
        # A search inside a view combines both.
        ids, _ = await _all_pages(client, "/api/v1/views/all_open/tickets", headers, q="billing")
        assert set(ids) == {world.tickets[t] for t in TICKETS if "billing" in t} & expected(world, user, "all_open")


def test_the_expectations_are_not_trivial() -> None:
    """Each view has tickets for someone, team membership matters, and unassigned access matters."""
    world = planned_world()
    for view in VIEWS:
        assert any(expected(world, user, view) for user in USERS), view
    assert expected(world, "team_t1_t2", "my_team_open") != expected(world, "team_t1", "my_team_open")
    assert expected(world, "owned", "unassigned") == set()
    assert expected(world, "owned_unassigned", "unassigned")
