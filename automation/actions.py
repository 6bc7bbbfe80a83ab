"""Status-entered actions: what the ordered chain of a status does when a ticket enters it.

**Send email** renders a template to the ticket's contact: transactional
templates go to any contact, others only to marketing contacts.
**Internal email notification** goes to a named user, all members of a
team, the ticket owner, or the owner's team.  By default actions do not
apply to live chat or Messenger tickets; a pipeline's ``action_sources``
opts those channels in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from frontdesk.events import DomainEvent, TicketCreated, TicketStatusChanged
from frontdesk.model.automation import NOTIFY, SEND_EMAIL, TO_OWNER, TO_OWNER_TEAM, TO_TEAM, TO_USER
from frontdesk.model.channels import CHAT, MESSENGER

# Channels whose tickets get status actions only when the pipeline opts in.
OPT_IN_SOURCES = frozenset({CHAT, MESSENGER})


@dataclass(frozen=True)
class ActionConfig:
    id: int
    kind: str
    template_id: int | None = None
    recipient_kind: str | None = None
    recipient_id: int | None = None


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    email: str


@dataclass(frozen=True)
class ActionWorld:
    """Everything the chain may need, loaded by the handler before deciding."""

    source_channel: str
    action_sources: frozenset[str]
    contact_email: str | None
    contact_is_marketing: bool
    template_transactional: Mapping[int, bool]  # template id -> transactional
    users: Mapping[int, Person]  # active users by id
    team_members: Mapping[int, tuple[Person, ...]]  # team id -> active members
    owner_id: int | None
    owner_team_id: int | None


@dataclass(frozen=True)
class SendTemplate:
    action_id: int
    template_id: int
    to: str


@dataclass(frozen=True)
class Notify:
    action_id: int
    recipients: tuple[Person, ...]


@dataclass(frozen=True)
class SkipAction:
    action_id: int
    reason: str


Decision = SendTemplate | Notify | SkipAction


def entered_status(event: DomainEvent, current_status_id: int) -> int | None:
    """The status whose chain ``event`` runs, or None if it runs none."""
    if isinstance(event, TicketCreated):
        return event.status_id or current_status_id
    if isinstance(event, TicketStatusChanged):
        return event.to_status_id
    return None


def _send_email(action: ActionConfig, world: ActionWorld) -> Decision:
    if action.template_id is None or action.template_id not in world.template_transactional:
        return SkipAction(action.id, "template_missing")
    if not world.contact_email:
        return SkipAction(action.id, "contact_has_no_email")
    if not world.template_transactional[action.template_id] and not world.contact_is_marketing:
        return SkipAction(action.id, "not_a_marketing_contact")
    return SendTemplate(action.id, action.template_id, world.contact_email)


def _recipients(action: ActionConfig, world: ActionWorld) -> tuple[Person, ...] | str:
    kind = action.recipient_kind
    if kind == TO_USER:
        person = world.users.get(action.recipient_id or -1)
        return (person,) if person else "user_missing_or_inactive"
    if kind == TO_TEAM:
        return world.team_members.get(action.recipient_id or -1, ()) or "team_has_no_members"
    if kind == TO_OWNER:
        if world.owner_id is None:
            return "ticket_has_no_owner"
        person = world.users.get(world.owner_id)
        return (person,) if person else "owner_inactive"
    if kind == TO_OWNER_TEAM:
        if world.owner_id is None:
            return "ticket_has_no_owner"
        if world.owner_team_id is None:
            return "owner_has_no_team"
        return world.team_members.get(world.owner_team_id, ()) or "team_has_no_members"
    return f"unknown_recipient_kind:{kind}"


def _notify(action: ActionConfig, world: ActionWorld) -> Decision:
    found = _recipients(action, world)
    if isinstance(found, str):
        return SkipAction(action.id, found)
    unique = tuple({p.user_id: p for p in found}.values())
    return Notify(action.id, unique)


def plan_notifications(recipients: Sequence[ActionConfig], world: ActionWorld) -> list[Decision]:
    """Whom each internal notification reaches (SLA moments: every source channel)."""
    return [_notify(action, world) for action in recipients]


def plan_status_actions(chain: Sequence[ActionConfig], world: ActionWorld) -> list[Decision]:
    """One decision per action of the chain, in order."""
    if world.source_channel in OPT_IN_SOURCES and world.source_channel not in world.action_sources:
        return [SkipAction(a.id, f"source_{world.source_channel}_not_enabled") for a in chain]
    decisions: list[Decision] = []
    for action in chain:
        if action.kind == SEND_EMAIL:
            decisions.append(_send_email(action, world))
        elif action.kind == NOTIFY:
            decisions.append(_notify(action, world))
        else:
            decisions.append(SkipAction(action.id, f"unknown_action_kind:{action.kind}"))
    return decisions
