"""Declarative configuration: export, apply to an empty database, idempotence, refusals, the CLI."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from sqlalchemy import func, select

from admin_client import story_setup
from frontdesk.model import AuditEntry
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.runtime.cli import main as cli_main
from frontdesk.runtime.config import ConfigApplyError, apply_config, export_config


async def _cli(argv):
    # The CLI runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(cli_main, argv)


async def _export(sessions):
    async with sessions() as session:
        return await export_config(session)


async def test_export_names_things_by_stable_names_and_leaks_no_tokens(api, sessions):
    await story_setup(api)
    doc = await _export(sessions)
    text = yaml.safe_dump(doc)
    assert "fdt_" not in text and "token" not in text.replace("ticket", "")
    onsite = next(p for p in doc["pipelines"] if p["internal_name"] == "on_site_service")
    assert [s["internal_name"] for s in onsite["statuses"]] == ["requested", "escalated", "visit_planned",
                                                                "follow_up", "closed"]
    assert onsite["statuses"][2]["label"] == "Technician booked"
    assert onsite["automation"]["customer_replied"] == {"enabled": True, "status": "follow_up"}
    assert onsite["access"] == {"users": ["ada@acme.test"], "teams": ["Field service", "Help desk"]}
    assert onsite["statuses"][1]["actions"] == [{"kind": "notify", "recipient": {"kind": "owner_team"},
                                                 "comment": "Escalations go to the team"}]
    assert onsite["statuses"][4]["properties"][0] == {"property": "resolution", "required": True}
    sam = next(u for u in doc["users"] if u["email"] == "sam@acme.test")
    assert sam["primary_team"] == "Field service" and sam["teams"] == ["Help desk"]


async def test_export_then_apply_on_an_empty_database_gives_the_same_configuration(api, sessions, settings,
                                                                                      empty_database_url):
    await story_setup(api)
    original = await _export(sessions)
    engine = create_engine(empty_database_url)
    try:
        target = session_factory(engine)
        first = await apply_config(target, original, max_pipelines=settings.max_pipelines)
        assert first.changed and "+  internal_name: on_site_service" in first.diff.replace("- internal", "  internal")
        assert await _export(target) == original
        async with target() as session:
            audits = await session.scalar(select(func.count()).select_from(AuditEntry))
        second = await apply_config(target, original, max_pipelines=settings.max_pipelines)
        assert not second.changed and second.diff == ""
        async with target() as session:
            assert await session.scalar(select(func.count()).select_from(AuditEntry)) == audits
    finally:
        await engine.dispose()


async def test_a_disabled_channel_stays_disabled_through_export_and_apply(api, sessions, settings):
    await story_setup(api)
    support = next(p for p in (await api.ok("GET", "/api/v1/pipelines"))["pipelines"] if p["internal_name"] == "support")
    chat = await api.ok("POST", "/api/v1/channels", {"kind": "chat", "key": "website", "pipeline_id": support["id"]},
                        expect=201)
    await api.ok("PATCH", f"/api/v1/channels/{chat['id']}", {"enabled": False})
    doc = await _export(sessions)
    entry = next(c for c in doc["channels"] if c["key"] == "website")
    assert entry["enabled"] is False
    # Applying the exported file changes nothing; switching it on in the file switches the channel on.
    assert not (await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)).changed
    entry["enabled"] = True
    assert "enabled" in (await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)).diff
    channels = (await api.ok("GET", f"/api/v1/pipelines/{support['id']}/channels"))["channels"]
    assert next(c for c in channels if c["key"] == "website")["enabled"] is True


async def test_apply_changes_only_what_differs_and_keeps_internal_names(api, sessions, settings):
    await story_setup(api)
    doc = await _export(sessions)
    onsite = next(p for p in doc["pipelines"] if p["internal_name"] == "on_site_service")
    onsite["statuses"][0]["label"] = "Request received"
    onsite["statuses"].insert(4, {"internal_name": "parts_ordered", "label": "Parts ordered", "state": "open"})
    result = await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)
    assert "+    label: Request received" in result.diff and "parts_ordered" in result.diff
    after = await _export(sessions)
    statuses = next(p for p in after["pipelines"] if p["internal_name"] == "on_site_service")["statuses"]
    assert [s["internal_name"] for s in statuses][:1] == ["requested"]
    assert statuses[0]["label"] == "Request received" and statuses[4]["internal_name"] == "parts_ordered"
    assert not (await apply_config(sessions, doc, max_pipelines=settings.max_pipelines)).changed


@pytest.mark.parametrize("breakage, code", [
    ("no_closed_status", "pipeline_needs_open_and_closed_status"),
    ("status_with_tickets_dropped", "status_has_tickets"),
    ("pipeline_with_tickets_dropped", "pipeline_has_tickets"),
    ("read_only_stage_property", "stage_property_read_only"),
    ("trigger_outside_pipeline", "trigger_status_outside_pipeline"),
    ("unknown_template", "unknown_template"),
    ("too_many_pipelines", "pipeline_limit_reached"),
])
async def test_apply_refuses_a_file_that_breaks_a_rule_and_changes_nothing(api, sessions, settings, breakage, code):
    await api.ok("POST", "/api/v1/tickets", {"name": "Open case", "pipeline": "support", "status": "waiting_on_us"},
                 expect=201)
    doc = await _export(sessions)
    support = doc["pipelines"][0]
    if breakage == "no_closed_status":
        support["statuses"] = [s for s in support["statuses"] if s["state"] == "open"]
    elif breakage == "status_with_tickets_dropped":
        support["statuses"] = [s for s in support["statuses"] if s["internal_name"] != "waiting_on_us"]
    elif breakage == "pipeline_with_tickets_dropped":
        doc["pipelines"].append({**support, "internal_name": "replacement"})
        doc["pipelines"].remove(support)
        for channel in doc["channels"]:
            channel["pipeline"] = "replacement"
    elif breakage == "read_only_stage_property":
        support["statuses"][0]["properties"] = [{"property": "created_at", "required": True}]
    elif breakage == "trigger_outside_pipeline":
        support["automation"]["customer_replied"]["status"] = "nowhere"
    elif breakage == "unknown_template":
        support["statuses"][0]["actions"] = [{"kind": "send_email", "template": "missing"}]
    elif breakage == "too_many_pipelines":
        doc["pipelines"].append({**support, "internal_name": "second"})
    before = await _export(sessions)
    with pytest.raises(ConfigApplyError) as refused:
        await apply_config(sessions, doc, max_pipelines=1 if breakage == "too_many_pipelines" else 20)
    assert refused.value.code == code
    assert await _export(sessions) == before


async def test_cli_export_and_apply_in_toml(api, sessions, settings, empty_database_url, tmp_path, monkeypatch,
                                            capsys):
    await story_setup(api)
    monkeypatch.setenv("FRONTDESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("FRONTDESK_DATABASE_URL", settings.reveal_database_url())
    path = tmp_path / "frontdesk-config.toml"
    assert await _cli(["config", "export", "-o", str(path)]) == 0
    assert "[[pipelines]]" in path.read_text()
    monkeypatch.setenv("FRONTDESK_DATABASE_URL", empty_database_url)
    capsys.readouterr()
    assert await _cli(["config", "apply", "--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "on_site_service" in out and "dry run: nothing changed" in out
    assert await _cli(["config", "apply", str(path)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("applied")
    assert await _cli(["config", "apply", str(path)]) == 0
    assert "no changes" in capsys.readouterr().out
    engine = create_engine(empty_database_url)
    try:
        assert await _export(session_factory(engine)) == await _export(sessions)
    finally:
        await engine.dispose()


async def test_shared_views_are_configuration(sessions, settings):
    doc = await _export(sessions)
    doc["teams"] = ["Help desk"]
    doc["views"] = [
        {"name": "Urgent", "sharing": "teams", "teams": ["Help desk"], "filters": ["priority:in:high,urgent"],
         "sort": "-priority"},
        {"name": "Support", "sharing": "everyone", "filters": ["pipeline:eq:support"]},
    ]
    assert (await apply_config(sessions, doc, max_pipelines=20, max_custom_views=5)).changed
    exported = await _export(sessions)
    assert exported["views"] == [
        {"name": "Support", "sharing": "everyone", "teams": [], "filters": ["pipeline:eq:support"],
         "sort": "-updated_at", "owner": None},
        {"name": "Urgent", "sharing": "teams", "teams": ["Help desk"], "filters": ["priority:in:high,urgent"],
         "sort": "-priority", "owner": None},
    ]
    assert not (await apply_config(sessions, exported, max_pipelines=20, max_custom_views=5)).changed
    with pytest.raises(ConfigApplyError) as refused:
        await apply_config(sessions, {**exported, "views": [{"name": "Bad", "filters": ["priority:eq:extreme"]}]},
                           max_pipelines=20)
    assert refused.value.code == "invalid_filter"
    with pytest.raises(ConfigApplyError) as refused:
        await apply_config(sessions, {**exported, "views": exported["views"] + [{"name": "Third"}]},
                           max_pipelines=20, max_custom_views=2)
    assert refused.value.code == "view_limit_reached"
    assert await _export(sessions) == exported  # nothing changed by a refusal
