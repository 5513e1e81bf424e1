"""Reception statistics from tickets (times, categories, outcomes only: no personal data)."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import Ticket


@dataclass(frozen=True)
class Quantiles:
    """Waiting time quantiles in minutes over `count` admitted visits."""

    count: int
    p50: float
    p90: float


@dataclass(frozen=True)
class Report:
    """Everything the statistics page shows."""

    per_day: list[tuple[date, int]]
    by_department: dict[str, Quantiles]
    by_hour: dict[int, Quantiles]
    outcomes: dict[str, int]


def _quantiles(minutes: list[float]) -> Quantiles:
    if len(minutes) == 1:
        return Quantiles(1, minutes[0], minutes[0])
    cuts = statistics.quantiles(minutes, n=10, method="inclusive")
    return Quantiles(len(minutes), statistics.median(minutes), cuts[8])


def tickets_since(db: Session, since: datetime) -> list[Ticket]:
    """Tickets created since `since`, oldest first."""
    stmt = select(Ticket).where(Ticket.created_at >= since).order_by(Ticket.created_at)
    return list(db.scalars(stmt))


def report(tickets: Iterable[Ticket], zone: ZoneInfo, today: date, days: int = 30) -> Report:
    """Tickets per day, waiting p50/p90 per department and per hour of day, outcomes."""
    per_day: Counter[date] = Counter()
    waits_dept: defaultdict[str, list[float]] = defaultdict(list)
    waits_hour: defaultdict[int, list[float]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    for t in tickets:
        local = t.created_at.astimezone(zone)
        per_day[local.date()] += 1
        if t.outcome:
            outcomes[t.outcome] += 1
        if t.admitted_at is not None:
            wait = (t.admitted_at - t.created_at).total_seconds() / 60
            waits_dept[t.origin_department].append(wait)
            waits_hour[local.hour].append(wait)
    first = today - timedelta(days=days - 1)
    return Report(
        per_day=[
            (first + timedelta(days=i), per_day[first + timedelta(days=i)]) for i in range(days)
        ],
        by_department={k: _quantiles(v) for k, v in sorted(waits_dept.items())},
        by_hour={k: _quantiles(v) for k, v in sorted(waits_hour.items())},
        outcomes=dict(outcomes),
    )


CSV_FIELDS = (
    "ticket",
    "created_at",
    "admitted_at",
    "ended_at",
    "wait_minutes",
    "category",
    "department",
    "queue_path",
    "outcome",
    "source",
)


def to_csv(tickets: Iterable[Ticket]) -> str:
    """One row per visit with the statistical fields only."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for t in tickets:
        wait = (
            round((t.admitted_at - t.created_at).total_seconds() / 60, 1) if t.admitted_at else ""
        )
        path = "|".join(hop["to"] for hop in json.loads(t.path))
        writer.writerow(
            [
                t.public_id,
                t.created_at.isoformat(),
                t.admitted_at.isoformat() if t.admitted_at else "",
                t.ended_at.isoformat() if t.ended_at else "",
                wait,
                t.category_slug,
                t.origin_department,
                path,
                t.outcome or "",
                "web" if t.source == "web" else "kiosk",
            ]
        )
    return out.getvalue()
