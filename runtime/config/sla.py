"""The ``sla`` section of a configuration file: the SLA settings with teams, pipelines and statuses by name.

The API names them by id; a file names teams by name, pipelines by internal
name and pause statuses as ``pipeline/status``, so it applies to another
installation.  The settings' rules are the domain's (``tickets.sla.settings``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Pipeline, Status, Team
from frontdesk.runtime.config.document import ConfigApplyError
from frontdesk.tickets.access import Principal
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.sla.settings import check_settings
from frontdesk.tickets.sla.store import load_settings, save_settings


def _status_name(value: Any) -> str:
    if not isinstance(value, str) or value.count("/") != 1:
        raise ConfigApplyError("sla_settings_invalid", "sla pause_status_ids are pipeline/status internal names")
    return value


def normalize_sla(raw: Any) -> dict[str, Any]:
    """The section in export's shape, defaults filled in; names are resolved when applied."""
    try:
        return dict(check_settings(raw or {}, team_key=str, status_ref=_status_name).document)
    except DomainError as error:
        raise ConfigApplyError(error.code, f"sla: {error.message}") from None


async def _names(session: AsyncSession) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    teams = {t.id: t.name for t in (await session.scalars(select(Team))).all()}
    pipelines = {p.id: p.internal_name for p in (await session.scalars(select(Pipeline))).all()}
    statuses = {s.id: f"{pipelines[s.pipeline_id]}/{s.internal_name}"
                for s in (await session.scalars(select(Status))).all()}
    return teams, pipelines, statuses


def _renamed(document: dict[str, Any], teams: dict[Any, Any], pipelines: dict[Any, Any],
             statuses: dict[Any, Any], where: str) -> dict[str, Any]:
    """``document`` with its team, pipeline and status references looked up in the given tables."""
    def look(table: dict[Any, Any], key: Any, what: str) -> Any:
        if key not in table:
            raise ConfigApplyError(f"unknown_{what}", f"{where}: no {what} {key!r}")
        return table[key]

    renamed = {**document, "team_hours": {look(teams, k, "team"): v for k, v in document["team_hours"].items()}}
    by = document["targets"]["by"]
    if by in ("team", "pipeline"):
        table = teams if by == "team" else pipelines
        renamed["targets"] = {**document["targets"], **{
            kind: {**spec, "values": dict(sorted((str(look(table, k, by)), v) for k, v in spec["values"].items()))}
            for kind, spec in document["targets"].items() if kind != "by"}}
    if document["pause_status_ids"] is not None:
        renamed["pause_status_ids"] = sorted((look(statuses, s, "status") for s in document["pause_status_ids"]),
                                             key=str)
    renamed["team_hours"] = dict(sorted(renamed["team_hours"].items()))
    return renamed


async def export_sla(session: AsyncSession) -> dict[str, Any]:
    document = dict((await load_settings(session)).document)
    teams, pipelines, statuses = await _names(session)
    as_text = {str(k): v for k, v in teams.items()}
    # A team or status deleted since the settings were saved drops out of the export.
    document["team_hours"] = {k: v for k, v in document["team_hours"].items() if k in as_text}
    if document["pause_status_ids"] is not None:
        document["pause_status_ids"] = [s for s in document["pause_status_ids"] if s in statuses]
    return _renamed(document, as_text, {str(k): v for k, v in pipelines.items()}, statuses, "sla")


async def apply_sla(session: AsyncSession, principal: Principal, section: dict[str, Any]) -> None:
    """Store the file's SLA settings (audited, clocks recomputed) when they differ from the current ones."""
    if section == await export_sla(session):
        return
    teams, pipelines, statuses = await _names(session)
    by_name = [{name: key for key, name in table.items()} for table in (teams, pipelines, statuses)]
    document = _renamed(section, *by_name, "sla")
    await save_settings(session, principal, document)
