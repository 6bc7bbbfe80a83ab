"""SLA settings in ``frontdesk config``: exported by name, applied to another database, audited, idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_client import status_named, support_pipeline
from frontdesk.model import AuditEntry
from frontdesk.runtime.config import ConfigApplyError, apply_config, export_config
from frontdesk.storage.database import create_engine, session_factory


async def _export(sessions):  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await export_config(session)


async def test_sla_settings_travel_by_name_and_apply_once(api, sessions, settings, empty_database_url):  # type: ignore[no-untyped-def]
    team = await api.ok("POST", "/api/v1/teams", {"name": "Tier 2"}, expect=201)
    waiting = status_named(await support_pipeline(api), "waiting_on_us")
    office = {"mode": "working_hours", "time_zone": "Europe/Oslo",
              "week": {"monday": [["08:30", "12:00"], ["13:00", "17:00"]]}, "holidays": {"country": "NO"}}
    await api.ok("PUT", "/api/v1/sla/settings", {
        "enabled": True, "hours": office, "team_hours": {str(team["id"]): {"mode": "24/7"}},
        "targets": {"by": "team", "first_response": {"minutes": 240, "due_soon_minutes": 30,
                                                      "values": {str(team["id"]): {"enabled": True, "minutes": 60}}}},
        "pause_status_ids": [waiting["id"]]})
    doc = await _export(sessions)
    section = doc["sla"]
    assert section["team_hours"] == {"Tier 2": {"mode": "24/7"}}
    assert section["targets"]["first_response"]["values"] == {"Tier 2": {"enabled": True, "minutes": 60}}
    assert section["pause_status_ids"] == ["support/waiting_on_us"]
    assert section["hours"]["holidays"]["country"] == "NO"

    engine = create_engine(empty_database_url)
    try:
        target = session_factory(engine)
        assert (await apply_config(target, doc, max_pipelines=settings.max_pipelines)).changed
        assert (await _export(target))["sla"] == section
        assert not (await apply_config(target, doc, max_pipelines=settings.max_pipelines)).changed
        async with target() as session:
            actions = (await session.scalars(select(AuditEntry.action))).all()
        assert actions.count("sla.settings_updated") == 1
    finally:
        await engine.dispose()

    doc["sla"]["targets"]["first_response"]["values"] = {"Nobody": {"enabled": True, "minutes": 5}}
    with pytest.raises(ConfigApplyError) as refused:
        await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)
    assert refused.value.code == "unknown_team"
    doc["sla"]["hours"]["time_zone"] = "Nowhere/Else"
    with pytest.raises(ConfigApplyError) as refused:
        await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)
    assert refused.value.code == "sla_settings_invalid"
