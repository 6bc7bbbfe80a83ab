"""Declarative configuration: export everything an admin sets up to one YAML or TOML file, and apply it back.

Things are named by stable names (pipeline and status internal names,
emails, team names, template keys, property names), never database ids, so
a file moves between installations.  Secrets and API tokens are never
exported.  ``apply`` is idempotent: it compares the file with what is there,
shows the difference, and changes only that, in one transaction that also
runs every invariant of the admin API (a pipeline keeps an open and a closed
status, statuses and pipelines holding tickets are not deleted, stage
properties are settable, the pipeline cap); any broken rule refuses the
whole file.

The same file applied twice changes nothing the second time.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
import yaml
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.api.audit import record_audit
from frontdesk.api.auth import Principal
from frontdesk.api.automation_settings import ACTION_KINDS, OPT_IN_SOURCES, RECIPIENT_KINDS, check_action_sources
from frontdesk.api.errors import ApiError
from frontdesk.api.pipeline_rules import check_status_balance, ticket_count, valid_internal_name
from frontdesk.api.properties import check_definition, check_stage_list, replace_stage_properties
from frontdesk.api.templates import check_syntax
from frontdesk.model import (
    Channel,
    EmailTemplate,
    Pipeline,
    PipelineAccess,
    PipelineAutomation,
    PropertyDefinition,
    StageProperty,
    Status,
    StatusAction,
    Team,
    TeamMembership,
    User,
)
from frontdesk.model.access import ROLES, SUPER_ADMIN, TICKET_ACCESS
from frontdesk.model.automation import SEND_EMAIL, TO_TEAM, TO_USER
from frontdesk.model.channels import CHANNEL_KINDS

FORMAT_VERSION = 1
SECTIONS = ("teams", "users", "properties", "templates", "pipelines", "channels")


class ConfigApplyError(ValueError):
    """The file breaks a rule; nothing was changed.  ``code`` names the rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    diff: str


# --- export --------------------------------------------------------------------------


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
         "create_tickets": c.create_tickets}
        for c in (await session.scalars(select(Channel).order_by(Channel.kind, Channel.key))).all()
    ]
    return doc


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


# --- files -----------------------------------------------------------------------------


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave such keys out; :func:`normalize` puts them back."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def dump_config(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "toml":
        return tomli_w.dumps(_drop_none(doc))
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    raise ConfigApplyError("format_unknown", f"format must be yaml or toml, not {fmt!r}")


def format_for(path: Path) -> str:
    return "toml" if path.suffix.lower() == ".toml" else "yaml"


