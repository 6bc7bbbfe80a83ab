"""Business-time arithmetic against an independent oracle that steps minute by minute.

The oracle knows nothing of the implementation's intervals and offset
bisection: for each UTC minute it asks zoneinfo for the local wall time and
checks the weekday's periods, the holidays and the pauses.  Hypothesis
generates schedules (several periods a day, empty days), zones with DST
(a half-hour shift on Lord Howe), holidays, pauses and start times near the
DST changes; the explicit tests pin the DST edges and the holiday rules.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, given, settings, strategies as st

from frontdesk.tickets.sla.business_time import (
    ALWAYS,
    Schedule,
    add_business_time,
    business_time_between,
)

UTC = timezone.utc
ZONES = ("Europe/Oslo", "America/New_York", "Australia/Lord_Howe", "UTC")
MINUTE = timedelta(minutes=1)
HORIZON_MINUTES = 5 * 24 * 60
OFFICE = ((510, 720), (780, 1020))  # 08:30-12:00, 13:00-17:00
OSLO_OFFICE = Schedule(zone="Europe/Oslo", week=(OFFICE,) * 5 + ((), ()), holiday_country="NO")


def _offset_changes(zone: str, year: int) -> list[datetime]:
    """The instants of ``year`` at which ``zone`` changes offset, found hour by hour, then minute by minute."""
    tz = ZoneInfo(zone)
    found = []
    hour = datetime(year, 1, 1, tzinfo=UTC)
    while hour.year == year:
        later = hour + timedelta(hours=1)
        if hour.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            minute = hour
            while minute.astimezone(tz).utcoffset() == hour.astimezone(tz).utcoffset():
                minute += MINUTE
            found.append(minute)
        hour = later
    return found


CHANGES = {zone: _offset_changes(zone, 2026) or [datetime(2026, 6, 1, tzinfo=UTC)] for zone in ZONES}


def _oracle_open(spec: dict, minute: datetime) -> bool:
    if any(low <= minute and (high is None or minute < high) for low, high in spec["pauses"]):
        return False
    if spec["always"]:
        return True
    local = minute.astimezone(ZoneInfo(spec["zone"]))
    day = local.date()
    if day in spec["added"]:
        return False
    if spec["country"] and day not in spec["removed"] and day in spec["public_holidays"]:
        return False
    wall = local.hour * 60 + local.minute
    return any(start <= wall < end for start, end in spec["week"][day.weekday()])


periods = st.lists(st.tuples(st.integers(0, 1440), st.integers(0, 1440))
                   .map(sorted).filter(lambda p: p[0] < p[1]).map(tuple), max_size=3).map(tuple)


@st.composite
def cases(draw: st.DrawFn) -> dict:
    zone = draw(st.sampled_from(ZONES))
    start = draw(st.sampled_from(CHANGES[zone])) + draw(st.integers(-3 * 1440, 2 * 1440)) * MINUTE
    first_day = start.astimezone(ZoneInfo(zone)).date()
    near_days = st.integers(-1, 6).map(lambda n: first_day + timedelta(days=n))
    pauses = draw(st.lists(st.tuples(st.integers(-600, HORIZON_MINUTES), st.integers(1, 3000) | st.none()),
                           max_size=2))
    return {
        "zone": zone,
        "start": start,
        "always": draw(st.booleans().map(lambda b: b and draw(st.integers(0, 5)) == 0)),
        "week": tuple(draw(periods) for _ in range(7)),
        "country": draw(st.sampled_from([None, "NO", "US"])),
        "added": frozenset(draw(st.lists(near_days, max_size=2))),
        "removed": frozenset(draw(st.lists(near_days, max_size=2))),
        "pauses": [(start + a * MINUTE, None if length is None else start + (a + length) * MINUTE)
                   for a, length in pauses],
        "duration": draw(st.integers(0, 1500)),
        "until": draw(st.integers(0, HORIZON_MINUTES)),
    }


def _schedule(spec: dict) -> Schedule:
    return Schedule(zone=spec["zone"], week=spec["week"], always=spec["always"], holiday_country=spec["country"],
                    added_dates=spec["added"], removed_dates=spec["removed"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_business_time_matches_the_minute_by_minute_oracle(spec: dict) -> None:
    start = spec["start"]
    spec["public_holidays"] = holidays.country_holidays(spec["country"]) if spec["country"] else None
    open_minutes = [_oracle_open(spec, start + n * MINUTE) for n in range(HORIZON_MINUTES)]
    schedule, pauses = _schedule(spec), spec["pauses"]

    until = spec["until"]
    assert business_time_between(schedule, start, start + until * MINUTE, pauses) == sum(open_minutes[:until]) * MINUTE

    due = add_business_time(schedule, start, spec["duration"] * MINUTE, pauses)
    if spec["duration"] == 0:
        assert due == start
        return
    counted = 0
    for n, is_open in enumerate(open_minutes):
        counted += is_open
        if counted == spec["duration"]:
            assert due == start + (n + 1) * MINUTE
            return
    assert due is None or due > start + HORIZON_MINUTES * MINUTE  # beyond what the oracle stepped through


def _oslo(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Oslo"))


def test_a_whole_day_lasts_what_the_wall_clock_says_across_dst() -> None:
    whole_days = Schedule(zone="Europe/Oslo", week=(((0, 1440),),) * 7)
    assert business_time_between(whole_days, _oslo(2026, 3, 29), _oslo(2026, 3, 30)) == timedelta(hours=23)
    assert business_time_between(whole_days, _oslo(2026, 10, 25), _oslo(2026, 10, 26)) == timedelta(hours=25)
    night = Schedule(zone="Europe/Oslo", week=(((60, 240),),) * 7)  # 01:00-04:00 wall time
    assert business_time_between(night, _oslo(2026, 3, 29), _oslo(2026, 3, 30)) == timedelta(hours=2)
    assert business_time_between(night, _oslo(2026, 10, 25), _oslo(2026, 10, 26)) == timedelta(hours=4)


def test_lord_howe_shifts_by_half_an_hour() -> None:
    tz = ZoneInfo("Australia/Lord_Howe")
    early = Schedule(zone="Australia/Lord_Howe", week=(((60, 180),),) * 7)  # 01:00-03:00
    # 4 October 2026, 02:00 becomes 02:30: the period lasts 90 minutes.
    day = datetime(2026, 10, 4, tzinfo=tz)
    assert business_time_between(early, day, day + timedelta(days=1)) == timedelta(minutes=90)
    assert add_business_time(early, day, timedelta(minutes=90)) == datetime(2026, 10, 4, 3, tzinfo=tz)


def test_norwegian_holidays_close_the_office_unless_removed_by_hand() -> None:
    friday_afternoon = _oslo(2027, 5, 14, 16, 30)
    # Monday 17 May is Constitution Day (and Whit Monday): the hour ends on Tuesday.
    assert add_business_time(OSLO_OFFICE, friday_afternoon, timedelta(hours=1)) == _oslo(2027, 5, 18, 9)
    working = Schedule(zone="Europe/Oslo", week=OSLO_OFFICE.week, holiday_country="NO",
                       removed_dates=frozenset({date(2027, 5, 17)}))
    assert add_business_time(working, friday_afternoon, timedelta(hours=1)) == _oslo(2027, 5, 17, 9)
    closed = Schedule(zone="Europe/Oslo", week=OSLO_OFFICE.week, added_dates=frozenset({date(2027, 5, 18)}))
    assert add_business_time(closed, _oslo(2027, 5, 17, 16, 30), timedelta(hours=1)) == _oslo(2027, 5, 19, 9)


def test_the_lunch_break_and_the_weekend_do_not_count() -> None:
    assert add_business_time(OSLO_OFFICE, _oslo(2026, 12, 4, 11, 30), timedelta(hours=1)) == _oslo(2026, 12, 4, 13, 30)
    assert add_business_time(OSLO_OFFICE, _oslo(2026, 12, 4, 16), timedelta(hours=4)) == _oslo(2026, 12, 7, 11, 30)
    assert business_time_between(OSLO_OFFICE, _oslo(2026, 12, 5, 9), _oslo(2026, 12, 6, 18)) == timedelta()


def test_pauses_do_not_count_and_an_open_pause_has_no_due_time() -> None:
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    pause = (start + timedelta(minutes=30), start + timedelta(hours=1))
    assert add_business_time(ALWAYS, start, timedelta(hours=1), [pause]) == start + timedelta(minutes=90)
    assert business_time_between(ALWAYS, start, start + timedelta(hours=2), [pause]) == timedelta(minutes=90)
    assert add_business_time(ALWAYS, start, timedelta(hours=1), [(pause[0], None)]) is None


def test_a_schedule_that_never_opens_has_no_due_time() -> None:
    assert add_business_time(Schedule(zone="Europe/Oslo"), _oslo(2026, 12, 1), timedelta(minutes=1)) is None
