"""The SLA settings' and clocks' rules on their own: targets per value, team schedules, states on recompute."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.sla import clocks
from frontdesk.tickets.sla.business_time import ALWAYS, Schedule
from frontdesk.tickets.sla.settings import Target, check_settings, team_id_key

START = datetime(2026, 12, 7, 9, tzinfo=timezone.utc)  # a Monday
OFFICE = {"mode": "working_hours", "time_zone": "UTC", "week": {"monday": [["09:00", "17:00"]]}}


def test_targets_per_value_with_values_switched_off_and_a_fallback() -> None:
    settings = check_settings({"enabled": True, "targets": {"by": "source", "first_response": {
        "minutes": 240, "due_soon_minutes": 30,
        "values": {"chat": {"enabled": True, "minutes": 5}, "messenger": {"enabled": False}}}}})
    assert settings.target_for("first_response", {"source": "chat"}) == Target(5, 30)
    assert settings.target_for("first_response", {"source": "messenger"}) is None
    assert settings.target_for("first_response", {"source": "email"}) == Target(240, 30)
    assert settings.target_for("time_to_close", {"source": "email"}) is None  # no minutes: no clock
    off = check_settings({**settings.document, "enabled": False})
    assert off.target_for("first_response", {"source": "chat"}) is None


def test_a_team_has_its_own_schedule_and_unknown_teams_are_refused() -> None:
    settings = check_settings({"hours": OFFICE, "team_hours": {"7": {"mode": "24/7"}}}, team_key=team_id_key({7}))
    assert settings.schedule_for(7) is ALWAYS
    assert settings.schedule_for(8) == settings.schedule == settings.schedule_for(None) != ALWAYS
    with pytest.raises(DomainError) as refused:
        check_settings({"team_hours": {"8": {"mode": "24/7"}}}, team_key=team_id_key({7}))
    assert refused.value.details == {"field": "team_hours"}


def test_recomputing_moves_the_state_with_the_due_time() -> None:
    clock = clocks.new_clock(1, "first_response", Target(60, 30), START, paused=False)
    clocks.reschedule(clock, ALWAYS, START + timedelta(minutes=90))
    assert clock.due_at == START + timedelta(minutes=60) and clock.next_timer_at == clock.due_soon_at
    clock.state = "overdue"  # the scanner fired it
    # The help desk switches to office hours from 09:00: a Monday 09:00 start is still due at 10:00 ...
    office = Schedule(zone="UTC", week=(((540, 1020),),) + ((),) * 6)
    clocks.reschedule(clock, office, START + timedelta(minutes=90))
    assert clock.state == "overdue" and clock.next_timer_at is None
    # ... but a longer target moves the due time past now: no longer overdue, the scanner waits again.
    clocks.retarget(clock, Target(180, 30))
    clocks.reschedule(clock, office, START + timedelta(minutes=90))
    assert (clock.state, clock.due_at, clock.next_timer_at) == ("on_track", START + timedelta(hours=3),
                                                                START + timedelta(minutes=150))


def test_a_paused_clock_has_no_due_time_and_the_pause_does_not_count() -> None:
    clock = clocks.new_clock(1, "time_to_close", Target(60, 0), START, paused=False)
    clocks.pause(clock, START + timedelta(minutes=10))
    clocks.reschedule(clock, ALWAYS, START + timedelta(minutes=20))
    assert clock.due_at is None and clock.next_timer_at is None
    clocks.resume(clock, START + timedelta(minutes=40))
    clocks.reschedule(clock, ALWAYS, START + timedelta(minutes=40))
    assert clock.due_at == START + timedelta(minutes=90) and clock.next_timer_at == clock.due_at
    clocks.stop(clock, ALWAYS, START + timedelta(minutes=100))
    assert (clock.state, clock.business_seconds) == ("missed", 70 * 60)
