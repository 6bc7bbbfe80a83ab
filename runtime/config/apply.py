"""Apply: make the database match a configuration document, in one transaction, through the domain rules.

Every invariant of the admin API runs (a pipeline keeps an open and a
closed status, statuses and pipelines holding tickets are not deleted,
stage properties are settable, the pipeline cap); any broken rule refuses
the whole file and changes nothing.  Applying the same file twice changes
nothing the second time.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model import (
    Channel,
    Conversation,
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
from frontdesk.model.access import SUPER_ADMIN
from frontdesk.model.inboxes import CONVERSATIONS
from frontdesk.model.automation import SEND_EMAIL, TO_TEAM, TO_USER
from frontdesk.model.comments import SHARED
from frontdesk.model.views import PRIVATE
from frontdesk.outbound.email.render import check_template_syntax
from frontdesk.runtime.config.document import ConfigApplyError, dump_config
from frontdesk.runtime.config.export import export_config
from frontdesk.runtime.config.normalize import normalize
from frontdesk.runtime.config.sla import apply_sla
from frontdesk.tickets.access import Principal
from frontdesk.tickets.audit import record_audit
from frontdesk.tickets.automation_settings import OPT_IN_SOURCES, check_action_sources
from frontdesk.tickets.errors import Conflict, DomainError
from frontdesk.tickets.pipelines import check_status_balance, status_deletion_target, ticket_count, valid_internal_name
from frontdesk.tickets.filters import parse_filters
from frontdesk.tickets.properties import all_properties, check_definition
from frontdesk.tickets.snippets import check_shortcut
from frontdesk.tickets.stage_properties import check_stage_list, replace_stage_properties


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    diff: str


def render_diff(current: dict[str, Any], desired: dict[str, Any]) -> str:
    before = dump_config(current, "yaml").splitlines(keepends=True)
    after = dump_config(desired, "yaml").splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, "current", "file"))


async def apply_config(
    sessions: async_sessionmaker[AsyncSession],
    raw: dict[str, Any],
    *,
    max_pipelines: int,
    max_custom_views: int | None = None,
    dry_run: bool = False,
    actor: str = "frontdesk config apply",
) -> ApplyResult:
    """Make the database match ``raw``, all or nothing; returns whether anything changed and the diff."""
    desired = normalize(raw)
    if len(desired["pipelines"]) > max_pipelines:
        raise ConfigApplyError("pipeline_limit_reached", f"this installation allows at most {max_pipelines} pipelines")
    async with sessions.begin() as session:
        current = await export_config(session)
        if current == desired:
            return ApplyResult(changed=False, diff="")
        diff = render_diff(current, desired)
        if dry_run:
            return ApplyResult(changed=True, diff=diff)
        principal = Principal(user_id=None, role=SUPER_ADMIN, label=actor)
        try:
            await _Applier(session, desired, max_custom_views).run()
            await apply_sla(session, principal, desired["sla"])
        except DomainError as error:
            raise ConfigApplyError(error.code, error.message) from None
        after = await export_config(session)
        if after != desired:
            # A bug, not a user error: refuse rather than leave a half-matching state.
            raise ConfigApplyError("apply_did_not_converge", render_diff(after, desired))
        record_audit(session, principal, "config.applied", "config",
                     None, before=current, after=desired)
    return ApplyResult(changed=True, diff=diff)


class _Applier:
    """One apply run: the steps in dependency order, each by stable names."""

    def __init__(self, session: AsyncSession, doc: dict[str, Any], max_custom_views: int | None = None) -> None:
        self.session = session
        self.doc = doc
        self.max_custom_views = max_custom_views

    async def run(self) -> None:
        await self.teams()
        await self.users()
        await self.properties()
        await self.templates()
        await self.pipelines()
        await self.channels()
        await self.snippets()
        await self.views()
        await self.inboxes()
        await self.drop_pipelines()
        await self.drop_unused_templates()
        await self.drop_teams()

    async def teams(self) -> None:
        existing = {t.name: t for t in (await self.session.scalars(select(Team))).all()}
        for name in self.doc["teams"]:
            if name not in existing:
                self.session.add(Team(name=name))
        await self.session.flush()
        self.team_ids = {t.name: t.id for t in (await self.session.scalars(select(Team))).all()}

    def team_id(self, name: str | None, where: str) -> int | None:
        if name is None:
            return None
        if name not in self.team_ids or name not in self.doc["teams"]:
            raise ConfigApplyError("unknown_team", f"{where}: team {name!r} is not in the file's teams")
        return self.team_ids[name]

    async def users(self) -> None:
        existing = {u.email: u for u in (await self.session.scalars(select(User))).all()}
        wanted = {u["email"] for u in self.doc["users"]}
        for email, user in existing.items():
            if email not in wanted and user.is_active:
                user.is_active = False  # users are deactivated, never deleted: tickets and audit name them
        for spec in self.doc["users"]:
            user = existing.get(spec["email"])
            if user is None:
                user = User(email=spec["email"])
                self.session.add(user)
            user.name, user.role = spec["name"], spec["role"]
            user.ticket_access, user.sees_unassigned, user.is_active = spec["ticket_access"], spec["sees_unassigned"], True
            user.can_manage_views = spec["can_manage_views"]
            user.account_access = spec["account_access"]
            user.primary_team_id = self.team_id(spec["primary_team"], f"user {spec['email']}")
            await self.session.flush()
            teams = {self.team_id(t, f"user {spec['email']}") for t in spec["teams"]}
            if user.primary_team_id is not None:
                teams.add(user.primary_team_id)
            await self.session.execute(delete(TeamMembership).where(TeamMembership.user_id == user.id))
            self.session.add_all([TeamMembership(user_id=user.id, team_id=t) for t in sorted(teams)])
        await self.session.flush()
        self.user_ids = {u.email: u.id for u in (await self.session.scalars(select(User))).all()}

    def user_id(self, email: str, where: str) -> int:
        if email not in {u["email"] for u in self.doc["users"]}:
            raise ConfigApplyError("unknown_user", f"{where}: user {email!r} is not in the file's users")
        return self.user_ids[email]

    async def properties(self) -> None:
        existing = {p.name: p for p in (await self.session.scalars(select(PropertyDefinition))).all()}
        wanted = {p["name"] for p in self.doc["properties"]}
        for name, definition in existing.items():
            if name not in wanted:
                await self.session.execute(delete(StageProperty).where(StageProperty.property_name == name))
                await self.session.delete(definition)
        for spec in self.doc["properties"]:
            options = check_definition(spec["name"], spec["type"], spec["options"])
            definition = existing.get(spec["name"])
            if definition is None:
                definition = PropertyDefinition(name=spec["name"], type=spec["type"])
                self.session.add(definition)
            elif definition.type != spec["type"]:
                raise ConfigApplyError("property_type_immutable",
                                       f"property {spec['name']!r} is a {definition.type}; its type never changes")
            definition.label, definition.options = spec["label"], options
            definition.read_only, definition.calculated = spec["read_only"], spec["calculated"]
        await self.session.flush()

    async def templates(self) -> None:
        existing = {t.key: t for t in (await self.session.scalars(select(EmailTemplate))).all()}
        for spec in self.doc["templates"]:
            if not valid_internal_name(spec["key"]):
                raise ConfigApplyError("template_key_invalid", f"template key {spec['key']!r} is not valid")
            for field in ("subject", "body_text", "body_html"):
                check_template_syntax(f"template {spec['key']} {field}", spec[field])
            template = existing.get(spec["key"])
            if template is None:
                template = EmailTemplate(key=spec["key"])
                self.session.add(template)
            for field in ("name", "subject", "body_text", "body_html", "transactional"):
                setattr(template, field, spec[field])
        await self.session.flush()
        self.template_ids = {t.key: t.id for t in (await self.session.scalars(select(EmailTemplate))).all()}

    async def pipelines(self) -> None:
        existing = {p.internal_name: p for p in (await self.session.scalars(select(Pipeline))).all()}
        for position, spec in enumerate(self.doc["pipelines"]):
            pipeline = existing.get(spec["internal_name"])
            if pipeline is None:
                pipeline = Pipeline(internal_name=spec["internal_name"])
                self.session.add(pipeline)
            pipeline.name, pipeline.position = spec["name"], position
            await self.session.flush()
            statuses = await self.statuses(pipeline, spec)
            await self.access(pipeline, spec)
            await self.automation(pipeline, spec, statuses)

    async def drop_pipelines(self) -> None:
        """Pipelines not in the file go, unless they hold tickets (channels were repointed already)."""
        wanted = {p["internal_name"] for p in self.doc["pipelines"]}
        for pipeline in (await self.session.scalars(select(Pipeline))).all():
            if pipeline.internal_name in wanted:
                continue
            count = await ticket_count(self.session, pipeline_id=pipeline.id)
            if count:
                raise ConfigApplyError("pipeline_has_tickets", f"pipeline {pipeline.internal_name!r} is not in the "
                                       f"file but holds {count} ticket(s); move or delete them first")
            await self.session.execute(delete(Pipeline).where(Pipeline.id == pipeline.id))
        await self.session.flush()

    async def statuses(self, pipeline: Pipeline, spec: dict[str, Any]) -> dict[str, Status]:
        existing = {s.internal_name: s for s in (await self.session.scalars(
            select(Status).where(Status.pipeline_id == pipeline.id))).all()}
        wanted = {s["internal_name"] for s in spec["statuses"]}
        for name, status in existing.items():
            if name not in wanted:
                try:
                    await status_deletion_target(self.session, status, None)  # the file names no target
                except Conflict as error:
                    raise ConfigApplyError(
                        error.code,
                        f"status {name!r} of pipeline {pipeline.internal_name!r} is not in the file but holds "
                        f"{error.details['ticket_count']} ticket(s); move them first (bulk move)") from None
                await self.session.execute(delete(Status).where(Status.id == status.id))
        by_name: dict[str, Status] = {}
        for position, entry in enumerate(spec["statuses"]):
            status = existing.get(entry["internal_name"])
            if status is None:
                status = Status(pipeline_id=pipeline.id, internal_name=entry["internal_name"])
                self.session.add(status)
            status.label, status.position = entry["label"], position
            status.is_closed = entry["state"] == "closed"
            by_name[entry["internal_name"]] = status
        await self.session.flush()
        await check_status_balance(self.session, pipeline.id)
        for entry in spec["statuses"]:
            status = by_name[entry["internal_name"]]
            stage = await check_stage_list(self.session, entry["properties"])
            await replace_stage_properties(self.session, status.id, stage)
            await self.actions(status, entry["actions"], f"pipeline {pipeline.internal_name} status {status.internal_name}")
        return by_name

    async def actions(self, status: Status, entries: list[dict[str, Any]], where: str) -> None:
        rows = []
        for position, entry in enumerate(entries):
            row = StatusAction(status_id=status.id, position=position, kind=entry["kind"], comment=entry["comment"])
            if entry["kind"] == SEND_EMAIL:
                if entry["template"] not in {t["key"] for t in self.doc["templates"]}:
                    raise ConfigApplyError("unknown_template", f"{where}: template {entry['template']!r} is not in the file")
                row.template_id = self.template_ids[entry["template"]]
            else:
                recipient = entry["recipient"]
                row.recipient_kind = recipient["kind"]
                if recipient["kind"] == TO_USER:
                    row.recipient_id = self.user_id(recipient["user"], where)
                elif recipient["kind"] == TO_TEAM:
                    row.recipient_id = self.team_id(recipient["team"], where)
            rows.append(row)
        current = (await self.session.scalars(
            select(StatusAction).where(StatusAction.status_id == status.id)
            .order_by(StatusAction.position, StatusAction.id))).all()
        fields = ("kind", "template_id", "recipient_kind", "recipient_id", "comment")
        if [tuple(getattr(a, f) for f in fields) for a in current] == [tuple(getattr(a, f) for f in fields) for a in rows]:
            return  # unchanged chains keep their ids
        await self.session.execute(delete(StatusAction).where(StatusAction.status_id == status.id))
        self.session.add_all(rows)
        await self.session.flush()

    async def access(self, pipeline: Pipeline, spec: dict[str, Any]) -> None:
        where = f"pipeline {pipeline.internal_name} access"
        users = {self.user_id(email, where) for email in spec["access"]["users"]}
        teams = {self.team_id(name, where) for name in spec["access"]["teams"]}
        current = (await self.session.scalars(select(PipelineAccess).where(PipelineAccess.pipeline_id == pipeline.id))).all()
        if {a.user_id for a in current if a.user_id} == users and {a.team_id for a in current if a.team_id} == teams:
            return
        await self.session.execute(delete(PipelineAccess).where(PipelineAccess.pipeline_id == pipeline.id))
        self.session.add_all([PipelineAccess(pipeline_id=pipeline.id, user_id=u) for u in sorted(users)])
        self.session.add_all([PipelineAccess(pipeline_id=pipeline.id, team_id=t) for t in sorted(teams)])  # type: ignore[arg-type]
        await self.session.flush()

    async def automation(self, pipeline: Pipeline, spec: dict[str, Any], statuses: dict[str, Status]) -> None:
        settings = spec["automation"]
        row = await self.session.get(PipelineAutomation, pipeline.id)
        if row is None:
            row = PipelineAutomation(pipeline_id=pipeline.id)
            self.session.add(row)
        for trigger in ("email_sent", "customer_replied"):
            target = settings[trigger]["status"]
            if target is not None and target not in statuses:
                raise ConfigApplyError("trigger_status_outside_pipeline",
                                       f"pipeline {pipeline.internal_name}: the {trigger} trigger names status "
                                       f"{target!r}, which is not one of its statuses")
            setattr(row, f"{trigger}_enabled", settings[trigger]["enabled"])
            setattr(row, f"{trigger}_status_id", statuses[target].id if target else None)
        if any(s not in OPT_IN_SOURCES for s in settings["action_sources"]):
            check_action_sources(settings["action_sources"])
        row.action_sources = sorted(settings["action_sources"])
        await self.session.flush()

    async def channels(self) -> None:
        pipelines = {p.internal_name: p.id for p in (await self.session.scalars(select(Pipeline))).all()}
        existing = {(c.kind, c.key): c for c in (await self.session.scalars(select(Channel))).all()}
        for spec in self.doc["channels"]:
            if spec["pipeline"] not in pipelines:
                raise ConfigApplyError("unknown_pipeline",
                                       f"channel {spec['key']}: pipeline {spec['pipeline']!r} is not in the file")
            channel = existing.pop((spec["kind"], spec["key"]), None)
            if channel is None:
                channel = Channel(kind=spec["kind"], key=spec["key"], options={})
                self.session.add(channel)
            channel.name, channel.create_tickets, channel.enabled = spec["name"], spec["create_tickets"], spec["enabled"]
            channel.pipeline_id = pipelines[spec["pipeline"]]
        for channel in existing.values():
            raise ConfigApplyError("channel_not_in_file",
                                   f"{channel.kind} channel {channel.key!r} is connected but not in the file; "
                                   "channels are disconnected in the settings, not by config apply")
        await self.session.flush()

    async def snippets(self) -> None:
        """The shared snippets, by shortcut; private ones are their owners' and never touched."""
        existing = {s.shortcut: s for s in (await self.session.scalars(
            select(Snippet).where(Snippet.scope == SHARED))).all()}
        for spec in self.doc["snippets"]:
            check_shortcut(spec["shortcut"])
            check_template_syntax(f"snippet {spec['shortcut']} body", spec["body"])
            snippet = existing.pop(spec["shortcut"], None)
            if snippet is None:
                snippet = Snippet(scope=SHARED, shortcut=spec["shortcut"])
                self.session.add(snippet)
            snippet.name, snippet.body = spec["name"], spec["body"]
        for gone in existing.values():
            await self.session.delete(gone)
        await self.session.flush()

    async def views(self) -> None:
        """Shared views by name: created, changed, or (no longer in the file) deleted; private views untouched."""
        existing = {v.name: v for v in (await self.session.scalars(
            select(TicketView).where(TicketView.sharing != PRIVATE).order_by(TicketView.id))).all()}
        wanted = {v["name"] for v in self.doc["views"]}
        for name, view in existing.items():
            if name not in wanted:
                await self.session.delete(view)
        registry = await all_properties(self.session)
        for spec in self.doc["views"]:
            where = f"view {spec['name']}"
            parse_filters(spec["filters"], registry)  # a FilterError is a DomainError: refused, named
            view = existing.get(spec["name"]) or TicketView(name=spec["name"])
            self.session.add(view)
            view.sharing, view.filters, view.sort = spec["sharing"], spec["filters"], spec["sort"]
            view.owner_user_id = self.user_id(spec["owner"], where) if spec["owner"] else None
            await self.session.flush()
            await self.session.execute(delete(TicketViewTeam).where(TicketViewTeam.view_id == view.id))
            self.session.add_all([TicketViewTeam(view_id=view.id, team_id=self.team_id(t, where))  # type: ignore[arg-type]
                                  for t in spec["teams"]])
        await self.session.flush()
        count = await self.session.scalar(select(func.count(TicketView.id)))
        if self.max_custom_views is not None and (count or 0) > self.max_custom_views:
            raise ConfigApplyError("view_limit_reached",
                                   f"this installation allows at most {self.max_custom_views} custom views")

    async def inboxes(self) -> None:
        """Conversations inboxes by key: added, renamed, or dropped when no conversation is in them."""
        existing = {i.key: i for i in (await self.session.scalars(
            select(Inbox).where(Inbox.kind == CONVERSATIONS))).all()}
        for spec in self.doc["inboxes"]:
            inbox = existing.pop(spec["key"], None)
            if inbox is None:
                self.session.add(Inbox(key=spec["key"], name=spec["name"], kind=CONVERSATIONS))
            else:
                inbox.name = spec["name"]
        for inbox in existing.values():
            if await self.session.scalar(select(Conversation.id).where(Conversation.inbox_id == inbox.id).limit(1)):
                raise ConfigApplyError("inbox_in_use", f"inbox {inbox.key!r} holds conversations: move them first")
            await self.session.delete(inbox)
        await self.session.flush()

    async def drop_unused_templates(self) -> None:
        wanted = {t["key"] for t in self.doc["templates"]}
        for template in (await self.session.scalars(select(EmailTemplate))).all():
            if template.key not in wanted:
                await self.session.delete(template)
        await self.session.flush()

    async def drop_teams(self) -> None:
        for team in (await self.session.scalars(select(Team))).all():
            if team.name not in self.doc["teams"]:
                await self.session.delete(team)
        await self.session.flush()