def load_config(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        doc = tomllib.loads(text) if format_for(path) == "toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigApplyError("file_unreadable", f"{path}: {error}") from None
    if not isinstance(doc, dict):
        raise ConfigApplyError("file_unreadable", f"{path}: the top level must be a mapping")
    return doc


# --- normalizing a file --------------------------------------------------------------------


def _need(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or mapping.get(key) in (None, ""):
        raise ConfigApplyError("field_required", f"{where}: {key!r} is required")
    return mapping[key]


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigApplyError("field_invalid", f"{where} must be a list")
    return value


def _unique(items: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ConfigApplyError("duplicate_name", f"{what} {item!r} appears twice")
        seen.add(item)


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """The file in exactly the shape :func:`export_config` produces, with defaults filled in."""
    if raw.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ConfigApplyError("version_unsupported", f"this Frontdesk reads format version {FORMAT_VERSION}")
    unknown = set(raw) - set(SECTIONS) - {"version"}
    if unknown:
        raise ConfigApplyError("unknown_section", f"unknown top-level keys: {', '.join(sorted(unknown))}")
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    doc["teams"] = sorted(str(t) for t in _list(raw.get("teams"), "teams"))
    _unique(doc["teams"], "team")
    doc["users"] = []
    for u in _list(raw.get("users"), "users"):
        email = str(_need(u, "email", "user")).lower()
        role = u.get("role", "agent")
        access = u.get("ticket_access", "all")
        if role not in ROLES:
            raise ConfigApplyError("role_invalid", f"user {email}: role must be one of {', '.join(ROLES)}")
        if access not in TICKET_ACCESS:
            raise ConfigApplyError("ticket_access_invalid", f"user {email}: ticket_access is one of {TICKET_ACCESS}")
        primary = u.get("primary_team")
        doc["users"].append({
            "email": email, "name": str(u.get("name") or email.split("@")[0]), "role": role,
            "primary_team": primary,
            "teams": sorted(t for t in set(_list(u.get("teams"), f"user {email} teams")) if t != primary),
            "ticket_access": access, "sees_unassigned": bool(u.get("sees_unassigned", False)),
        })
    doc["users"].sort(key=lambda u: u["email"])
    _unique([u["email"] for u in doc["users"]], "user")
    doc["properties"] = []
    for p in _list(raw.get("properties"), "properties"):
        name = _need(p, "name", "property")
        doc["properties"].append({
            "name": name, "label": p.get("label") or name, "type": _need(p, "type", f"property {name}"),
            "options": list(p.get("options") or []), "read_only": bool(p.get("read_only", False)),
            "calculated": bool(p.get("calculated", False)),
        })
    doc["properties"].sort(key=lambda p: p["name"])
    _unique([p["name"] for p in doc["properties"]], "property")
    doc["templates"] = []
    for t in _list(raw.get("templates"), "templates"):
        key = _need(t, "key", "template")
        doc["templates"].append({
            "key": key, "name": t.get("name") or key, "subject": _need(t, "subject", f"template {key}"),
            "body_text": _need(t, "body_text", f"template {key}"), "body_html": t.get("body_html") or "",
            "transactional": bool(t.get("transactional", True)),
        })
    doc["templates"].sort(key=lambda t: t["key"])
    _unique([t["key"] for t in doc["templates"]], "template")
    doc["pipelines"] = [_normalize_pipeline(p) for p in _list(raw.get("pipelines"), "pipelines")]
    _unique([p["internal_name"] for p in doc["pipelines"]], "pipeline")
    doc["channels"] = []
    for c in _list(raw.get("channels"), "channels"):
        kind = _need(c, "kind", "channel")
        if kind not in CHANNEL_KINDS:
            raise ConfigApplyError("channel_kind_invalid", f"channel kind must be one of {', '.join(CHANNEL_KINDS)}")
        key = str(_need(c, "key", "channel"))
        doc["channels"].append({"kind": kind, "key": key.lower() if kind == "email" else key,
                                "name": c.get("name") or key, "pipeline": _need(c, "pipeline", f"channel {key}"),
                                "create_tickets": bool(c.get("create_tickets", True))})
    doc["channels"].sort(key=lambda c: (c["kind"], c["key"]))
    return doc


def _normalize_pipeline(p: Any) -> dict[str, Any]:
    name = _need(p, "internal_name", "pipeline")
    where = f"pipeline {name}"
    if not valid_internal_name(name):
        raise ConfigApplyError("internal_name_invalid", f"{where}: internal names are lowercase letters, digits, _")
    access = p.get("access") or {}
    automation = p.get("automation") or {}
    statuses = []
    for s in _list(p.get("statuses"), f"{where} statuses"):
        internal = _need(s, "internal_name", f"{where} status")
        if not valid_internal_name(internal):
            raise ConfigApplyError("internal_name_invalid", f"{where} status {internal!r}: not a valid internal name")
        state = s.get("state", "open")
        if state not in ("open", "closed"):
            raise ConfigApplyError("field_invalid", f"{where} status {internal}: state is open or closed")
        statuses.append({
            "internal_name": internal, "label": s.get("label") or internal, "state": state,
            "properties": [
                {"property": e, "required": False} if isinstance(e, str)
                else {"property": _need(e, "property", f"{where} status {internal} property"),
                      "required": bool(e.get("required", False))}
                for e in _list(s.get("properties"), f"{where} status {internal} properties")
            ],
            "actions": [_normalize_action(a, f"{where} status {internal}")
                        for a in _list(s.get("actions"), f"{where} status {internal} actions")],
        })
    _unique([s["internal_name"] for s in statuses], f"{where} status")

    def trigger(key: str) -> dict[str, Any]:
        spec = automation.get(key) or {}
        return {"enabled": bool(spec.get("enabled", True)), "status": spec.get("status")}

    return {
        "internal_name": name,
        "name": p.get("name") or name,
        "access": {"users": sorted(str(u).lower() for u in _list(access.get("users"), f"{where} access users")),
                   "teams": sorted(_list(access.get("teams"), f"{where} access teams"))},
        "automation": {"email_sent": trigger("email_sent"), "customer_replied": trigger("customer_replied"),
                       "action_sources": sorted(_list(automation.get("action_sources"), f"{where} action_sources"))},
        "statuses": statuses,
    }


def _normalize_action(a: Any, where: str) -> dict[str, Any]:
    kind = _need(a, "kind", f"{where} action")
    if kind not in ACTION_KINDS:
        raise ConfigApplyError("action_kind_invalid", f"{where}: action kind is one of {', '.join(ACTION_KINDS)}")
    entry: dict[str, Any] = {"kind": kind}
    if kind == SEND_EMAIL:
        entry["template"] = _need(a, "template", f"{where} send_email action")
    else:
        recipient = _need(a, "recipient", f"{where} notify action")
        rkind = recipient.get("kind") if isinstance(recipient, dict) else None
        if rkind not in RECIPIENT_KINDS:
            raise ConfigApplyError("action_recipient_invalid",
                                   f"{where}: recipient kind is one of {', '.join(RECIPIENT_KINDS)}")
        entry["recipient"] = {"kind": rkind}
        if rkind == TO_USER:
            entry["recipient"]["user"] = str(_need(recipient, "user", f"{where} recipient")).lower()
        elif rkind == TO_TEAM:
            entry["recipient"]["team"] = _need(recipient, "team", f"{where} recipient")
    entry["comment"] = a.get("comment") or None
    return entry


# --- applying --------------------------------------------------------------------------------


def render_diff(current: dict[str, Any], desired: dict[str, Any]) -> str:
    before = dump_config(current, "yaml").splitlines(keepends=True)
    after = dump_config(desired, "yaml").splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, "current", "file"))


async def apply_config(
    sessions: async_sessionmaker[AsyncSession],
    raw: dict[str, Any],
    *,
    max_pipelines: int,
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
        try:
            await _Applier(session, desired).run()
        except ApiError as error:
            raise ConfigApplyError(error.code, error.message) from None
        after = await export_config(session)
        if after != desired:
            # A bug, not a user error: refuse rather than leave a half-matching state.
            raise ConfigApplyError("apply_did_not_converge", render_diff(after, desired))
        record_audit(session, Principal(user_id=None, role=SUPER_ADMIN, label=actor), "config.applied", "config",
                     None, before=current, after=desired)
    return ApplyResult(changed=True, diff=diff)


class _Applier:
    """One apply run: the steps in dependency order, each by stable names."""

    def __init__(self, session: AsyncSession, doc: dict[str, Any]) -> None:
        self.session = session
        self.doc = doc

    async def run(self) -> None:
        await self.teams()
        await self.users()
        await self.properties()
        await self.templates()
        await self.pipelines()
        await self.channels()
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
                check_syntax(f"template {spec['key']} {field}", spec[field])
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
                count = await ticket_count(self.session, status_id=status.id)
                if count:
                    raise ConfigApplyError(
                        "status_has_tickets",
                        f"status {name!r} of pipeline {pipeline.internal_name!r} is not in the file but holds "
                        f"{count} ticket(s); move them first (bulk move)")
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
            channel.name, channel.create_tickets = spec["name"], spec["create_tickets"]
            channel.pipeline_id = pipelines[spec["pipeline"]]
        for channel in existing.values():
            raise ConfigApplyError("channel_not_in_file",
                                   f"{channel.kind} channel {channel.key!r} is connected but not in the file; "
                                   "channels are disconnected in the settings, not by config apply")
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
