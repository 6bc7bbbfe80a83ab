"""SLA clocks on real ticket histories: mail in, agent replies and status moves through the HTTP API, events
handled by the embedded runner.  Also: the settings API (super admins only, audited, running clocks
recomputed after it), and exactly once when events are handled again.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "admin"))
from admin_client import Api, make_user, serve  # type: ignore[import-not-found]  # noqa: E402
from frontdesk.automation.handlers import handle_event
from frontdesk.automation.sla_timers import recompute_stale
from frontdesk.events import DomainEvent
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import AuditEntry, OutboxEvent, SlaClock
from test_end_to_end import customer_mail, envelope  # type: ignore[import-not-found]

pytestmark = pytest.mark.usefixtures("sink")

OFFICE = {"monday": [["08:30", "12:00"], ["13:00", "17:00"]], "tuesday": [["08:30", "17:00"]]}


@pytest.fixture
async def api(mail_settings, sessions, blobs) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    async for base in serve(mail_settings, sessions, blobs):
        async with aiohttp.ClientSession() as http:
            yield Api(http, base)


def sla(first: int | None = 60, next_: int | None = 0, close: int | None = 3 * 24 * 60, **extra: Any) -> dict:
    return {"enabled": True, "hours": {"mode": "24/7"},
            "targets": {"by": None,
                        "first_response": {"minutes": first, "due_soon_minutes": 30},
                        "next_response": {"minutes": next_},
                        "time_to_close": {"minutes": close}}, **extra}


async def clocks(sessions, ticket_id: int) -> list[SlaClock]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return list((await session.scalars(
            select(SlaClock).where(SlaClock.ticket_id == ticket_id).order_by(SlaClock.id))).all())


def by_kind(rows: list[SlaClock]) -> dict[str, list[SlaClock]]:
    found: dict[str, list[SlaClock]] = {}
    for row in rows:
        found.setdefault(row.kind, []).append(row)
    return found


async def test_clocks_follow_a_ticket_through_mail_replies_pauses_and_a_reopen(  # type: ignore[no-untyped-def]
        mail_settings, sessions, blobs, runner, api) -> None:
    await api.ok("PUT", "/api/v1/sla/settings", sla())
    _, agent = await make_user(api, "alice@acme.test")
    ctx = IngestContext(mail_settings, sessions, blobs)

    # The customer writes in: first response and time to close start.
    outcome = await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Printer"), envelope())
    ticket_id = outcome.ticket_id
    await runner.run_until_idle()
    running = by_kind(await clocks(sessions, ticket_id))
    assert sorted(running) == ["first_response", "time_to_close"]
    first = running["first_response"][0]
    assert first.state == "on_track" and first.due_at == first.started_at + timedelta(minutes=60)
    assert first.due_soon_at == first.started_at + timedelta(minutes=30)
    assert first.next_timer_at == first.due_soon_at

    # The agent replies: first response met; the trigger moves the ticket to Waiting on contact (a pause).
    await api.ok("POST", f"/api/v1/tickets/{ticket_id}/replies", {"text": "On our way."}, token=agent, expect=201)
    await runner.run_until_idle()
    rows = by_kind(await clocks(sessions, ticket_id))
    first = rows["first_response"][0]
    assert first.state == "met" and first.stopped_at is not None and 0 <= first.business_seconds < 60
    close = rows["time_to_close"][0]
    assert close.pauses and close.pauses[-1][1] is None, "Waiting on contact pauses the clock"
    assert close.due_at is None and close.next_timer_at is None

    # The customer answers: a next response starts, the ticket is Waiting on us again and the pause ends.
    await ingest_email(ctx, customer_mail(message_id="c2@example.com", subject=f"Re: Printer [#{ticket_id}]",
                                          in_reply_to="<c1@example.com>"), envelope())
    await runner.run_until_idle()
    rows = by_kind(await clocks(sessions, ticket_id))
    [next_response] = rows["next_response"]
    assert next_response.stopped_at is None and next_response.due_at == next_response.started_at
    close = rows["time_to_close"][0]
    assert close.pauses[-1][1] is not None and close.due_at is not None
    # The pause moved the due time later by the paused time.
    paused = close.due_at - (close.started_at + timedelta(days=3))
    assert paused > timedelta(0)

    # A second customer message before any reply does not start another next-response clock.
    await ingest_email(ctx, customer_mail(message_id="c3@example.com", subject=f"Re: Printer [#{ticket_id}]",
                                          in_reply_to="<c1@example.com>"), envelope())
    await runner.run_until_idle()
    assert len(by_kind(await clocks(sessions, ticket_id))["next_response"]) == 1

    # The agent replies late (a zero-minute target): missed.  Then closes: time to close met.
    await api.ok("POST", f"/api/v1/tickets/{ticket_id}/replies", {"text": "Fixed."}, token=agent, expect=201)
    await runner.run_until_idle()
    await api.ok("PATCH", f"/api/v1/tickets/{ticket_id}", {"status": "closed"}, token=agent)
    await runner.run_until_idle()
    rows = by_kind(await clocks(sessions, ticket_id))
    assert rows["next_response"][0].state == "missed"
    assert [c.state for c in rows["time_to_close"]] == ["met"]

    # A reopen starts time to close again, from the reopen.
    await api.ok("PATCH", f"/api/v1/tickets/{ticket_id}", {"status": "waiting_on_us"}, token=agent)
    await runner.run_until_idle()
    rows = by_kind(await clocks(sessions, ticket_id))
    assert [c.state for c in rows["time_to_close"]] == ["met", "on_track"]
    assert rows["time_to_close"][1].started_at > rows["time_to_close"][0].stopped_at - timedelta(seconds=1)

    # Handling every event again changes nothing: each moved the clocks exactly once.
    before = [(c.id, c.state, c.stopped_at, c.pauses) for c in await clocks(sessions, ticket_id)]
    async with sessions() as session:
        bodies = (await session.scalars(select(OutboxEvent.body).order_by(OutboxEvent.id))).all()
    for body in bodies:
        await handle_event(runner.services, DomainEvent.from_dict(body))
    assert [(c.id, c.state, c.stopped_at, c.pauses) for c in await clocks(sessions, ticket_id)] == before


async def test_a_ticket_made_by_hand_has_no_first_response_clock(sessions, runner, api) -> None:  # type: ignore[no-untyped-def]
    await api.ok("PUT", "/api/v1/sla/settings", sla())
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "Call back", "pipeline": "support", "status": "new"}, expect=201)
    await runner.run_until_idle()
    assert [c.kind for c in await clocks(sessions, ticket["id"])] == ["time_to_close"]


async def test_targets_per_priority_with_values_switched_off(sessions, runner, api, mail_settings, blobs) -> None:  # type: ignore[no-untyped-def]
    settings = sla(first=240)
    settings["targets"]["by"] = "priority"
    settings["targets"]["first_response"]["values"] = {"high": {"enabled": True, "minutes": 60},
                                                       "low": {"enabled": False}}
    await api.ok("PUT", "/api/v1/sla/settings", settings)
    made = {}
    for priority in ("high", "low", "medium"):
        ticket = await api.ok("POST", "/api/v1/tickets", {"name": priority, "pipeline": "support", "status": "new", "priority": priority},
                              expect=201)
        made[priority] = ticket["id"]
    ctx = IngestContext(mail_settings, sessions, blobs)
    outcome = await ingest_email(ctx, customer_mail(message_id="p@example.com", subject="p"), envelope())
    await api.ok("PATCH", f"/api/v1/tickets/{outcome.ticket_id}", {"priority": "high"})
    await runner.run_until_idle()
    first = by_kind(await clocks(sessions, outcome.ticket_id))["first_response"][0]
    # Priority became high after the clock started: the running clock takes the high target.
    assert first.target_minutes == 60 and first.due_at == first.started_at + timedelta(minutes=60)
    for priority, ticket_id in made.items():
        close = by_kind(await clocks(sessions, ticket_id))["time_to_close"]
        assert close[0].target_minutes == 3 * 24 * 60, priority


async def test_settings_are_for_super_admins_checked_audited_and_recompute_running_clocks(  # type: ignore[no-untyped-def]
        sessions, runner, api, mail_settings, blobs) -> None:
    _, admin = await make_user(api, "root@acme.test", role="admin")
    status, body = await api.get("/api/v1/sla/settings", token=admin)
    assert (status, body["error"]["code"]) == (403, "super_admin_required")
    status, body = await api.put("/api/v1/sla/settings", sla(), token=admin)
    assert status == 403
    defaults = await api.ok("GET", "/api/v1/sla/settings")
    assert defaults["enabled"] is False and defaults["pause_status_ids"] is None

    for broken, field in (({"hours": {"mode": "working_hours", "time_zone": "Mars/Base", "week": OFFICE}},
                           "hours.time_zone"),
                          ({"hours": {"mode": "working_hours", "time_zone": "UTC", "week": {"monday": [["09:00", "08:00"]]}}},
                           "hours.week.monday"),
                          ({"hours": {"mode": "working_hours", "time_zone": "UTC", "week": OFFICE,
                                      "holidays": {"country": "XX"}}}, "hours.holidays.country"),
                          ({"targets": {"by": "colour"}}, "targets.by"),
                          ({"team_hours": {"999": {"mode": "24/7"}}}, "team_hours"),
                          ({"pause_status_ids": [999999]}, "pause_status_ids")):
        status, body = await api.put("/api/v1/sla/settings", {**sla(), **broken})
        assert (status, body["error"]["code"], body["error"]["field"]) == (422, "sla_settings_invalid", field)

    await api.ok("PUT", "/api/v1/sla/settings", sla(first=None, close=60))
    ticket = await api.ok("POST", "/api/v1/tickets", {"name": "x", "pipeline": "support", "status": "new"}, expect=201)
    await runner.run_until_idle()
    [clock] = await clocks(sessions, ticket["id"])
    assert clock.due_at == clock.started_at + timedelta(minutes=60)

    # Working hours in Oslo, Norway's holidays: the running clock gets a due time on that schedule.
    office = {"mode": "working_hours", "time_zone": "Europe/Oslo", "week": OFFICE,
              "holidays": {"country": "NO", "added": ["2030-01-01"]}}
    saved = await api.ok("PUT", "/api/v1/sla/settings", sla(first=None, close=60, hours=office))
    assert saved["hours"]["week"]["wednesday"] == [] and saved["hours"]["holidays"]["country"] == "NO"
    # The PUT only versions the settings; the timer scanner recomputes running clocks in batches.
    assert await recompute_stale(sessions) == 1
    [clock] = await clocks(sessions, ticket["id"])
    from frontdesk.tickets.sla.business_time import add_business_time
    from frontdesk.tickets.sla.store import load_settings
    async with sessions() as session:
        schedule = (await load_settings(session)).schedule
    assert clock.due_at == add_business_time(schedule, clock.started_at, timedelta(minutes=60))
    async with sessions() as session:
        audits = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "sla.settings_updated"))).all()
        changed = await session.scalar(select(func.count()).select_from(OutboxEvent)
                                       .where(OutboxEvent.type == "sla.settings_changed"))
    assert len(audits) == 2 and audits[-1].after["hours"]["time_zone"] == "Europe/Oslo"
    assert changed == 2

    # Switching SLAs off drops the running clocks.
    await api.ok("PUT", "/api/v1/sla/settings", {**sla(), "enabled": False})
    assert await recompute_stale(sessions) == 1
    assert await clocks(sessions, ticket["id"]) == []


async def test_the_ticket_the_list_and_the_report_show_clocks_within_the_callers_access(  # type: ignore[no-untyped-def]
        sessions, runner, api) -> None:
    settings = sla(first=None, close=30)
    settings["targets"]["by"] = "priority"
    settings["targets"]["time_to_close"]["values"] = {"high": {"enabled": True, "minutes": 60}}
    await api.ok("PUT", "/api/v1/sla/settings", settings)
    owner_id, owner = await make_user(api, "own@acme.test", access="owned")
    mine = await api.ok("POST", "/api/v1/tickets", {"name": "mine", "pipeline": "support", "status": "new",
                                                    "owner_id": owner_id, "priority": "high"}, expect=201)
    other = await api.ok("POST", "/api/v1/tickets", {"name": "other", "pipeline": "support", "status": "new"},
                         expect=201)
    plain = await api.ok("POST", "/api/v1/tickets", {"name": "none", "pipeline": "support", "status": "new"},
                         expect=201)
    await runner.run_until_idle()
    async with sessions.begin() as session:  # "none" has no clock at all
        for clock in (await session.scalars(select(SlaClock).where(SlaClock.ticket_id == plain["id"]))).all():
            await session.delete(clock)

    shown = await api.ok("GET", f"/api/v1/tickets/{mine['id']}", token=owner)
    [clock] = shown["sla"]
    assert (clock["target"], clock["state"], clock["target_minutes"]) == ("time_to_close", "on_track", 60)
    assert clock["due_at"] is not None and clock["business_seconds"] is None
    status, _ = await api.get(f"/api/v1/tickets/{other['id']}", token=owner)
    assert status == 404

    listed = await api.ok("GET", "/api/v1/tickets", params={"sla_state": "on_track", "sort": "sla_due"})
    assert [t["id"] for t in listed["tickets"]] == [other["id"], mine["id"]]
    everything = await api.ok("GET", "/api/v1/tickets", params={"sort": "sla_due"})
    assert [t["id"] for t in everything["tickets"]] == [other["id"], mine["id"], plain["id"]]
    status, body = await api.get("/api/v1/tickets", params={"sla_state": "late"})
    assert (status, body["error"]["parameter"]) == (400, "sla_state")

    for ticket in (mine, other):
        await api.ok("PATCH", f"/api/v1/tickets/{ticket['id']}", {"status": "closed"})
    await runner.run_until_idle()
    report = await api.ok("GET", "/api/v1/sla/report", params={"group_by": "priority"})
    assert [(line["priority"], line["met"], line["missed"], line["percent_met"]) for line in report["targets"]] \
        == [(None, 1, 0, 100.0), ("high", 1, 0, 100.0)]
    own = await api.ok("GET", "/api/v1/sla/report", token=owner)
    [line] = own["targets"]
    assert (line["target"], line["met"], line["missed"]) == ("time_to_close", 1, 0)
    assert line["median_business_seconds"] == line["p90_business_seconds"] < 60
    status, body = await api.get("/api/v1/sla/report", params={"from": "yesterday"})
    assert (status, body["error"]["parameter"]) == (400, "from")
