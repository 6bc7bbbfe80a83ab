"""Which tickets a principal may see: the rule applied on every ticket endpoint.

Reference semantics (HubSpot's team-based access): a team-only user sees
tickets owned by themselves or by any member of any of their teams; an
owned-only user sees their own; "unassigned" adds tickets nobody owns.
Pipelines with an access list are visible only to the users and teams on
it.  Super admins see everything.  A ticket outside the rule is answered
with 404, never 403, so its existence does not leak.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import Principal
from frontdesk.api.errors import not_found
from frontdesk.model import Pipeline, PipelineAccess, TeamMembership, Ticket, User
from frontdesk.model.access import ACCESS_ALL, ACCESS_OWNED, ACCESS_TEAM


def _pipeline_clause(principal: Principal) -> ColumnElement[bool]:
    restricted = exists().where(PipelineAccess.pipeline_id == Ticket.pipeline_id)
    listed = exists().where(
        PipelineAccess.pipeline_id == Ticket.pipeline_id,
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


def ticket_visibility(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Ticket`` selecting exactly what ``principal`` may see."""
    if principal.is_super_admin:
        return true()
    return and_(_pipeline_clause(principal), _owner_clause(principal))


async def visible_ticket(session: AsyncSession, principal: Principal, ticket_id: int) -> Ticket:
    """Load one ticket the principal may see, or raise 404."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id, ticket_visibility(principal)))
    if ticket is None:
        raise not_found()
    return ticket


def pipeline_visibility(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Pipeline``: open to all, or the principal is on its access list."""
    if principal.is_super_admin:
        return true()
    restricted = exists().where(PipelineAccess.pipeline_id == Pipeline.id)
    listed = exists().where(
        PipelineAccess.pipeline_id == Pipeline.id,
        or_(
            PipelineAccess.user_id == principal.user_id,
            PipelineAccess.team_id.in_(principal.team_ids) if principal.team_ids else false(),
        ),
    )
    return or_(~restricted, listed)


async def visible_pipeline(session: AsyncSession, principal: Principal, pipeline_id: int) -> Pipeline:
    """Load a pipeline the principal may see and edit, or raise 404."""
    pipeline = await session.scalar(select(Pipeline).where(Pipeline.id == pipeline_id, pipeline_visibility(principal)))
    if pipeline is None:
        raise not_found("pipeline")
    return pipeline
