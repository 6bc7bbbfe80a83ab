"""Which tickets a principal may see: the rule applied on every ticket endpoint.

Reference semantics (HubSpot's team-based access): a team-only user sees
tickets owned by themselves or by any member of any of their teams; an
owned-only user sees their own; "unassigned" adds tickets nobody owns.
Pipelines with an access list are visible only to the users and teams on
it.  Super admins see everything.  A ticket outside the rule is answered
with 404, never 403, so its existence does not leak.  A deleted ticket is
outside it for everyone (:mod:`frontdesk.tickets.lifecycle`).

:class:`Principal` (who is acting, with which role and ticket access) lives
here so the rules need nothing from the HTTP layer; ``frontdesk.api.auth``
builds it from a token, the config CLI builds one for its actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Pipeline, PipelineAccess, TeamMembership, Ticket, User
from frontdesk.model.access import ACCESS_ALL, ACCESS_OWNED, ACCESS_TEAM, ADMIN, SUPER_ADMIN
from frontdesk.tickets.errors import NotFound


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    role: str
    ticket_access: str = ACCESS_ALL
    sees_unassigned: bool = True
    team_ids: frozenset[int] = field(default_factory=frozenset)
    label: str = ""
    manages_views: bool = False  # the "custom views" permission
    account_access: bool = False  # the "account access" permission

    @property
    def can_move_conversations(self) -> bool:
        """Moving conversations between inboxes: super admins and users with account access."""
        return self.is_super_admin or self.account_access

    @property
    def is_super_admin(self) -> bool:
        return self.role == SUPER_ADMIN

    @property
    def is_admin(self) -> bool:
        """An admin or a super admin."""
        return self.role in (SUPER_ADMIN, ADMIN)

    @property
    def can_edit_property_settings(self) -> bool:
        return self.is_admin

    @property
    def can_manage_views(self) -> bool:
        """The "custom views" permission: create, edit and delete custom views."""
        return self.role in (SUPER_ADMIN, ADMIN) or self.manages_views


async def principal_for_user(session: AsyncSession, user: User) -> Principal:
    """The principal ``user`` acts as: their role, ticket access and every team they belong to."""
    teams = set((await session.scalars(select(TeamMembership.team_id).where(TeamMembership.user_id == user.id))).all())
    if user.primary_team_id is not None:
        teams.add(user.primary_team_id)
    return Principal(user_id=user.id, role=user.role, ticket_access=user.ticket_access,
                     sees_unassigned=user.sees_unassigned, team_ids=frozenset(teams), label=user.email,
                     manages_views=user.can_manage_views, account_access=user.account_access)


async def may_see_ticket(session: AsyncSession, principal: Principal, ticket_id: int) -> bool:
    return await session.scalar(select(Ticket.id).where(Ticket.id == ticket_id, ticket_visibility(principal))) is not None


def _pipeline_clause(principal: Principal, pipeline_id: Any) -> ColumnElement[bool]:
    """The pipeline whose id is the column ``pipeline_id`` has no access list, or lists the principal."""
    restricted = exists().where(PipelineAccess.pipeline_id == pipeline_id)
    listed = exists().where(
        PipelineAccess.pipeline_id == pipeline_id,
        or_(
            PipelineAccess.user_id == principal.user_id,
            PipelineAccess.team_id.in_(principal.team_ids) if principal.team_ids else false(),
        ),
    )
    return or_(~restricted, listed)


def _owner_clause(principal: Principal) -> ColumnElement[bool]:
    if principal.ticket_access == ACCESS_ALL:
        return true()
    mine = Ticket.owner_id == principal.user_id
    unassigned = Ticket.owner_id.is_(None) if principal.sees_unassigned else false()
    if principal.ticket_access == ACCESS_OWNED:
        return or_(mine, unassigned)
    if principal.ticket_access == ACCESS_TEAM and principal.team_ids:
        teammates = select(TeamMembership.user_id).where(TeamMembership.team_id.in_(principal.team_ids))
        primary = select(User.id).where(User.primary_team_id.in_(principal.team_ids))
        return or_(mine, unassigned, Ticket.owner_id.in_(teammates), Ticket.owner_id.in_(primary))
    return or_(mine, unassigned)


def ticket_visibility(principal: Principal, *, deleted: bool = False) -> ColumnElement[bool]:
    """A WHERE clause on ``Ticket`` selecting exactly what ``principal`` may see.

    A deleted ticket is out of everything (lists, counts, details, changes);
    ``deleted`` selects the deleted ones instead, for the admins who restore them.
    """
    lifecycle = Ticket.deleted_at.is_not(None) if deleted else Ticket.deleted_at.is_(None)
    if principal.is_super_admin:
        return lifecycle
    return and_(lifecycle, _pipeline_clause(principal, Ticket.pipeline_id), _owner_clause(principal))


async def visible_ticket(session: AsyncSession, principal: Principal, ticket_id: int, *,
                         deleted: bool = False) -> Ticket:
    """Load one ticket the principal may see (a deleted one with ``deleted``), or raise ``NotFound``."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id,
                                                       ticket_visibility(principal, deleted=deleted)))
    if ticket is None:
        raise NotFound("ticket")
    return ticket


def pipeline_visibility(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Pipeline``: open to all, or the principal is on its access list."""
    if principal.is_super_admin:
        return true()
    return _pipeline_clause(principal, Pipeline.id)


async def visible_pipeline(session: AsyncSession, principal: Principal, pipeline_id: int) -> Pipeline:
    """Load a pipeline the principal may see and edit, or raise ``NotFound``."""
    pipeline = await session.scalar(select(Pipeline).where(Pipeline.id == pipeline_id, pipeline_visibility(principal)))
    if pipeline is None:
        raise NotFound("pipeline")
    return pipeline
