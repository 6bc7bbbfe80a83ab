"""The SLA settings' rules: one document, checked into typed settings, and the schedule and target a ticket gets.

The document is what the API shows and takes (``GET/PUT /api/v1/sla/settings``)
and what ``frontdesk config export/apply`` writes and reads, so both accept
and refuse the same settings.  Durations are business minutes; wall times
are ``"HH:MM"`` (``"24:00"`` ends a day).

A target applies to every ticket (``minutes``), or, when ``targets.by``
names a property, per value of it (``values``: each value switched on with
its own minutes, or off); a ticket whose value is not listed gets
``minutes``, and no clock when that is null.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from frontdesk.model.automation import TO_OWNER, TO_OWNER_TEAM
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.sla.business_time import ALWAYS, Schedule

FIRST_RESPONSE = "first_response"
NEXT_RESPONSE = "next_response"
TIME_TO_CLOSE = "time_to_close"
TARGET_KINDS = (FIRST_RESPONSE, NEXT_RESPONSE, TIME_TO_CLOSE)
BY_PROPERTIES = ("priority", "team", "source", "pipeline")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WORKING_HOURS = "working_hours"
ALWAYS_OPEN = "24/7"
MAX_MINUTES = 366 * 24 * 60
_WALL_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")

DEFAULT_DOCUMENT: dict[str, Any] = {
    "enabled": False,
    "hours": {"mode": ALWAYS_OPEN},
    "team_hours": {},
    "targets": {"by": None, **{kind: {"minutes": None, "due_soon_minutes": 0, "values": {}} for kind in TARGET_KINDS}},
    # None: every status named waiting_on_contact.  Closed statuses always stop the clocks for good.
    "pause_status_ids": None,
    # Who gets an internal email when a clock becomes due soon / overdue.
    "notify": {"due_soon": [TO_OWNER], "overdue": [TO_OWNER_TEAM]},
}
NOTIFY_MOMENTS = ("due_soon", "overdue")
NOTIFY_RECIPIENTS = (TO_OWNER, TO_OWNER_TEAM)


@dataclass(frozen=True)
class Target:
    minutes: int
    due_soon_minutes: int

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    @property
    def due_soon_before(self) -> timedelta:
        return timedelta(minutes=self.due_soon_minutes)


@dataclass(frozen=True)
class SlaSettings:
    """Checked settings; ``document`` is their normalized form, as stored and shown."""

    document: Mapping[str, Any]
    schedule: Schedule
    team_schedules: Mapping[int, Schedule]
    version: int = 0  # the stored row's change count (0 for settings not read from the store)

    @property
    def enabled(self) -> bool:
        return bool(self.document["enabled"])

    @property
    def pause_status_ids(self) -> list[int] | None:
        return self.document["pause_status_ids"]

    def schedule_for(self, team_id: int | None) -> Schedule:
        """The team's own schedule for tickets it owns, else the help desk's."""
        return self.team_schedules.get(team_id, self.schedule) if team_id is not None else self.schedule

    def target_for(self, kind: str, values: Mapping[str, Any]) -> Target | None:
        """The ``kind`` target of a ticket whose properties are ``values`` (priority, team, source, pipeline)."""
        spec = self.document["targets"][kind]
        by = self.document["targets"]["by"]
        minutes = spec["minutes"]
        if by is not None and values.get(by) is not None and str(values[by]) in spec["values"]:
            chosen = spec["values"][str(values[by])]
            minutes = chosen["minutes"] if chosen["enabled"] else None
        if not self.enabled or minutes is None:
            return None
        return Target(minutes, spec["due_soon_minutes"])


def settings_invalid(field: str, message: str) -> DomainError:
    return DomainError("sla_settings_invalid", message, field=field)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise settings_invalid(field, f"{field} must be an object")
    return value


def _minutes(value: Any, field: str, *, nullable: bool = True) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MINUTES:
        raise settings_invalid(field, f"{field} must be a whole number of minutes from 0 to {MAX_MINUTES}")
    return value


def _wall_minutes(value: Any, field: str) -> int:
    match = _WALL_TIME.match(value) if isinstance(value, str) else None
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise settings_invalid(field, f"{field} must be a wall time HH:MM from 00:00 to 24:00")
    return int(match.group(1)) * 60 + int(match.group(2))


def _dates(value: Any, field: str) -> list[str]:
    try:
        if not isinstance(value, list):
            raise ValueError
        return sorted({date.fromisoformat(v).isoformat() for v in value})
    except (TypeError, ValueError):
        raise settings_invalid(field, f"{field} must be a list of dates YYYY-MM-DD") from None


def _hours(value: Any, field: str) -> tuple[dict[str, Any], Schedule]:
    spec = _object(value, field)
    mode = spec.get("mode", ALWAYS_OPEN)
    if mode == ALWAYS_OPEN:
        # The schedule is not used around the clock, but what is sent must still be valid.
        holiday_spec = spec.get("holidays") or {}
        if isinstance(holiday_spec, dict):
            _dates(holiday_spec.get("added", []), f"{field}.holidays.added")
            _dates(holiday_spec.get("removed", []), f"{field}.holidays.removed")
        return {"mode": ALWAYS_OPEN}, ALWAYS
    if mode != WORKING_HOURS:
        raise settings_invalid(f"{field}.mode", f"{field}.mode must be {ALWAYS_OPEN!r} or {WORKING_HOURS!r}")
    zone = spec.get("time_zone")
    try:
        if not isinstance(zone, str) or not zone:
            raise ValueError
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError, OSError):
        raise settings_invalid(f"{field}.time_zone", f"{field}.time_zone must be an IANA time zone like Europe/Oslo") from None
    week_spec = _object(spec.get("week", {}), f"{field}.week")
    if unknown := set(week_spec) - set(WEEKDAYS):
        raise settings_invalid(f"{field}.week", f"{field}.week has unknown days: {', '.join(sorted(unknown))}")
    week_doc: dict[str, list[list[str]]] = {}
    week: list[tuple[tuple[int, int], ...]] = []
    for day in WEEKDAYS:
        periods = week_spec.get(day, [])
        where = f"{field}.week.{day}"
        if not isinstance(periods, list):
            raise settings_invalid(where, f"{where} must be a list of [start, end] wall times")
        parsed = []
        for period in periods:
            if not isinstance(period, list) or len(period) != 2:
                raise settings_invalid(where, f"{where} must be a list of [start, end] wall times")
            start, end = _wall_minutes(period[0], where), _wall_minutes(period[1], where)
            if start >= end:
                raise settings_invalid(where, f"{where}: a period must end after it starts")
            parsed.append((start, end))
        parsed.sort()
        if any(a[1] > b[0] for a, b in zip(parsed, parsed[1:])):
            raise settings_invalid(where, f"{where}: periods overlap")
        week.append(tuple(parsed))
        week_doc[day] = [[f"{s // 60:02d}:{s % 60:02d}", f"{e // 60:02d}:{e % 60:02d}"] for s, e in parsed]
    if not any(week):
        raise settings_invalid(f"{field}.week", f"{field}.week needs at least one working period")
    holiday_spec = _object(spec.get("holidays", {}), f"{field}.holidays")
    country, subdivision = holiday_spec.get("country"), holiday_spec.get("subdivision")
    if country is not None:
        supported = holidays.list_supported_countries()
        if not isinstance(country, str) or country not in supported:
            raise settings_invalid(f"{field}.holidays.country", "holidays.country must be an ISO 3166 code the "
                                                        "holidays package supports, like NO")
        if subdivision is not None and (not isinstance(subdivision, str) or subdivision not in supported[country]):
            raise settings_invalid(f"{field}.holidays.subdivision",
                           f"holidays.subdivision must be one of {country}'s: {', '.join(supported[country])}")
    elif subdivision is not None:
        raise settings_invalid(f"{field}.holidays.subdivision", "holidays.subdivision needs holidays.country")
    added = _dates(holiday_spec.get("added", []), f"{field}.holidays.added")
    removed = _dates(holiday_spec.get("removed", []), f"{field}.holidays.removed")
    doc = {"mode": WORKING_HOURS, "time_zone": zone, "week": week_doc,
           "holidays": {"country": country, "subdivision": subdivision, "added": added, "removed": removed}}
    schedule = Schedule(zone=zone, week=tuple(week), holiday_country=country, holiday_subdivision=subdivision,
                        added_dates=frozenset(map(date.fromisoformat, added)),
                        removed_dates=frozenset(map(date.fromisoformat, removed)))
    return doc, schedule


def _target(value: Any, field: str) -> dict[str, Any]:
    spec = _object(value, field)
    values = _object(spec.get("values", {}), f"{field}.values")
    checked = {}
    for key, entry in values.items():
        where = f"{field}.values.{key}"
        entry = _object(entry, where)
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise settings_invalid(where, f"{where}.enabled must be true or false")
        minutes = _minutes(entry.get("minutes"), f"{where}.minutes")
        if enabled and minutes is None:
            raise settings_invalid(where, f"{where}: a value switched on needs minutes")
        checked[str(key)] = {"enabled": enabled, "minutes": minutes if enabled else None}
    return {"minutes": _minutes(spec.get("minutes"), f"{field}.minutes"),
            "due_soon_minutes": _minutes(spec.get("due_soon_minutes", 0), f"{field}.due_soon_minutes",
                                         nullable=False),
            "values": dict(sorted(checked.items()))}


def team_id_key(team_ids: set[int] | frozenset[int]) -> Callable[[Any], str]:
    """The API's ``team_hours`` keys: ids of existing teams."""
    def check(key: Any) -> str:
        if not str(key).isdigit() or int(key) not in team_ids:
            raise settings_invalid("team_hours", f"team_hours: {key!r} is not a team id")
        return str(int(key))
    return check


