"""A small shared world for the workspace tests: teams, users of every access kind, tickets in two pipelines.

Tickets are made through the domain (``tickets.creation.create_ticket``), so
their search documents are kept the way production keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from api_harness import create_user_token
from frontdesk.events import Actor
from frontdesk.model import Message, Pipeline, Status, Team, TeamMembership
from frontdesk.model.messages import INBOUND, OUTBOUND
from frontdesk.tickets.creation import create_ticket
from frontdesk.tickets.search_index import refresh_ticket_index


@dataclass
class World:
    teams: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    # user key -> (ticket access, sees unassigned, team keys)
    access: dict[str, tuple[str, bool, tuple[str, ...]]] = field(default_factory=dict)
    tickets: dict[str, int] = field(default_factory=dict)
    # ticket key -> facts the expectations are computed from
    facts: dict[str, dict] = field(default_factory=dict)


USERS = {
    "all_t1": ("all", False, ("t1",)),
    "team_t1": ("team", False, ("t1",)),
    "team_t1_t2": ("team", True, ("t1", "t2")),
    "owned": ("owned", False, ()),
    "owned_unassigned": ("owned", True, ("t2",)),
    "member_t2": ("all", False, ("t2",)),
}

# key -> (pipeline, status, owner user key or None, team key or None, spam, last message by an agent)
TICKETS = {
    "unassigned_open": ("support", "new", None, None, False, False),
    "unassigned_closed": ("support", "closed", None, None, False, False),
    "all_t1_open": ("support", "new", "all_t1", None, False, False),
    "team_t1_open_billing": ("billing", "open", "team_t1", None, False, False),
    "member_t2_waiting": ("support", "waiting_on_us", "member_t2", None, False, False),
    "team_t1_queue_billing": ("billing", "open", None, "t1", False, False),
    "owned_open": ("support", "new", "owned", None, False, False),
    "owned_unassigned_closed": ("billing", "done", "owned_unassigned", None, False, False),
    "spam_unassigned": ("support", "new", None, None, True, False),
    "spam_owned": ("support", "new", "owned", None, True, False),
    "sent_all_t1": ("support", "waiting_on_contact", "all_t1", None, False, True),
    "sent_member_t2_closed": ("support", "closed", "member_t2", None, False, True),
}


def planned_world() -> World:
    """The world's facts alone, tickets numbered in order: for checking the expectations without a database."""
    world = World(access=dict(USERS), tickets={key: i for i, key in enumerate(TICKETS, 1)})
    for key, (_, status, owner, team, spam, sent) in TICKETS.items():
        world.facts[key] = {"open": status not in ("closed", "done"), "owner": owner, "team": team, "spam": spam,
                            "sent": sent}
    return world


async def build_world(sessions) -> World:  # type: ignore[no-untyped-def]
    world = World()
    async with sessions.begin() as session:
        for key in ("t1", "t2"):
            team = Team(name=key)
            session.add(team)
            await session.flush()
            world.teams[key] = team.id
        billing = Pipeline(name="Billing", internal_name="billing", position=1)
        session.add(billing)
        await session.flush()
        session.add_all([Status(pipeline_id=billing.id, label="Open", internal_name="open", position=0),
                         Status(pipeline_id=billing.id, label="Done", internal_name="done", position=1,
                                is_closed=True)])
    for key, (access, unassigned, teams) in USERS.items():
        user_id, headers = await create_user_token(
            sessions, email=f"{key}@acme.test", ticket_access=access, sees_unassigned=unassigned,
            team_id=world.teams[teams[0]] if teams else None)
        world.users[key], world.headers[key], world.access[key] = user_id, headers, (access, unassigned, teams)
    async with sessions.begin() as session:
        for team_key in USERS["team_t1_t2"][2][1:]:
            session.add(TeamMembership(user_id=world.users["team_t1_t2"], team_id=world.teams[team_key]))
        statuses = {(p, s.internal_name): s for s, p in (await session.execute(
            select(Status, Pipeline.internal_name).join(Pipeline, Pipeline.id == Status.pipeline_id))).all()}
        for key, (pipeline, status, owner, team, spam, sent) in TICKETS.items():
            ticket = await create_ticket(
                session, actor=Actor.agent(None), status=statuses[(pipeline, status)], source="api",
                name=f"zebra {key}", owner_id=world.users[owner] if owner else None,
                team_id=world.teams[team] if team else None)
            ticket.is_spam = spam
            session.add(Message(ticket_id=ticket.id, direction=INBOUND, channel="email", text_body="help"))
            if sent:
                session.add(Message(ticket_id=ticket.id, direction=OUTBOUND, channel="email", author_kind="agent",
                                    text_body="on it"))
            await session.flush()
            await refresh_ticket_index(session, ticket.id)
            world.tickets[key] = ticket.id
            world.facts[key] = {"open": not statuses[(pipeline, status)].is_closed, "owner": owner, "team": team,
                                "spam": spam, "sent": sent}
    return world


def members(world: World, team_keys: tuple[str, ...]) -> set[str]:
    return {user for user, (_, _, teams) in world.access.items() if set(teams) & set(team_keys)}


def visible(world: World, user: str, ticket: str) -> bool:
    """The access rule as the reference product states it (no pipeline access lists in this world)."""
    access, unassigned, teams = world.access[user]
    owner = world.facts[ticket]["owner"]
    if access == "all":
        return True
    if owner is None:
        return unassigned
    if owner == user:
        return True
    return access == "team" and owner in members(world, teams)


def in_view(world: World, user: str, ticket: str, view: str) -> bool:
    """The default views as the issue defines them."""
    f = world.facts[ticket]
    if view == "spam":
        return f["spam"]
    if f["spam"]:
        return False
    teams = world.access[user][2]
    return {
        "unassigned": f["open"] and f["owner"] is None,
        "assigned_to_me": f["open"] and f["owner"] == user,
        "my_team_open": f["open"] and (f["owner"] in members(world, teams) or f["team"] in teams),
        "all_open": f["open"],
        "sent": f["sent"],
    }[view]


def expected(world: World, user: str, view: str) -> set[int]:
    return {world.tickets[t] for t in world.tickets if visible(world, user, t) and in_view(world, user, t, view)}

