"""Admin API for a pipeline's automation: connected channels, status triggers, source filter, action chains.

The workflow worker reads these rows at event time, so a change here takes
effect with no restart.  Changing them needs "edit property settings".
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.parameters import ID_SCHEMA, MAX_ID
from frontdesk.api.auth import Principal, principal_of, require_property_settings
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import answer_object, closed_object, error_response, json_request, json_response, list_of, text
from frontdesk.api.request_body import bool_field, int_field, json_body, path_id, text_field
from frontdesk.model import Channel, EmailTemplate, PipelineAutomation, Status, StatusAction, Team, User
from frontdesk.model.automation import NOTIFY, SEND_EMAIL, TO_OWNER, TO_OWNER_TEAM, TO_TEAM, TO_USER
from frontdesk.model.channels import CHANNEL_KINDS
from frontdesk.tickets.access import visible_pipeline
from frontdesk.tickets.audit import record_audit, snapshot
from frontdesk.tickets.automation_settings import ACTION_KINDS, OPT_IN_SOURCES, RECIPIENT_KINDS, check_action_sources

routes = web.RouteTableDef()

CHANNEL_FIELDS = ("id", "kind", "key", "name", "pipeline_id", "create_tickets", "enabled")


# --- triggers and source filter ------------------------------------------------------


async def automation_row(session: AsyncSession, pipeline_id: int) -> PipelineAutomation:
    row = await session.get(PipelineAutomation, pipeline_id)
    if row is None:  # pipelines made before automation existed get the defaults
        row = PipelineAutomation(pipeline_id=pipeline_id, action_sources=[])
        session.add(row)
        await session.flush()
    return row


def automation_json(row: PipelineAutomation) -> dict[str, Any]:
    return {
        "pipeline_id": row.pipeline_id,
        "email_sent": {"enabled": row.email_sent_enabled, "status_id": row.email_sent_status_id},
        "customer_replied": {"enabled": row.customer_replied_enabled, "status_id": row.customer_replied_status_id},
        "action_sources": list(row.action_sources or []),
    }


async def check_trigger_target(session: AsyncSession, pipeline_id: int, status_id: int | None, trigger: str) -> None:
    if status_id is None:
        return
    status = await session.get(Status, status_id)
    if status is None or status.pipeline_id != pipeline_id:
        raise ApiError(422, "trigger_status_outside_pipeline",
                       f"the {trigger} trigger must target a status of this pipeline", trigger=trigger)


@routes.get("/api/v1/pipelines/{pipeline_id}/automation")
async def get_automation(request: web.Request) -> web.Response:
    async with request.app[SESSIONS].begin() as session:
        pipeline = await visible_pipeline(session, principal_of(request), path_id(request, "pipeline_id"))
        return web.json_response(automation_json(await automation_row(session, pipeline.id)))


@routes.patch("/api/v1/pipelines/{pipeline_id}/automation")
async def update_automation(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await visible_pipeline(session, principal, path_id(request, "pipeline_id"))
        row = await automation_row(session, pipeline.id)
        before = automation_json(row)
        for trigger in ("email_sent", "customer_replied"):
            if trigger not in body:
                continue
            spec = body[trigger]
            if not isinstance(spec, dict):
                raise ApiError(422, "field_invalid", f"{trigger!r} must be {{enabled, status_id}}", field=trigger)
            if "enabled" in spec:
                setattr(row, f"{trigger}_enabled", bool(bool_field(spec, "enabled")))
            if "status_id" in spec:
                status_id = int_field(spec, "status_id")
                await check_trigger_target(session, pipeline.id, status_id, trigger)
                setattr(row, f"{trigger}_status_id", status_id)
        if "action_sources" in body:
            row.action_sources = check_action_sources(body["action_sources"])
        after = automation_json(row)
        record_audit(session, principal, "automation.updated", "pipeline", pipeline.id, before=before, after=after)
    return web.json_response(after)


# --- connected channels ----------------------------------------------------------------


@routes.get("/api/v1/pipelines/{pipeline_id}/channels")
async def list_channels(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        pipeline = await visible_pipeline(session, principal_of(request), path_id(request, "pipeline_id"))
        channels = (await session.scalars(
            select(Channel).where(Channel.pipeline_id == pipeline.id).order_by(Channel.kind, Channel.key)
        )).all()
    return web.json_response({"channels": [snapshot(c, CHANNEL_FIELDS) for c in channels]})


@routes.post("/api/v1/channels")
async def create_channel(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    kind = text_field(body, "kind", max_length=20)
    if kind not in CHANNEL_KINDS:
        raise ApiError(422, "channel_kind_invalid", f"kind must be one of {', '.join(CHANNEL_KINDS)}")
    key = text_field(body, "key", max_length=320)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await visible_pipeline(session, principal, int_field(body, "pipeline_id", required=True))
        if await session.scalar(select(Channel.id).where(Channel.kind == kind, Channel.key == key)):
            raise ApiError(409, "channel_exists", f"a {kind} channel {key!r} exists")
        channel = Channel(kind=kind, key=key.lower() if kind == "email" else key,
                          name=text_field(body, "name", required=False) or key, pipeline_id=pipeline.id,
                          create_tickets=bool(bool_field(body, "create_tickets", True)),
                          enabled=bool(bool_field(body, "enabled", True)), options={})
        session.add(channel)
        await session.flush()
        record_audit(session, principal, "channel.created", "channel", channel.id,
                     after=snapshot(channel, CHANNEL_FIELDS))
    return web.json_response(snapshot(channel, CHANNEL_FIELDS), status=201)


@routes.patch("/api/v1/channels/{channel_id}")
async def update_channel(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        channel = await session.get(Channel, path_id(request, "channel_id"))
        if channel is None:
            raise not_found("channel")
        await visible_pipeline(session, principal, channel.pipeline_id)
        before = snapshot(channel, CHANNEL_FIELDS)
        if "create_tickets" in body:
            channel.create_tickets = bool(bool_field(body, "create_tickets"))
        if "enabled" in body:
            channel.enabled = bool(bool_field(body, "enabled"))
        if "name" in body:
            channel.name = text_field(body, "name")
        if "pipeline_id" in body:
            channel.pipeline_id = (await visible_pipeline(
                session, principal, int_field(body, "pipeline_id", required=True))).id
        after = snapshot(channel, CHANNEL_FIELDS)
        record_audit(session, principal, "channel.updated", "channel", channel.id, before=before, after=after)
    return web.json_response(after)


# --- action chains -----------------------------------------------------------------------


def action_json(action: StatusAction, template_keys: dict[int, str]) -> dict[str, Any]:
    recipient = None
    if action.recipient_kind:
        recipient = {"kind": action.recipient_kind, "id": action.recipient_id}
    return {
        "id": action.id, "status_id": action.status_id, "position": action.position, "kind": action.kind,
        "template_key": template_keys.get(action.template_id) if action.template_id else None,
        "template_id": action.template_id, "recipient": recipient, "comment": action.comment,
    }


async def chain(session: AsyncSession, status_id: int) -> list[StatusAction]:
    return list((await session.scalars(
        select(StatusAction).where(StatusAction.status_id == status_id)
        .order_by(StatusAction.position, StatusAction.id)
    )).all())


async def chain_json(session: AsyncSession, status_id: int) -> list[dict[str, Any]]:
    keys = dict((await session.execute(select(EmailTemplate.id, EmailTemplate.key))).all())
    return [action_json(a, keys) for a in await chain(session, status_id)]


def renumber(actions: list[StatusAction]) -> None:
    for position, action in enumerate(actions):
        action.position = position


async def resolve_action(session: AsyncSession, body: dict[str, Any], current: StatusAction | None = None
                         ) -> dict[str, Any]:
    """Check an action's fields; returns the column values to set."""
    kind = body.get("kind", current.kind if current else None)
    if kind not in ACTION_KINDS:
        raise ApiError(422, "action_kind_invalid", f"kind must be one of {', '.join(ACTION_KINDS)}")
    values: dict[str, Any] = {"kind": kind}
    # A field of the other kind would be silently dropped: refuse it instead.
    foreign = sorted(set(body) & ({"recipient"} if kind == SEND_EMAIL else {"template_key", "template_id"}))
    if foreign:
        raise ApiError(422, "action_field_mismatch", f"a {kind} action has no {', '.join(foreign)}",
                       fields=foreign, kind=kind)
    if "comment" in body:
        comment = body["comment"]
        if comment is not None and not isinstance(comment, str):
            raise ApiError(422, "field_invalid", "'comment' must be a string", field="comment")
        values["comment"] = comment or None
    if kind == SEND_EMAIL:
        template_id = current.template_id if current and current.kind == SEND_EMAIL else None
        if "template_key" in body or "template_id" in body:
            template = await _template(session, body)
            template_id = template.id
        if template_id is None:
            raise ApiError(422, "action_template_required", "a send_email action needs template_key")
        values.update(template_id=template_id, recipient_kind=None, recipient_id=None)
    else:
        recipient = body.get("recipient")
        if recipient is None and current is not None and current.kind == NOTIFY:
            recipient = {"kind": current.recipient_kind, "id": current.recipient_id}
        recipient_kind, recipient_id = await _recipient(session, recipient)
        values.update(template_id=None, recipient_kind=recipient_kind, recipient_id=recipient_id)
    return values


