"""Export: everything an admin set up, read from the database as one document named by stable names."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import (
    Channel,
    EmailTemplate,
    Inbox,
    Pipeline,
    PipelineAccess,
    PipelineAutomation,
    PropertyDefinition,
    Snippet,
    StageProperty,
    Status,
    StatusAction,
    Team,
    TeamMembership,
    TicketView,
    TicketViewTeam,
    User,
)
from frontdesk.model.views import PRIVATE
from frontdesk.model.automation import SEND_EMAIL, TO_TEAM, TO_USER
from frontdesk.model.comments import SHARED
from frontdesk.model.inboxes import CONVERSATIONS
from frontdesk.runtime.config.document import FORMAT_VERSION
from frontdesk.runtime.config.sla import export_sla


async def export_config(session: AsyncSession) -> dict[str, Any]:
    """The whole admin configuration as plain data, ordered so two exports of one state are equal."""
    teams = {t.id: t.name for t in (await session.scalars(select(Team))).all()}
    users = (await session.scalars(select(User).where(User.is_active.is_(True)).order_by(User.email))).all()
    emails = {u.id: u.email for u in (await session.scalars(select(User))).all()}
    memberships: dict[int, list[str]] = {}
    for m in (await session.scalars(select(TeamMembership))).all():
        memberships.setdefault(m.user_id, []).append(teams[m.team_id])
    templates = (await session.scalars(select(EmailTemplate).order_by(EmailTemplate.key))).all()
    template_keys = {t.id: t.key for t in templates}
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    doc["teams"] = sorted(teams.values())
    doc["users"] = [
        {
            "email": u.email, "name": u.name, "role": u.role,
            "primary_team": teams.get(u.primary_team_id) if u.primary_team_id else None,
            "teams": sorted(t for t in memberships.get(u.id, []) if t != teams.get(u.primary_team_id)),
            "ticket_access": u.ticket_access, "sees_unassigned": u.sees_unassigned,
            "can_manage_views": u.can_manage_views,
            "account_access": u.account_access,
        }
        for u in users
    ]
    doc["properties"] = [
        {"name": p.name, "label": p.label, "type": p.type, "options": list(p.options or []),
         "read_only": p.read_only, "calculated": p.calculated}
        for p in (await session.scalars(select(PropertyDefinition).order_by(PropertyDefinition.name))).all()
    ]
    doc["templates"] = [
        {"key": t.key, "name": t.name, "subject": t.subject, "body_text": t.body_text, "body_html": t.body_html,
         "transactional": t.transactional}
        for t in templates
    ]
    doc["pipelines"] = []
    pipelines = (await session.scalars(select(Pipeline).order_by(Pipeline.position, Pipeline.id))).all()
    pipeline_names = {p.id: p.internal_name for p in pipelines}
    for pipeline in pipelines:
        statuses = (await session.scalars(
            select(Status).where(Status.pipeline_id == pipeline.id).order_by(Status.position, Status.id)
        )).all()
        status_names = {s.id: s.internal_name for s in statuses}
        access = (await session.scalars(select(PipelineAccess).where(PipelineAccess.pipeline_id == pipeline.id))).all()
        automation = await session.get(PipelineAutomation, pipeline.id)
        entry: dict[str, Any] = {
            "internal_name": pipeline.internal_name,
            "name": pipeline.name,
            "access": {
                "users": sorted(emails[a.user_id] for a in access if a.user_id is not None),
                "teams": sorted(teams[a.team_id] for a in access if a.team_id is not None),
            },
            "automation": _automation_doc(automation, status_names),
            "statuses": [],
        }
        for status in statuses:
            stage = (await session.scalars(
                select(StageProperty).where(StageProperty.status_id == status.id)
                .order_by(StageProperty.position, StageProperty.id)
            )).all()
            actions = (await session.scalars(
                select(StatusAction).where(StatusAction.status_id == status.id)
                .order_by(StatusAction.position, StatusAction.id)
            )).all()
            entry["statuses"].append({
                "internal_name": status.internal_name,
                "label": status.label,
                "state": "closed" if status.is_closed else "open",
                "properties": [{"property": s.property_name, "required": s.required} for s in stage],
                "actions": [_action_doc(a, template_keys, emails, teams) for a in actions],
            })
        doc["pipelines"].append(entry)
    doc["channels"] = [
        {"kind": c.kind, "key": c.key, "name": c.name, "pipeline": pipeline_names[c.pipeline_id],
         "create_tickets": c.create_tickets, "enabled": c.enabled}
        for c in (await session.scalars(select(Channel).order_by(Channel.kind, Channel.key))).all()
    ]
    doc["sla"] = await export_sla(session)
    doc["snippets"] = [
        {"shortcut": s.shortcut, "name": s.name, "body": s.body}
        for s in (await session.scalars(select(Snippet).where(Snippet.scope == SHARED)
                                        .order_by(Snippet.shortcut))).all()
    ]
    # Owners by the active users the document lists, so it applies back.
    doc["views"] = await _shared_views(session, teams, {u.id: u.email for u in users})
    # The help desk is always there; the file lists the conversations inboxes.
    doc["inboxes"] = [{"key": i.key, "name": i.name} for i in (await session.scalars(
        select(Inbox).where(Inbox.kind == CONVERSATIONS).order_by(Inbox.key))).all()]
    return doc


async def _shared_views(session: AsyncSession, teams: dict[int, str], emails: dict[int, str]) -> list[dict[str, Any]]:
    """Views shared with teams or everyone, by name (private views are their owner's, not configuration)."""
    views = (await session.scalars(select(TicketView).where(TicketView.sharing != PRIVATE)
                                   .order_by(TicketView.name, TicketView.id))).all()
    shared_with: dict[int, list[str]] = {}
    for row in (await session.scalars(select(TicketViewTeam))).all():
        shared_with.setdefault(row.view_id, []).append(teams[row.team_id])
    return [{"name": v.name, "sharing": v.sharing, "teams": sorted(shared_with.get(v.id, [])),
             "filters": list(v.filters), "sort": v.sort,
             "owner": emails.get(v.owner_user_id) if v.owner_user_id else None} for v in views]


def _automation_doc(row: PipelineAutomation | None, status_names: dict[int, str]) -> dict[str, Any]:
    if row is None:
        row = PipelineAutomation(email_sent_enabled=True, customer_replied_enabled=True, action_sources=[])
    return {
        "email_sent": {"enabled": row.email_sent_enabled, "status": status_names.get(row.email_sent_status_id)},
        "customer_replied": {"enabled": row.customer_replied_enabled,
                             "status": status_names.get(row.customer_replied_status_id)},
        "action_sources": sorted(row.action_sources or []),
    }


def _action_doc(action: StatusAction, template_keys: dict[int, str], emails: dict[int, str],
                teams: dict[int, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": action.kind}
    if action.kind == SEND_EMAIL:
        entry["template"] = template_keys.get(action.template_id)
    else:
        recipient: dict[str, Any] = {"kind": action.recipient_kind}
        if action.recipient_kind == TO_USER:
            recipient["user"] = emails.get(action.recipient_id)
        elif action.recipient_kind == TO_TEAM:
            recipient["team"] = teams.get(action.recipient_id)
        entry["recipient"] = recipient
    entry["comment"] = action.comment
    return entry
