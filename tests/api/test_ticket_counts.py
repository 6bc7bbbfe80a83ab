"""The kept ticket counts (``ticket_counts``): equal to a count over the tickets after every kind of write, and the
default views' counts taken from them equal the counts over the tickets for every access kind."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from api_harness import create_user_token
from frontdesk.model import Message, Pipeline, PipelineAccess, Status, Team, Ticket, TicketCount
from frontdesk.model.access import SUPER_ADMIN
from frontdesk.model.messages import OUTBOUND
from frontdesk.tickets.search_index import refresh_ticket_index
from workspace_world import USERS, build_world

VIEWS = ("unassigned", "assigned_to_me", "my_team_open", "all_open", "sent", "spam")


async def _kept_and_actual(sessions) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """The kept counts (non-zero rows) and the same grouping counted over the live tickets."""
    async with sessions() as session:
        kept = {tuple(row[:-1]): row[-1] for row in await session.execute(
            select(TicketCount.pipeline_id, TicketCount.status_id, TicketCount.owner_id, TicketCount.team_id,
                   TicketCount.is_spam, TicketCount.last_message_outbound, TicketCount.n)
            .where(TicketCount.n != 0))}
        key = (Ticket.pipeline_id, Ticket.status_id, func.coalesce(Ticket.owner_id, 0),
               func.coalesce(Ticket.team_id, 0), Ticket.is_spam, Ticket.last_message_outbound)
        actual = {tuple(row[:-1]): row[-1] for row in await session.execute(
            select(*key, func.count()).where(Ticket.deleted_at.is_(None)).group_by(*key))}
    return kept, actual


async def test_counts_follow_create_change_spam_delete_restore_and_owner_removal(client, sessions) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessions)
    _, admin = await create_user_token(sessions, email="root@acme.test", role=SUPER_ADMIN)
    kept, actual = await _kept_and_actual(sessions)
    assert kept == actual and sum(actual.values()) == len(world.tickets)
    ticket = world.tickets["unassigned_open"]
    async with sessions() as session:
        closed = await session.scalar(select(Status.id).join(Pipeline, Pipeline.id == Status.pipeline_id).where(
            Pipeline.internal_name == "support", Status.internal_name == "closed"))
    steps = [
        ("POST", "/api/v1/tickets", {"name": "new one", "pipeline": "support", "status": "new", "owner_id": world.users["owned"]}),
        ("PATCH", f"/api/v1/tickets/{ticket}", {"status": "waiting_on_us"}),
        ("PATCH", f"/api/v1/tickets/{ticket}", {"owner_id": world.users["team_t1"], "team_id": world.teams["t2"]}),
        ("PATCH", f"/api/v1/tickets/{ticket}", {"name": "renamed only"}),  # moves nothing
        ("PUT", f"/api/v1/tickets/{ticket}/spam", None),
        ("DELETE", f"/api/v1/tickets/{ticket}/spam", None),
        ("DELETE", f"/api/v1/tickets/{ticket}", None),
        ("POST", f"/api/v1/tickets/{ticket}/restore", None),
        ("POST", "/api/v1/tickets/bulk-move", {"ticket_ids": [world.tickets["all_t1_open"], ticket],
                                              "status_id": closed}),
    ]
    for method, path, body in steps:
        async with client.request(method, path, headers=admin, json=body) as response:
            assert response.status < 300, (path, response.status, await response.text())
        kept, actual = await _kept_and_actual(sessions)
        assert kept == actual, (method, path)
    # An agent's outbound message last: the ticket moves into Sent (ingest and replies keep the flag this way).
    async with sessions.begin() as session:
        session.add(Message(ticket_id=ticket, direction=OUTBOUND, channel="email", author_kind="agent", text_body="hi"))
        await refresh_ticket_index(session, ticket)
    kept, actual = await _kept_and_actual(sessions)
    assert kept == actual and any(k[5] for k in kept)
    # A team removed inside the database (ON DELETE SET NULL) moves its tickets too.
    async with sessions.begin() as session:
        await session.execute(delete(Team).where(Team.id == world.teams["t1"]))
    kept, actual = await _kept_and_actual(sessions)
    assert kept == actual and world.teams["t1"] not in {k[3] for k in kept}


async def test_view_counts_equal_counts_over_the_tickets_for_every_access_kind(client, sessions) -> None:  # type: ignore[no-untyped-def]
    """Including a pipeline with an access list, which the kept counts answer through the same access rule."""
    world = await build_world(sessions)
    async with sessions.begin() as session:
        billing = await session.scalar(select(Ticket.pipeline_id).where(Ticket.id == world.tickets[
            "team_t1_open_billing"]))
        session.add(PipelineAccess(pipeline_id=billing, team_id=world.teams["t2"]))
    for user in USERS:
        headers = world.headers[user]
        async with client.get("/api/v1/views", headers=headers) as response:
            counts = {v["id"]: v["count"] for v in (await response.json())["views"] if v["kind"] == "default"}
        for view in VIEWS:
            # A criterion on a column the kept counts lack: this total is counted over the tickets.
            async with client.get(f"/api/v1/views/{view}/tickets", headers=headers,
                                  params={"filter": "created_at:known", "limit": "1"}) as response:
                assert response.status == 200, await response.text()
                exact = (await response.json())["total"]
            assert counts[view] == exact, (user, view)
        assert any(counts.values()), user


def test_default_views_are_counted_from_the_kept_counts_and_other_criteria_are_not() -> None:
    """Every default view, for every access kind, rewrites onto ticket_counts; a search or a custom property cannot."""
    from sqlalchemy import and_

    from frontdesk.tickets.access import Principal, ticket_visibility
    from frontdesk.tickets.counts import counts_clause
    from frontdesk.tickets.views import DEFAULT_VIEWS

    principals = [Principal(user_id=3, role="agent", ticket_access=access, sees_unassigned=unassigned,
                            team_ids=frozenset(teams))
                  for access in ("all", "team", "owned") for unassigned in (True, False) for teams in ((), (1, 2))]
    for principal in principals + [Principal(user_id=1, role=SUPER_ADMIN)]:
        for view in DEFAULT_VIEWS.values():
            clause = and_(ticket_visibility(principal), *view.criteria(principal, [1, 2]))
            assert counts_clause(clause) is not None, (principal, view.key)
    everyone = ticket_visibility(Principal(user_id=3, role="agent"))
    assert counts_clause(and_(everyone, Ticket.custom_properties["plan"].as_string() == "gold")) is None
    assert counts_clause(and_(everyone, Ticket.priority == "high")) is None
    assert counts_clause(ticket_visibility(Principal(user_id=3, role="agent"), deleted=True)) is None