async def _template(session: AsyncSession, body: dict[str, Any]) -> EmailTemplate:
    if "template_key" in body:
        template = await session.scalar(select(EmailTemplate).where(EmailTemplate.key == body["template_key"]))
    else:
        template = await session.get(EmailTemplate, int_field(body, "template_id", required=True))
    if template is None:
        raise ApiError(422, "unknown_template", "no such email template")
    return template


async def _recipient(session: AsyncSession, recipient: Any) -> tuple[str, int | None]:
    if not isinstance(recipient, dict) or recipient.get("kind") not in RECIPIENT_KINDS:
        raise ApiError(422, "action_recipient_invalid",
                       f"a notify action needs recipient.kind, one of {', '.join(RECIPIENT_KINDS)}")
    kind = recipient["kind"]
    if kind in (TO_OWNER, TO_OWNER_TEAM):
        return kind, None
    target_id = recipient.get("id")
    model = User if kind == TO_USER else Team
    # An id beyond the id columns cannot name anything (and PostgreSQL would refuse it).
    if isinstance(target_id, bool) or not isinstance(target_id, int) or not 1 <= target_id <= MAX_ID \
            or await session.get(model, target_id) is None:
        raise ApiError(422, "action_recipient_invalid", f"recipient.id must name an existing {kind}")
    return kind, target_id


