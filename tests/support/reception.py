"""A reception set up through the hub's own services: departments, rooms, categories, staff."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hub.db import session_scope
from hub.models import Category, Department, User
from hub.runtime import HubRuntime
from hub.schedule import Schedule
from hub.services.rooms import RoomInput


@dataclass(frozen=True)
class Reception:
    """Slugs of what `setup_reception` made."""

    departments: tuple[str, ...] = ("sozialamt", "buergerbuero")
    rooms: tuple[str, ...] = ("sozialamt-1", "sozialamt-2", "buergerbuero-1")
    categories: tuple[str, ...] = ("wohngeld", "ausweis")


def setup_reception(runtime: HubRuntime, schedule: Schedule | None = None) -> Reception:
    """Create two departments, a reception room, three consultation rooms and categories."""
    made = Reception()
    with session_scope(runtime.sessions) as db:
        depts = {
            "sozialamt": Department(slug="sozialamt", name="Sozialamt"),
            "buergerbuero": Department(slug="buergerbuero", name="Bürgerbüro"),
        }
        db.add_all(depts.values())
        db.commit()
        always = schedule or Schedule()
        runtime.rooms.create(
            db, "empfang", RoomInput("Empfang", "reception", "open", None, True, always)
        )
        for slug, dept in (
            ("sozialamt-1", "sozialamt"),
            ("sozialamt-2", "sozialamt"),
            ("buergerbuero-1", "buergerbuero"),
        ):
            runtime.rooms.create(
                db, slug, RoomInput(slug.title(), "consultation", "knock", dept, True, Schedule())
            )
        db.add_all(
            [
                Category(
                    slug="wohngeld",
                    name_de="Wohngeld",
                    name_en="Housing benefit",
                    department_id=depts["sozialamt"].id,
                    active=True,
                    position=0,
                ),
                Category(
                    slug="ausweis",
                    name_de="Ausweis",
                    name_en="ID card",
                    department_id=depts["buergerbuero"].id,
                    active=True,
                    position=1,
                ),
            ]
        )
        db.commit()
    return made


def join_queues(runtime: HubRuntime, username: str, *departments: str) -> None:
    """Make a staff member serve the given departments' queues."""
    with session_scope(runtime.sessions) as db:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None
        user.departments = list(
            db.scalars(select(Department).where(Department.slug.in_(departments)))
        )
        db.commit()
