"""Admin API for pipelines and their statuses: create, rename, reorder, delete, access lists.

Reading is open to every user who may see a pipeline; changing needs the
"edit property settings" permission; access lists are for super admins.
Each change is audited in its own transaction.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of, require_property_settings, require_super_admin
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import SESSIONS, SETTINGS
from frontdesk.api.openapi import answer_object, closed_object, id_list, json_request, json_response, list_of, ref, text
from frontdesk.api.parameters import ID_SCHEMA, MAX_ID, query_id
from frontdesk.api.request_body import int_field, int_list_field, json_body, path_id, text_field
from frontdesk.events import AGENT, Actor
from frontdesk.model import Pipeline, PipelineAccess, PipelineAutomation, Status, Team, User
from frontdesk.tickets.access import pipeline_visibility, visible_pipeline
from frontdesk.tickets.audit import record_audit, snapshot
from frontdesk.tickets.pipelines import (
    check_status_balance,
    check_status_order,
    enforce_pipeline_cap,
    next_position,
    refuse_internal_name_change,
    refuse_pipeline_with_channels,
    refuse_pipeline_with_tickets,
    remove_status,
    reorder_visible,
    unique_internal_name,
    valid_internal_name,
)

routes = web.RouteTableDef()

PIPELINE_FIELDS = ("id", "name", "internal_name", "position")
STATUS_FIELDS = ("id", "pipeline_id", "label", "internal_name", "position", "is_closed")
OPEN, CLOSED = "open", "closed"


def status_json(status: Status) -> dict[str, Any]:
    return {
        "id": status.id,
        "pipeline_id": status.pipeline_id,
        "label": status.label,
        "internal_name": status.internal_name,
        "position": status.position,
        "state": CLOSED if status.is_closed else OPEN,
    }


async def statuses_of(session: AsyncSession, pipeline_id: int) -> list[Status]:
    return list((await session.scalars(
        select(Status).where(Status.pipeline_id == pipeline_id).order_by(Status.position, Status.id)
    )).all())


async def pipeline_json(session: AsyncSession, pipeline: Pipeline) -> dict[str, Any]:
    access = (await session.scalars(select(PipelineAccess).where(PipelineAccess.pipeline_id == pipeline.id))).all()
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "internal_name": pipeline.internal_name,
        "position": pipeline.position,
        "statuses": [status_json(s) for s in await statuses_of(session, pipeline.id)],
        "access": {
            "restricted": bool(access),
            "user_ids": sorted(a.user_id for a in access if a.user_id is not None),
            "team_ids": sorted(a.team_id for a in access if a.team_id is not None),
        },
    }


def _state(body: dict[str, Any], *, required: bool) -> bool | None:
    state = body.get("state")
    if state is None:
        if required:
            raise ApiError(422, "field_required", "'state' is required: open or closed", field="state")
        return None
    if state not in (OPEN, CLOSED):
        raise ApiError(422, "field_invalid", "'state' must be open or closed", field="state")
    return state == CLOSED


async def _status_in(session: AsyncSession, pipeline: Pipeline, status_id: int) -> Status:
    status = await session.get(Status, status_id)
    if status is None or status.pipeline_id != pipeline.id:
        raise not_found("status")
    return status


async def lock_pipeline(session: AsyncSession, principal, pipeline_id: int) -> Pipeline:  # type: ignore[no-untyped-def]
    """The pipeline, row-locked on PostgreSQL, so concurrent status edits cannot both pass the balance check."""
    pipeline = await visible_pipeline(session, principal, pipeline_id)
    await session.execute(select(Pipeline.id).where(Pipeline.id == pipeline.id).with_for_update())
    return pipeline


async def add_status(session: AsyncSession, pipeline: Pipeline, label: str, closed: bool,
                     internal_name: str | None = None, position: int | None = None) -> Status:
    taken = set((await session.scalars(select(Status.internal_name).where(Status.pipeline_id == pipeline.id))).all())
    if internal_name is not None:
        if not valid_internal_name(internal_name):
            raise ApiError(422, "internal_name_invalid",
                           "an internal name is lowercase letters, digits and underscores", field="internal_name")
        if internal_name in taken:
            raise ApiError(409, "internal_name_taken",
                           f"internal name {internal_name!r} is already used in this pipeline")
    name = internal_name or unique_internal_name(label, taken, fallback="status")
    if position is None:
        position = await next_position(session, Status.position, Status.pipeline_id == pipeline.id)
    status = Status(pipeline_id=pipeline.id, label=label, internal_name=name, position=position, is_closed=closed)
    session.add(status)
    await session.flush()
    return status


# --- pipelines -----------------------------------------------------------------


@routes.get("/api/v1/pipelines")
async def list_pipelines(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS]() as session:
        pipelines = (await session.scalars(
            select(Pipeline).where(pipeline_visibility(principal)).order_by(Pipeline.position, Pipeline.id)
        )).all()
        return web.json_response({"pipelines": [await pipeline_json(session, p) for p in pipelines]})


@routes.get("/api/v1/pipelines/{pipeline_id}")
async def get_pipeline(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with request.app[SESSIONS]() as session:
        pipeline = await visible_pipeline(session, principal, path_id(request, "pipeline_id"))
        return web.json_response(await pipeline_json(session, pipeline))


@routes.post("/api/v1/pipelines")
async def create_pipeline(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    name = text_field(body, "name")
    wanted = text_field(body, "internal_name", required=False, max_length=80)
    statuses = body.get("statuses") or [{"label": "New", "state": OPEN}, {"label": "Closed", "state": CLOSED}]
    if not isinstance(statuses, list) or not all(isinstance(s, dict) for s in statuses):
        raise ApiError(422, "field_invalid", "'statuses' must be a list of {label, state}", field="statuses")
    async with request.app[SESSIONS].begin() as session:
        await enforce_pipeline_cap(session, request.app[SETTINGS].max_pipelines)
        taken = set((await session.scalars(select(Pipeline.internal_name))).all())
        if wanted is not None and (not valid_internal_name(wanted) or wanted in taken):
            raise ApiError(409 if wanted in taken else 422,
                           "internal_name_taken" if wanted in taken else "internal_name_invalid",
                           f"pipeline internal name {wanted!r} is taken or not lowercase letters, digits and _")
        pipeline = Pipeline(
            name=name,
            internal_name=wanted or unique_internal_name(name, taken, fallback="pipeline"),
            position=await next_position(session, Pipeline.position),
        )
        session.add(pipeline)
        await session.flush()
        for spec in statuses:
            await add_status(session, pipeline, text_field(spec, "label"), bool(_state(spec, required=True)),
                             text_field(spec, "internal_name", required=False, max_length=80))
        await check_status_balance(session, pipeline.id)
        session.add(PipelineAutomation(pipeline_id=pipeline.id))
        result = await pipeline_json(session, pipeline)
        record_audit(session, principal, "pipeline.created", "pipeline", pipeline.id, after=result)
    return web.json_response(result, status=201)


@routes.patch("/api/v1/pipelines/{pipeline_id}")
async def update_pipeline(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await visible_pipeline(session, principal, path_id(request, "pipeline_id"))
        before = snapshot(pipeline, PIPELINE_FIELDS)
        if "name" in body:
            pipeline.name = text_field(body, "name")
        if "position" in body:
            pipeline.position = int_field(body, "position", required=True)
        await session.flush()
        record_audit(session, principal, "pipeline.updated", "pipeline", pipeline.id,
                     before=before, after=snapshot(pipeline, PIPELINE_FIELDS))
        result = await pipeline_json(session, pipeline)
    return web.json_response(result)


@routes.post("/api/v1/pipelines/reorder")
async def reorder_pipelines(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    order = int_list_field(await json_body(request), "order")
    async with request.app[SESSIONS].begin() as session:
        pipelines = list((await session.scalars(select(Pipeline))).all())
        visible = set((await session.scalars(select(Pipeline.id).where(pipeline_visibility(principal)))).all())
        shown = [p for p in pipelines if p.id in visible]  # the audit names only what the caller may see
        before = {p.internal_name: p.position for p in shown}
        reorder_visible(pipelines, visible, order)
        record_audit(session, principal, "pipeline.reordered", "pipeline", None, before=before,
                     after={p.internal_name: p.position for p in shown})
    return web.json_response({"order": order})


@routes.delete("/api/v1/pipelines/{pipeline_id}")
async def delete_pipeline(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await visible_pipeline(session, principal, path_id(request, "pipeline_id"))
        await refuse_pipeline_with_tickets(session, pipeline)
        before = await pipeline_json(session, pipeline)
        await remove_pipeline(session, pipeline)
        record_audit(session, principal, "pipeline.deleted", "pipeline", before["id"], before=before)
    return web.Response(status=204)


async def remove_pipeline(session: AsyncSession, pipeline: Pipeline) -> None:
    """Delete an empty pipeline and what hangs off it (statuses, automation, access, stage properties)."""
    await refuse_pipeline_with_channels(session, pipeline)
    await session.execute(delete(Pipeline).where(Pipeline.id == pipeline.id))


# --- access lists --------------------------------------------------------------


@routes.put("/api/v1/pipelines/{pipeline_id}/access")
async def set_pipeline_access(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    body = await json_body(request)
    user_ids = int_list_field(body, "user_ids") if "user_ids" in body else []
    team_ids = int_list_field(body, "team_ids") if "team_ids" in body else []
    async with request.app[SESSIONS].begin() as session:
        pipeline = await visible_pipeline(session, principal, path_id(request, "pipeline_id"))
        before = (await pipeline_json(session, pipeline))["access"]
        await replace_access(session, pipeline, user_ids, team_ids)
        after = (await pipeline_json(session, pipeline))["access"]
        record_audit(session, principal, "pipeline.access_set", "pipeline", pipeline.id, before=before, after=after)
    return web.json_response(after)


async def replace_access(session: AsyncSession, pipeline: Pipeline, user_ids: list[int], team_ids: list[int]) -> None:
    known_users = set((await session.scalars(select(User.id).where(User.id.in_(user_ids)))).all())
    known_teams = set((await session.scalars(select(Team.id).where(Team.id.in_(team_ids)))).all())
    if unknown := sorted(set(user_ids) - known_users):
        raise ApiError(422, "unknown_user", "no such user(s)", user_ids=unknown)
    if unknown := sorted(set(team_ids) - known_teams):
        raise ApiError(422, "unknown_team", "no such team(s)", team_ids=unknown)
    await session.execute(delete(PipelineAccess).where(PipelineAccess.pipeline_id == pipeline.id))
    session.add_all([PipelineAccess(pipeline_id=pipeline.id, user_id=u) for u in sorted(set(user_ids))])
    session.add_all([PipelineAccess(pipeline_id=pipeline.id, team_id=t) for t in sorted(set(team_ids))])
    await session.flush()


# --- statuses --------------------------------------------------------------------


@routes.post("/api/v1/pipelines/{pipeline_id}/statuses")
async def create_status(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    label = text_field(body, "label")
    closed = _state(body, required=True)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await lock_pipeline(session, principal, path_id(request, "pipeline_id"))
        status = await add_status(session, pipeline, label, bool(closed),
                                  text_field(body, "internal_name", required=False, max_length=80))
        if (position := int_field(body, "position")) is not None:
            await _place(session, pipeline, status, position)
        result = status_json(status)
        record_audit(session, principal, "status.created", "status", status.id, after=result)
    return web.json_response(result, status=201)


async def _place(session: AsyncSession, pipeline: Pipeline, status: Status, position: int) -> None:
    ordered = [s for s in await statuses_of(session, pipeline.id) if s.id != status.id]
    ordered.insert(max(0, min(position, len(ordered))), status)
    for index, item in enumerate(ordered):
        item.position = index


@routes.patch("/api/v1/pipelines/{pipeline_id}/statuses/{status_id}")
async def update_status(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    body = await json_body(request)
    refuse_internal_name_change(body)
    async with request.app[SESSIONS].begin() as session:
        pipeline = await lock_pipeline(session, principal, path_id(request, "pipeline_id"))
        status = await _status_in(session, pipeline, path_id(request, "status_id"))
        before = status_json(status)
        if "label" in body:
            status.label = text_field(body, "label")
        closed = _state(body, required=False)
        if closed is not None:
            status.is_closed = closed
        if (position := int_field(body, "position")) is not None:
            await _place(session, pipeline, status, position)
        await check_status_balance(session, pipeline.id)
        result = status_json(status)
        record_audit(session, principal, "status.updated", "status", status.id, before=before, after=result)
    return web.json_response(result)


@routes.post("/api/v1/pipelines/{pipeline_id}/statuses/reorder")
async def reorder_statuses(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    order = int_list_field(await json_body(request), "order")
    async with request.app[SESSIONS].begin() as session:
        pipeline = await lock_pipeline(session, principal, path_id(request, "pipeline_id"))
        statuses = {s.id: s for s in await statuses_of(session, pipeline.id)}
        check_status_order(order, statuses)
        before = [s.internal_name for s in statuses.values()]
        for position, status_id in enumerate(order):
            statuses[status_id].position = position
        after = [statuses[i].internal_name for i in order]
        record_audit(session, principal, "status.reordered", "pipeline", pipeline.id, before={"order": before},
                     after={"order": after})
        result = [status_json(statuses[i]) for i in order]
    return web.json_response({"statuses": result})


@routes.delete("/api/v1/pipelines/{pipeline_id}/statuses/{status_id}")
async def delete_status(request: web.Request) -> web.Response:
    principal = require_property_settings(request)
    target_raw: int | None = query_id(request, "target_status_id")
    if target_raw is None and request.body_exists:
        target_raw = int_field(await json_body(request), "target_status_id")
    async with request.app[SESSIONS].begin() as session:
        pipeline = await lock_pipeline(session, principal, path_id(request, "pipeline_id"))
        status = await _status_in(session, pipeline, path_id(request, "status_id"))
        moved = await remove_status(session, status, target_raw, actor=_actor(principal))
        record_audit(session, principal, "status.deleted", "status", status.id, before=status_json(status),
                     after={"tickets_moved_to": target_raw, "tickets_moved": moved})
    return web.json_response({"deleted": status.id, "tickets_moved": moved})


def _actor(principal) -> Actor:  # type: ignore[no-untyped-def]
    return Actor(AGENT, None if principal.user_id is None else str(principal.user_id))


_ERR = {"description": "error; `error.code` names the broken rule"}
_PID = {"name": "pipeline_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_SID = {"name": "status_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_POSITION = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
_INTERNAL_NAME = text(80, description="Lowercase letters, digits and underscores; generated when absent.")
_STATE = {"enum": [OPEN, CLOSED]}
_NEW_STATUS = closed_object({"label": text(), "state": _STATE, "internal_name": _INTERNAL_NAME}, "label", "state")
_ORDER = closed_object({"order": id_list()}, "order")

STATUS_SCHEMA = answer_object({
    "id": {"type": "integer"}, "pipeline_id": {"type": "integer"}, "label": {"type": "string"},
    "internal_name": {"type": "string"}, "position": {"type": "integer"}, "state": _STATE},
    "id", "pipeline_id", "label", "internal_name", "position", "state")
ACCESS_SCHEMA = answer_object({"restricted": {"type": "boolean"}, "user_ids": {"type": "array", "items": {"type": "integer"}},
                               "team_ids": {"type": "array", "items": {"type": "integer"}}},
                              "restricted", "user_ids", "team_ids")
PIPELINE_SCHEMA = answer_object({
    "id": {"type": "integer"}, "name": {"type": "string"}, "internal_name": {"type": "string"},
    "position": {"type": "integer"}, "statuses": {"type": "array", "items": ref("PipelineStatus")},
    "access": ref("PipelineAccess")}, "id", "name", "internal_name", "position", "statuses", "access")

OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/pipelines": {
        "get": {"summary": "Pipelines the caller may see, with statuses and access lists",
                "responses": {"200": json_response("pipelines", list_of("pipelines", ref("Pipeline")))}},
        "post": {"summary": "Create a pipeline (edit property settings); default statuses New/Closed",
                 "requestBody": json_request(closed_object({
                     "name": text(), "internal_name": _INTERNAL_NAME,
                     "statuses": {"type": "array", "items": _NEW_STATUS}}, "name")),
                 "responses": {"201": json_response("created", ref("Pipeline")), "409": _ERR, "422": _ERR}},
    },
    "/api/v1/pipelines/reorder": {
        "post": {"summary": "Reorder the pipelines the caller can see: `order` lists each of them once "
                            "(422 order_incomplete); an id they cannot see is 404, as if it did not exist",
                 "requestBody": json_request(_ORDER),
                 "responses": {"200": json_response("new order", _ORDER), "404": _ERR, "422": _ERR}}},
    "/api/v1/pipelines/{pipeline_id}": {
        "parameters": [_PID],
        "get": {"summary": "One pipeline",
                "responses": {"200": json_response("pipeline", ref("Pipeline")), "404": _ERR}},
        "patch": {"summary": "Rename or move a pipeline",
                  "requestBody": json_request(closed_object({"name": text(), "position": _POSITION})),
                  "responses": {"200": json_response("pipeline", ref("Pipeline"))}},
        "delete": {"summary": "Delete a pipeline; 409 pipeline_has_tickets with ticket_count while it holds tickets",
                   "responses": {"204": {"description": "deleted"}, "409": _ERR}},
    },
    "/api/v1/pipelines/{pipeline_id}/access": {
        "parameters": [_PID],
        "put": {"summary": "Restrict a pipeline to users and teams (super admin); empty lists lift the restriction",
                "requestBody": json_request(closed_object({"user_ids": id_list(), "team_ids": id_list()})),
                "responses": {"200": json_response("access list", ref("PipelineAccess")), "403": _ERR}},
    },
    "/api/v1/pipelines/{pipeline_id}/statuses": {
        "parameters": [_PID],
        "post": {"summary": "Add a status; its internal name is generated once from the label",
                 "requestBody": json_request(closed_object({
                     "label": text(), "state": _STATE, "internal_name": _INTERNAL_NAME, "position": _POSITION},
                     "label", "state")),
                 "responses": {"201": json_response("status", ref("PipelineStatus")), "409": _ERR}},
    },
    "/api/v1/pipelines/{pipeline_id}/statuses/reorder": {
        "parameters": [_PID],
        "post": {"summary": "Reorder a pipeline's statuses: `order` lists each of its status ids once",
                 "requestBody": json_request(_ORDER),
                 "responses": {"200": json_response("statuses", list_of("statuses", ref("PipelineStatus"))),
                               "422": _ERR}},
    },
    "/api/v1/pipelines/{pipeline_id}/statuses/{status_id}": {
        "parameters": [_PID, _SID],
        "patch": {"summary": "Rename a status, change its state or position (internal name never changes: "
                             "422 internal_name_immutable); 409 pipeline_needs_open_and_closed_status",
                  "requestBody": json_request(closed_object({
                      "label": text(), "state": _STATE, "position": _POSITION,
                      "internal_name": {"description": "Never changes; sending it is refused."}})),
                  "responses": {"200": json_response("status", ref("PipelineStatus")), "409": _ERR, "422": _ERR}},
        "delete": {"summary": "Delete a status; with tickets, target_status_id (query or body) is required and "
                              "they move in the same transaction, one ticket.status_changed event each",
                   "parameters": [{"name": "target_status_id", "in": "query", "schema": ID_SCHEMA}],
                   "requestBody": json_request(closed_object({"target_status_id": ID_SCHEMA}), required=False),
                   "responses": {"200": json_response("deleted", answer_object(
                       {"deleted": {"type": "integer"}, "tickets_moved": {"type": "integer"}},
                       "deleted", "tickets_moved")), "409": _ERR,
                   "422": {"description": "target_status_invalid: not another status of the same pipeline"}}},
    },
}, "components": {"schemas": {"Pipeline": PIPELINE_SCHEMA, "PipelineStatus": STATUS_SCHEMA,
                              "PipelineAccess": ACCESS_SCHEMA}}}
