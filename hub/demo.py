"""Demo data: a reception, three consultation rooms in two departments, a meeting room."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import Department, Room, User
from hub.runtime import HubRuntime
from hub.schedule import Schedule, parse_day
from hub.services.rooms import RoomInput

WEEKDAYS_ONLY = ("mon", "tue", "wed", "thu", "fri")


@dataclass(frozen=True)
class DemoLogin:
    """A demo account and its freshly set password."""

    username: str
    password: str
    is_admin: bool


def _hours(spec: str, days: tuple[str, ...]) -> Schedule:
    return Schedule(weekly={day: parse_day(spec, f"hours_{day}") for day in days})


def seed(runtime: HubRuntime, db: Session) -> bool:
    """Create the demo rooms on an empty database; False when rooms exist already."""
    if db.scalar(select(Room.id).limit(1)) is not None:
        return False
    for slug, name in (("sozialamt", "Sozialamt"), ("buergerbuero", "Bürgerbüro")):
        runtime.departments.create_department(db, slug, name)
    office = _hours("07:30-12:30, 13:30-18:00", WEEKDAYS_ONLY)
    rooms = [
        ("empfang", "Empfang", "reception", "open", None, Schedule()),
        ("sozialamt-1", "Sozialamt – Beratung 1", "consultation", "knock", "sozialamt", office),
        ("sozialamt-2", "Sozialamt – Beratung 2", "consultation", "knock", "sozialamt", office),
        (
            "buergerbuero-1",
            "Bürgerbüro – Beratung 1",
            "consultation",
            "knock",
            "buergerbuero",
            office,
        ),
        ("besprechung", "Besprechungsraum Team", "meeting", "private", None, Schedule()),
    ]
    for slug, name, kind, policy, dept, schedule in rooms:
        runtime.rooms.create(
            db, slug, RoomInput(name, kind, policy, dept, enabled=True, schedule=schedule)
        )
    categories = [
        ("grundsicherung", "Grundsicherung und Sozialhilfe", "Basic income support", "sozialamt"),
        ("wohngeld", "Wohngeld", "Housing benefit", "sozialamt"),
        ("ausweis", "Personalausweis und Reisepass", "ID card and passport", "buergerbuero"),
        ("meldewesen", "An-, Um- und Abmeldung", "Registering an address", "buergerbuero"),
        ("sonstiges", "Sonstiges Anliegen", "Something else", "buergerbuero"),
    ]
    for slug, name_de, name_en, dept in categories:
        runtime.departments.create_category(db, slug, name_de, name_en, dept)
    return True


def demo_logins(runtime: HubRuntime, db: Session) -> list[DemoLogin]:
    """Make sure the demo admin and staff accounts exist, with new passwords to print."""
    logins = []
    for username, display, is_admin in (
        ("admin", "Demo-Admin", True),
        ("staff", "Erika Mustermann", False),
    ):
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            created = runtime.users.create(db, username, display, None, is_admin=is_admin)
            password = created.password
            if not is_admin:  # the demo staff member serves the Sozialamt queue
                created.user.departments = list(
                    db.scalars(select(Department).where(Department.slug == "sozialamt"))
                )
                db.commit()
        else:
            password = runtime.users.reset_password(db, user.id)
        logins.append(DemoLogin(username, password, is_admin))
    return logins
