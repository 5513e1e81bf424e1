"""Opening hours: a weekly schedule plus closed days, evaluated in the site's time zone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hub.errors import RuleBroken, ValidationError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
MAX_CLOSED_DAYS = 366
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")

Interval = tuple[time, time]


@dataclass(frozen=True)
class Schedule:
    """Weekly opening intervals and extra closed dates; an empty schedule is always open."""

    weekly: Mapping[str, tuple[Interval, ...]] = field(default_factory=dict)
    closed_days: frozenset[date] = frozenset()

    @property
    def always_open(self) -> bool:
        """True when no weekly hours are set (the room follows no timetable)."""
        return not any(self.weekly.get(day) for day in WEEKDAYS)

    def is_open(self, at: datetime, zone: ZoneInfo) -> bool:
        """Whether the room is open at the aware instant `at`."""
        local = at.astimezone(zone)
        if local.date() in self.closed_days:
            return False
        if self.always_open:
            return True
        now = local.time().replace(tzinfo=None)
        return any(
            start <= now < end for start, end in self.weekly.get(WEEKDAYS[local.weekday()], ())
        )

    def next_opening(
        self, at: datetime, zone: ZoneInfo, horizon_days: int = 400
    ) -> datetime | None:
        """The next instant after `at` at which the room opens, or None if never within reach."""
        local = at.astimezone(zone)
        for offset in range(horizon_days):
            day = local.date() + timedelta(days=offset)
            if day in self.closed_days:
                continue
            for start, _end in self.weekly.get(WEEKDAYS[day.weekday()], ()):
                candidate = datetime.combine(day, start, tzinfo=zone)
                if candidate > at:
                    return candidate
        return None

    def to_json(self) -> str:
        """Serialise for the database."""
        return json.dumps(
            {
                "weekly": {
                    day: [[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in spans]
                    for day, spans in self.weekly.items()
                    if spans
                },
                "closed_days": sorted(d.isoformat() for d in self.closed_days),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Schedule:
        """Load what `to_json` wrote (an empty value is the always-open schedule)."""
        if not text:
            return cls()
        data = json.loads(text)
        weekly = {
            day: tuple((time.fromisoformat(s), time.fromisoformat(e)) for s, e in spans)
            for day, spans in data.get("weekly", {}).items()
        }
        closed = frozenset(date.fromisoformat(d) for d in data.get("closed_days", []))
        return cls(weekly=weekly, closed_days=closed)

    def format_day(self, day: str) -> str:
        """One weekday's hours as the admin form shows them, e.g. '08:00-12:00, 13:00-16:00'."""
        return ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.weekly.get(day, ()))


def _parse_time(hours: str, minutes: str, field_name: str, text: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time(23, 59, 59, 999999)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise RuleBroken(field_name, f"{text.strip()!r} is not a valid time range")
    return time(h, m)


def parse_day(text: str, field_name: str) -> tuple[Interval, ...]:
    """Parse '08:00-12:00, 13:00-16:00' into sorted, non-overlapping intervals."""
    spans: list[Interval] = []
    for part in (p for p in text.replace(";", ",").split(",") if p.strip()):
        match = _RANGE.match(part)
        if not match:
            raise ValidationError(field_name, f"{part.strip()!r} is not a range like 08:00-12:00")
        start = _parse_time(match[1], match[2], field_name, part)
        end = _parse_time(match[3], match[4], field_name, part)
        if start >= end:
            raise RuleBroken(field_name, f"{part.strip()!r} ends before it starts")
        spans.append((start, end))
    spans.sort()
    for (_s1, e1), (s2, _e2) in pairwise(spans):
        if s2 < e1:
            raise RuleBroken(field_name, "time ranges overlap")
    if len(spans) > 8:
        raise ValidationError(field_name, "at most 8 ranges per day")
    return tuple(spans)


def parse_closed_days(lines: Iterable[str], field_name: str = "closed_days") -> frozenset[date]:
    """Parse ISO dates (YYYY-MM-DD), one per entry."""
    days: set[date] = set()
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        try:
            days.add(date.fromisoformat(text))
        except ValueError:
            raise RuleBroken(field_name, f"{text!r} is not a date like 2026-12-24") from None
    if len(days) > MAX_CLOSED_DAYS:
        raise ValidationError(field_name, f"at most {MAX_CLOSED_DAYS} closed days")
    return frozenset(days)


def schedule_from_form(form: Mapping[str, str]) -> Schedule:
    """Build a schedule from the fields hours_mon … hours_sun and closed_days."""
    weekly = {day: parse_day(str(form.get(f"hours_{day}", "")), f"hours_{day}") for day in WEEKDAYS}
    closed = parse_closed_days(str(form.get("closed_days", "")).replace(",", "\n").splitlines())
    return Schedule(weekly={d: s for d, s in weekly.items() if s}, closed_days=closed)


def schedule_from_api(data: object) -> Schedule:
    """Build a schedule from the JSON API shape {"weekly": {"mon": ["08:00-12:00"]}, ...}."""
    if data is None:
        return Schedule()
    if not isinstance(data, dict):
        raise ValidationError("opening_hours", "must be an object")
    weekly_raw = data.get("weekly", {})
    if not isinstance(weekly_raw, dict):
        raise ValidationError("opening_hours.weekly", "must be an object")
    weekly: dict[str, tuple[Interval, ...]] = {}
    for day, spans in weekly_raw.items():
        if day not in WEEKDAYS:
            raise ValidationError("opening_hours.weekly", f"unknown weekday {day!r}")
        if not isinstance(spans, list) or not all(isinstance(s, str) for s in spans):
            raise ValidationError(f"opening_hours.weekly.{day}", "must be a list of ranges")
        parsed = parse_day(", ".join(spans), f"opening_hours.weekly.{day}")
        if parsed:
            weekly[day] = parsed
    closed_raw = data.get("closed_days", [])
    if not isinstance(closed_raw, list) or not all(isinstance(d, str) for d in closed_raw):
        raise ValidationError("opening_hours.closed_days", "must be a list of dates")
    closed = parse_closed_days(closed_raw, "opening_hours.closed_days")
    return Schedule(weekly=weekly, closed_days=closed)


def schedule_to_api(schedule: Schedule) -> dict[str, object]:
    """The JSON API shape of a schedule."""
    return {
        "weekly": {
            day: schedule.format_day(day).split(", ")
            for day in WEEKDAYS
            if schedule.weekly.get(day)
        },
        "closed_days": sorted(d.isoformat() for d in schedule.closed_days),
    }
