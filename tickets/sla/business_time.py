"""Business-time arithmetic: when a schedule is open, how much open time lies between two instants, when a duration ends.

Pure: no I/O, no clock.  Every instant is an aware ``datetime``; results are
in UTC.  A schedule is either 24/7 or weekly working periods in local wall
time of an IANA zone, minus closed dates (a country's public holidays from
the ``holidays`` package, plus dates added by hand, minus dates removed by
hand).  An instant is open when its local wall time falls in a period of a
day that is not closed; so a period crossed by a DST change is as long as
the wall clock says it is not (Europe/Oslo's spring gap makes 02:00-03:00
vanish, its autumn overlap counts 02:00-03:00 twice).  Pause intervals
(``[start, end)``, ``end`` None while still paused) are never open.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import holidays

UTC = timezone.utc
MINUTES_PER_DAY = 24 * 60
# A schedule that opens less than once in this many days is treated as never:
# an SLA due two years out is no due time at all.
SEARCH_HORIZON_DAYS = 2 * 366
# Offset changes are found by bisection to this precision (zone rules change on whole seconds).
_PRECISION = timedelta(seconds=1)

Period = tuple[int, int]  # [start, end) in minutes after local midnight, 0 <= start < end <= 1440
Pause = tuple[datetime, "datetime | None"]


@functools.lru_cache(maxsize=64)
def _public_holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision)


@dataclass(frozen=True)
class Schedule:
    """When SLA time runs: ``always`` (24/7), or ``week[weekday]`` periods (Monday is 0) in ``zone``."""

    zone: str = "UTC"
    week: tuple[tuple[Period, ...], ...] = ((),) * 7
    always: bool = False
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    added_dates: frozenset[date] = field(default_factory=frozenset)  # closed although a working day
    removed_dates: frozenset[date] = field(default_factory=frozenset)  # open although a public holiday

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def is_closed(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a holiday: added by hand, or public and not removed."""
        if day in self.added_dates:
            return True
        if self.holiday_country is None or day in self.removed_dates:
            return False
        return day in _public_holidays(self.holiday_country, self.holiday_subdivision)

    def periods_on(self, day: date) -> tuple[Period, ...]:
        periods = self.week[day.weekday()]
        return () if not periods or self.is_closed(day) else tuple(_union(periods))


ALWAYS = Schedule(always=True)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _constant_offset_spans(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """``[start, end)`` cut where the zone's UTC offset changes, each piece with its offset.

    Bisects in six-hour steps: real zones never change offset twice in six hours.
    """
    step = timedelta(hours=6)
    piece_start, offset = start, _offset(zone, start)
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        if _offset(zone, upper - _PRECISION) != offset:
            low, high = cursor, upper - _PRECISION  # offset(low) == offset, offset(high) differs
            while high - low > _PRECISION:
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    break
                if _offset(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            yield piece_start, high, offset
            piece_start, offset = high, _offset(zone, high)
        cursor = upper
    yield piece_start, end, offset


def _open_on(schedule: Schedule, day: date) -> list[tuple[datetime, datetime]]:
    """The UTC intervals in which ``day``'s local wall clock shows one of its periods."""
    periods = schedule.periods_on(day)
    if not periods:
        return []
    zone = schedule.tzinfo
    midnight = datetime.combine(day, time())  # naive local wall time
    # Every instant whose wall time is on ``day`` lies in this window (UTC offsets are -12 h to +14 h).
    window_start = (midnight - timedelta(hours=15)).replace(tzinfo=UTC)
    window_end = (midnight + timedelta(hours=37)).replace(tzinfo=UTC)
    found: list[tuple[datetime, datetime]] = []
    for span_start, span_end, offset in _constant_offset_spans(zone, window_start, window_end):
        for first, last in periods:
            # In this span wall time is UTC + offset, so the period is one UTC interval.
            low = max(span_start, (midnight + timedelta(minutes=first) - offset).replace(tzinfo=UTC))
            high = min(span_end, (midnight + timedelta(minutes=last) - offset).replace(tzinfo=UTC))
            if low < high:
                found.append((low, high))
    return _union(found)


def _union(intervals: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Sorted, with overlapping or touching intervals merged (instants, or a day's minutes)."""
    merged: list[list[Any]] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [(low, high) for low, high in merged]


def _open_intervals(schedule: Schedule, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The schedule's open UTC intervals from ``start`` on, in order, until the search horizon."""
    if schedule.always:
        yield start, datetime.max.replace(tzinfo=UTC)
        return
    first_day = start.astimezone(schedule.tzinfo).date() - timedelta(days=2)
    pending: list[tuple[datetime, datetime]] = []
    for offset in range(SEARCH_HORIZON_DAYS + 4):
        day = first_day + timedelta(days=offset)
        # Neighbouring days' intervals can touch or (in an overlap) interleave: merge before yielding.
        pending = _union([*pending, *_open_on(schedule, day)])
        # Later days open no earlier than 15 h before their local midnight: what ends before is final.
        settled = (datetime.combine(day + timedelta(days=1), time()) - timedelta(hours=15)).replace(tzinfo=UTC)
        while pending and pending[0][1] < settled:
            low, high = pending.pop(0)
            if high > start:
                yield max(low, start), high
    for low, high in pending:
        if high > start:
            yield max(low, start), high


def _without_pauses(intervals: Iterator[tuple[datetime, datetime]], pauses: Sequence[Pause]
                    ) -> Iterator[tuple[datetime, datetime]]:
    cuts = sorted((low, high or datetime.max.replace(tzinfo=UTC)) for low, high in pauses)
    for low, high in intervals:
        pieces = [(low, high)]
        for cut_low, cut_high in cuts:
            pieces = [piece for a, b in pieces
                      for piece in ((a, min(b, cut_low)), (max(a, cut_high), b)) if piece[0] < piece[1]]
        yield from pieces


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("business time needs aware datetimes")
    return instant.astimezone(UTC)


def business_time_between(schedule: Schedule, start: datetime, end: datetime,
                          pauses: Sequence[Pause] = ()) -> timedelta:
    """The open time in ``[start, end)``, pauses excluded; zero when ``end`` is not after ``start``."""
    start, end = _utc(start), _utc(end)
    total = timedelta()
    if end <= start:
        return total
    for low, high in _without_pauses(_open_intervals(schedule, start), _plain_pauses(pauses)):
        if low >= end:
            break
        total += min(high, end) - low
    return total


def add_business_time(schedule: Schedule, start: datetime, duration: timedelta,
                      pauses: Sequence[Pause] = ()) -> datetime | None:
    """The first instant by which ``duration`` of open time has passed since ``start``.

    None when that never happens: a pause with no end is in the way, or the
    schedule does not open enough within the search horizon.
    """
    start = _utc(start)
    if duration <= timedelta():
        return start
    left = duration
    for low, high in _without_pauses(_open_intervals(schedule, start), _plain_pauses(pauses)):
        if high == datetime.max.replace(tzinfo=UTC):
            return low + left
        if high - low >= left:
            return low + left
        left -= high - low
    return None


def _plain_pauses(pauses: Sequence[Pause]) -> list[Pause]:
    return [(_utc(low), None if high is None else _utc(high)) for low, high in pauses]