async def _status_for(session: AsyncSession, principal: Principal, status_id: int) -> Status:
    status = await session.get(Status, status_id)
    if status is None:
        raise not_found("status")
    await visible_pipeline(session, principal, status.pipeline_id)
    return status


async def _action_for(session: AsyncSession, principal: Principal, action_id: int) -> StatusAction:
    action = await session.get(StatusAction, action_id)
    if action is None:
        raise not_found("action")
    await _status_for(session, principal, action.status_id)
    return action


def _insert(actions: list[StatusAction], action: StatusAction, position: int | None) -> None:
    actions = [a for a in actions if a is not action]
    actions.insert(len(actions) if position is None else max(0, min(position, len(actions))), action)
    renumber(actions)


@routes.get("/api/v1/statuses/{status_id}/actions")
async def list_actions(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        status = await _status_for(session, principal_of(request), path_id(request, "status_id"))
        return web.json_response({"status_id": status.id, "actions": await chain_json(session, status.id)})


@routes.post("/api/v1/statuses/{status_id}/actions")
async def add_action(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        status = await _status_for(session, principal, path_id(request, "status_id"))
        existing = await chain(session, status.id)
        action = StatusAction(status_id=status.id, **await resolve_action(session, body))
        session.add(action)
        _insert(existing, action, int_field(body, "position"))
        await session.flush()
        after = await chain_json(session, status.id)
        record_audit(session, principal, "action.created", "status_action", action.id,
                     after=next(a for a in after if a["id"] == action.id))
    return web.json_response(next(a for a in after if a["id"] == action.id), status=201)


@routes.patch("/api/v1/actions/{action_id}")
async def edit_action(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        action = await _action_for(session, principal, path_id(request, "action_id"))
        keys = dict((await session.execute(select(EmailTemplate.id, EmailTemplate.key))).all())
        before = action_json(action, keys)
        for column, value in (await resolve_action(session, body, action)).items():
            setattr(action, column, value)
        if (position := int_field(body, "position")) is not None:
            _insert(await chain(session, action.status_id), action, position)
        await session.flush()
        after = action_json(action, keys)
        record_audit(session, principal, "action.updated", "status_action", action.id, before=before, after=after)
    return web.json_response(after)


@routes.delete("/api/v1/actions/{action_id}")
async def delete_action(request: web.Request) -> web.Response:
    """Delete "this action" (scope=this, the default) or "this and all after" (scope=this_and_after)."""
    principal = require_property_settings(request)
    scope = request.query.get("scope", "this")
    if scope not in ("this", "this_and_after"):
        raise ApiError(422, "delete_scope_invalid", "scope must be this or this_and_after")
    async with request.app[SESSIONS].begin() as session:
        action = await _action_for(session, principal, path_id(request, "action_id"))
        before = await chain_json(session, action.status_id)
        actions = await chain(session, action.status_id)
        index = actions.index(action)
        doomed = actions[index:] if scope == "this_and_after" else [action]
        await session.execute(delete(StatusAction).where(StatusAction.id.in_([a.id for a in doomed])))
        renumber([a for a in actions if a not in doomed])
        await session.flush()
        after = await chain_json(session, action.status_id)
        record_audit(session, principal, f"action.deleted_{scope}", "status", action.status_id,
                     before={"actions": before}, after={"actions": after})
    return web.json_response({"status_id": action.status_id, "deleted": [a.id for a in doomed], "actions": after})


async def _copy_or_move(request: web.Request, *, move: bool) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request) if request.body_exists else {}
    async with request.app[SESSIONS].begin() as session:
        action = await _action_for(session, principal, path_id(request, "action_id"))
        target_id = int_field(body, "status_id") or action.status_id
        target = await _status_for(session, principal, target_id)
        source_id = action.status_id
        if move:
            renumber([a for a in await chain(session, source_id) if a is not action])
            action.status_id = target.id
            subject = action
        else:
            subject = StatusAction(status_id=target.id, kind=action.kind, template_id=action.template_id,
                                   recipient_kind=action.recipient_kind, recipient_id=action.recipient_id,
                                   comment=action.comment)
            session.add(subject)
        await session.flush()
        target_chain = [a for a in await chain(session, target.id) if a is not subject]
        position = int_field(body, "position")
        if position is None and not move and target.id == source_id:
            position = target_chain.index(action) + 1  # a clone lands right after its original
        _insert(target_chain, subject, position)
        await session.flush()
        result = next(a for a in await chain_json(session, target.id) if a["id"] == subject.id)
        record_audit(session, principal, "action.moved" if move else "action.cloned", "status_action", subject.id,
                     before={"from_action": action.id, "from_status_id": source_id}, after=result)
    return web.json_response(result, status=200 if move else 201)


@routes.post("/api/v1/actions/{action_id}/clone")
async def clone_action(request: web.Request) -> web.Response:
    return await _copy_or_move(request, move=False)


@routes.post("/api/v1/actions/{action_id}/move")
async def move_action(request: web.Request) -> web.Response:
    return await _copy_or_move(request, move=True)


_ERR = {"description": "error; `error.code` names the broken rule"}
_POSITION = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_ID,
             "description": "null or absent: at the end (a new action) or keep the place"}
_COMMENT = {"type": ["string", "null"], "maxLength": 2000}
_RECIPIENT = {"oneOf": [
    closed_object({"kind": {"enum": [TO_USER, TO_TEAM]}, "id": ID_SCHEMA}, "kind", "id"),
    closed_object({"kind": {"enum": [TO_OWNER, TO_OWNER_TEAM]}}, "kind")],
    "x-error": {"code": "action_recipient_invalid"},
    "description": "a user or team by id, or the ticket's owner or owner's team"}
_TEMPLATE = {"template_key": text(100), "template_id": ID_SCHEMA}


def _action_schema(*, kind_required: bool) -> dict[str, Any]:
    """send_email (a template, no recipient) or notify (a recipient, no template): a field of the other is refused."""
    required = ("kind",) if kind_required else ()
    send_email = closed_object({"kind": {"const": SEND_EMAIL}, **_TEMPLATE, "comment": _COMMENT, "position": _POSITION},
                               *required)
    notify = closed_object({"kind": {"const": NOTIFY}, "recipient": _RECIPIENT, "comment": _COMMENT,
                            "position": _POSITION}, *required, *(("recipient",) if kind_required else ()))
    return {"anyOf": [send_email, notify], "x-error": {"code": "action_invalid"}}


_ACTION = answer_object({
    "id": {"type": "integer"}, "status_id": {"type": "integer"}, "position": {"type": "integer"},
    "kind": {"enum": list(ACTION_KINDS)}, "template_key": {"type": ["string", "null"]},
    "template_id": {"type": ["integer", "null"]},
    "recipient": {"oneOf": [answer_object({"kind": {"enum": list(RECIPIENT_KINDS)},
                                           "id": {"type": ["integer", "null"]}}, "kind"), {"type": "null"}]},
    "comment": {"type": ["string", "null"]}}, "id", "status_id", "position", "kind")
_CHAIN = answer_object({"status_id": {"type": "integer"}, "actions": {"type": "array", "items": _ACTION}},
                       "status_id", "actions")
_TRIGGER = closed_object({"enabled": {"type": "boolean"}, "status_id": {"oneOf": [ID_SCHEMA, {"type": "null"}]}})
_AUTOMATION = answer_object({
    "pipeline_id": {"type": "integer"},
    "email_sent": answer_object({"enabled": {"type": "boolean"}, "status_id": {"type": ["integer", "null"]}}),
    "customer_replied": answer_object({"enabled": {"type": "boolean"}, "status_id": {"type": ["integer", "null"]}}),
    "action_sources": {"type": "array", "items": {"type": "string"}}},
    "pipeline_id", "email_sent", "customer_replied", "action_sources")
_CHANNEL = answer_object({
    "id": {"type": "integer"}, "kind": {"enum": list(CHANNEL_KINDS)}, "key": {"type": "string"},
    "name": {"type": "string"}, "pipeline_id": {"type": "integer"}, "create_tickets": {"type": "boolean"},
    "enabled": {"type": "boolean"}}, *CHANNEL_FIELDS)
_CHANNEL_CHANGE = {"create_tickets": {"type": "boolean"}, "enabled": {"type": "boolean"}, "name": text(),
                   "pipeline_id": ID_SCHEMA}
_TARGET = json_request(closed_object({"status_id": ID_SCHEMA, "position": _POSITION}), required=False)
_P = {"name": "pipeline_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_S = {"name": "status_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_A = {"name": "action_id", "in": "path", "required": True, "schema": {"type": "integer"}}

OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/pipelines/{pipeline_id}/automation": {
        "parameters": [_P],
        "get": {"summary": "Status triggers (email sent, customer replied) and the chat/Messenger source filter",
                "responses": {"200": json_response("automation settings", _AUTOMATION)}},
        "patch": {"summary": "Switch triggers on/off, point them at a status, set action_sources",
                  "requestBody": json_request(closed_object({
                      "email_sent": _TRIGGER, "customer_replied": _TRIGGER,
                      "action_sources": {"type": "array", "items": {"enum": list(OPT_IN_SOURCES)},
                                         "x-error": {"code": "action_sources_invalid"}}})),
                  "responses": {"200": json_response("automation settings", _AUTOMATION), "422": _ERR}},
    },
    "/api/v1/pipelines/{pipeline_id}/channels": {
        "parameters": [_P], "get": {"summary": "Connected channels feeding this pipeline",
                                    "responses": {"200": json_response("channels", list_of("channels", _CHANNEL))}}},
    "/api/v1/channels": {"post": {
        "summary": "Connect a channel to a pipeline; an email channel receives mail at once",
        "requestBody": json_request(closed_object({
            **_CHANNEL_CHANGE, "kind": {"enum": list(CHANNEL_KINDS), "x-error": {"code": "channel_kind_invalid"}},
            "key": text(320, description="the address, page id or slug the channel receives on")},
            "kind", "key", "pipeline_id")),
        "responses": {"201": json_response("channel", _CHANNEL), "409": _ERR,
                      "404": {"description": "not_found: pipeline_id names no pipeline the caller may see"}}}},
    "/api/v1/channels/{channel_id}": {
        "parameters": [{"name": "channel_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "patch": {"summary": "Switch ticket creation, enable or disable (a disabled channel receives nothing), "
                             "rename, or point at another pipeline",
                  "requestBody": json_request(closed_object(_CHANNEL_CHANGE)),
                  "responses": {"200": json_response("channel", _CHANNEL)}}},
    "/api/v1/statuses/{status_id}/actions": {
        "parameters": [_S],
        "get": {"summary": "The status's ordered action chain", "responses": {"200": json_response("actions", _CHAIN)}},
        "post": {"summary": "Add an action (send_email with a template, or notify a user, team, owner or owner's team)",
                 "requestBody": json_request(_action_schema(kind_required=True)),
                 "responses": {"201": json_response("action", _ACTION), "422": _ERR}},
    },
    "/api/v1/actions/{action_id}": {
        "parameters": [_A],
        "patch": {"summary": "Edit an action or its comment; fields of the other kind are refused",
                  "requestBody": json_request(_action_schema(kind_required=False)),
                  "responses": {"200": json_response("action", _ACTION), "422": _ERR}},
        "delete": {"summary": "Delete this action, or this and all after it",
                   "parameters": [{"name": "scope", "in": "query", "schema": {"enum": ["this", "this_and_after"]}}],
                   "responses": {"200": json_response("remaining chain", answer_object({
                       "status_id": {"type": "integer"}, "deleted": {"type": "array", "items": {"type": "integer"}},
                       "actions": {"type": "array", "items": _ACTION}}, "status_id", "deleted", "actions")),
                                 "422": error_response("delete_scope_invalid: scope is not this or this_and_after.")}},
    },
    "/api/v1/actions/{action_id}/clone": {"parameters": [_A], "post": {
        "summary": "Clone an action (after itself, or into status_id at position)", "requestBody": _TARGET,
        "responses": {"201": json_response("the clone", _ACTION)}}},
    "/api/v1/actions/{action_id}/move": {"parameters": [_A], "post": {
        "summary": "Move an action to another status (status_id, position)", "requestBody": _TARGET,
        "responses": {"200": json_response("action", _ACTION)}}},
}}
