"""Ticket views: the six default views per user and the rules for custom views (who sees, who edits, the cap).

A view is criteria on top of the caller's ticket access
(``tickets.access.ticket_visibility``, applied by the list query).  "Open"
means in a status that is not closed; the open status ids are read first
(a handful) so the lists and counts run on ``ix_tickets_view_owner``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Status, TeamMembership, Ticket, TicketView, TicketViewTeam, User
from frontdesk.model.views import EVERYONE, SHARING, TEAMS
from frontdesk.tickets.access import Principal
from frontdesk.tickets.errors import Conflict, DomainError, NotFound
from frontdesk.tickets.filters import parse_filters
from frontdesk.tickets.properties import all_properties

MAX_NAME = 200


@dataclass(frozen=True)
class DefaultView:
    key: str
    name: str
    # (principal, open status ids) -> the view's criteria
    criteria: Callable[[Principal, list[int]], list[Any]]
    spam: bool = False


def _open(open_ids: list[int]) -> ColumnElement[bool]:
    return Ticket.status_id.in_(open_ids) if open_ids else false()


def _my_team(principal: Principal) -> ColumnElement[bool]:
    """Owned by a member of, or assigned to, one of the principal's teams."""
    if not principal.team_ids:
        return false()
    members = select(TeamMembership.user_id).where(TeamMembership.team_id.in_(principal.team_ids))
    primary = select(User.id).where(User.primary_team_id.in_(principal.team_ids))
    return or_(Ticket.owner_id.in_(members), Ticket.owner_id.in_(primary), Ticket.team_id.in_(principal.team_ids))


DEFAULT_VIEWS: dict[str, DefaultView] = {view.key: view for view in (
    DefaultView("unassigned", "Unassigned", lambda p, ids: [_open(ids), Ticket.owner_id.is_(None)]),
    DefaultView("assigned_to_me", "Assigned to me",
                lambda p, ids: [_open(ids), Ticket.owner_id == p.user_id if p.user_id else false()]),
    DefaultView("my_team_open", "Open for my team", lambda p, ids: [_open(ids), _my_team(p)]),
    DefaultView("all_open", "All open", lambda p, ids: [_open(ids)]),
    DefaultView("sent", "Sent", lambda p, ids: [Ticket.last_message_outbound]),
    DefaultView("spam", "Spam", lambda p, ids: [Ticket.is_spam], spam=True),
)}


async def open_status_ids(session: AsyncSession) -> list[int]:
    return list((await session.scalars(select(Status.id).where(Status.is_closed.is_(False)).order_by(Status.id))).all())


def view_visibility(principal: Principal) -> ColumnElement[bool]:
    """Custom views the principal may list and open: shared with everyone, their own, or with one of their teams."""
    if principal.is_super_admin:
        return true()
    shared_with_team = exists().where(TicketViewTeam.view_id == TicketView.id,
                                      TicketViewTeam.team_id.in_(principal.team_ids)) \
        if principal.team_ids else false()
    own = TicketView.owner_user_id == principal.user_id if principal.user_id else false()
    return or_(TicketView.sharing == EVERYONE, own, and_(TicketView.sharing == TEAMS, shared_with_team))


async def visible_view(session: AsyncSession, principal: Principal, view_id: int) -> TicketView:
    view = await session.scalar(select(TicketView).where(TicketView.id == view_id, view_visibility(principal)))
    if view is None:
        raise NotFound("view")
    return view


def may_edit(principal: Principal, view: TicketView | None) -> bool:
    """The "custom views" permission, and for an existing view: its owner, or an admin."""
    if not principal.can_manage_views:
        return False
    return view is None or principal.can_edit_property_settings or view.owner_user_id == principal.user_id


async def check_cap(session: AsyncSession, cap: int) -> None:
    count = await session.scalar(select(func.count(TicketView.id)))
    if (count or 0) >= cap:
        raise Conflict("view_limit_reached", f"this installation allows at most {cap} custom views", limit=cap)


async def checked_definition(session: AsyncSession, name: Any, sharing: Any, filters: Any) -> tuple[str, str, list[str]]:
    """A custom view's name, sharing and filters, or ``DomainError`` / ``FilterError`` naming the field."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise DomainError("field_invalid", f"'name' must be a non-empty string of at most {MAX_NAME} characters",
                          field="name")
    if sharing not in SHARING:
        raise DomainError("field_invalid", f"'sharing' must be one of {', '.join(SHARING)}", field="sharing")
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise DomainError("field_invalid", "'filters' must be a list of filter strings", field="filters")
    parse_filters(filters, await all_properties(session))
    return name.strip(), sharing, filters