def status_id_ref(value: Any) -> Any:
    """The API's pause statuses: status ids."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise settings_invalid("pause_status_ids", "pause_status_ids must be null (Waiting on contact) or a list "
                                                   "of status ids")
    return value


def check_settings(document: Any, *, team_key: Callable[[Any], str] | None = None,
                   status_ref: Callable[[Any], Any] = status_id_ref) -> SlaSettings:
    """The typed settings ``document`` describes, or ``sla_settings_invalid`` naming the field.

    Fields left out keep their defaults.  ``team_key`` checks a ``team_hours``
    key and ``status_ref`` a pause status: ids for the API (no team by default),
    names in ``frontdesk config`` files, which resolves them itself.
    """
    team_key = team_key or team_id_key(frozenset())
    spec = _object(document, "settings")
    if unknown := set(spec) - set(DEFAULT_DOCUMENT):
        raise settings_invalid("settings", f"unknown settings: {', '.join(sorted(unknown))}")
    merged = {**copy.deepcopy(DEFAULT_DOCUMENT), **spec}
    if not isinstance(merged["enabled"], bool):
        raise settings_invalid("enabled", "enabled must be true or false")
    hours_doc, schedule = _hours(merged["hours"], "hours")
    team_docs: dict[str, Any] = {}
    for key, value in _object(merged["team_hours"], "team_hours").items():
        team_docs[team_key(key)] = _hours(value, f"team_hours.{key}")
    targets = _object(merged["targets"], "targets")
    by = targets.get("by")
    if by is not None and by not in BY_PROPERTIES:
        raise settings_invalid("targets.by", f"targets.by must be null or one of {', '.join(BY_PROPERTIES)}")
    if unknown := set(targets) - {"by", *TARGET_KINDS}:
        raise settings_invalid("targets", f"unknown targets: {', '.join(sorted(unknown))}")
    targets_doc: dict[str, Any] = {"by": by}
    for kind in TARGET_KINDS:
        targets_doc[kind] = _target(targets.get(kind, DEFAULT_DOCUMENT["targets"][kind]), f"targets.{kind}")
    pauses = merged["pause_status_ids"]
    if pauses is not None:
        if not isinstance(pauses, list):
            raise settings_invalid("pause_status_ids", "pause_status_ids must be null or a list")
        pauses = sorted({status_ref(p) for p in pauses}, key=str)
    notify = _object(merged["notify"], "notify")
    if unknown := set(notify) - set(NOTIFY_MOMENTS):
        raise settings_invalid("notify", f"notify: unknown moments {', '.join(sorted(unknown))}")
    notify_doc = {}
    for moment in NOTIFY_MOMENTS:
        kinds = notify.get(moment, [])
        if not isinstance(kinds, list) or any(k not in NOTIFY_RECIPIENTS for k in kinds):
            raise settings_invalid(f"notify.{moment}", f"notify.{moment} lists recipients among "
                                                       f"{', '.join(NOTIFY_RECIPIENTS)}")
        notify_doc[moment] = sorted(set(kinds))
    normalized = {"enabled": merged["enabled"], "hours": hours_doc,
                  "team_hours": {key: doc for key, (doc, _) in sorted(team_docs.items())},
                  "targets": targets_doc, "pause_status_ids": pauses, "notify": notify_doc}
    team_schedules = {int(key): schedule for key, (_, schedule) in team_docs.items() if key.isdigit()}
    return SlaSettings(normalized, schedule, team_schedules)
