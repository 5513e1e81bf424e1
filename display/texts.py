"""Words, icons and short texts the outputs show, in German and English."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from display.model import Reason, RoomView, Shown

Language = Literal["de", "en"]

WORDS: Mapping[Language, Mapping[Shown, str]] = MappingProxyType(
    {
        "de": MappingProxyType(
            {
                Shown.FREE: "FREI",
                Shown.BUSY: "BESETZT",
                Shown.WAITING: "BITTE WARTEN",
                Shown.CLOSED: "GESCHLOSSEN",
                Shown.DND: "BITTE NICHT STÖREN",
                Shown.UNKNOWN: "STATUS UNBEKANNT",
            }
        ),
        "en": MappingProxyType(
            {
                Shown.FREE: "FREE",
                Shown.BUSY: "BUSY",
                Shown.WAITING: "PLEASE WAIT",
                Shown.CLOSED: "CLOSED",
                Shown.DND: "DO NOT DISTURB",
                Shown.UNKNOWN: "STATUS UNKNOWN",
            }
        ),
    }
)

# The icon drawn next to each word, so that colour is never the only signal.
ICONS: Mapping[Shown, str] = MappingProxyType(
    {
        Shown.FREE: "check",
        Shown.BUSY: "no-entry",
        Shown.WAITING: "hourglass",
        Shown.CLOSED: "lock",
        Shown.DND: "moon",
        Shown.UNKNOWN: "question",
    }
)

_HINTS: Mapping[Language, Mapping[Reason, str]] = MappingProxyType(
    {
        "de": MappingProxyType(
            {
                Reason.NO_STATUS: "Noch keine Meldung für diesen Raum",
                Reason.STALE: "Meldung veraltet",
                Reason.HUB_OFFLINE: "Server nicht erreichbar",
                Reason.BROKER_LOST: "Keine Verbindung",
                Reason.UNCONFIRMED: "Verbindung wird geprüft",
                Reason.CLOCK: "Uhrzeit prüfen",
                Reason.NOT_ENROLLED: "Gerät muss neu angemeldet werden",
                Reason.NO_ROOMS: "Kein Raum zugewiesen",
            }
        ),
        "en": MappingProxyType(
            {
                Reason.NO_STATUS: "No report for this room yet",
                Reason.STALE: "Report out of date",
                Reason.HUB_OFFLINE: "Server unreachable",
                Reason.BROKER_LOST: "No connection",
                Reason.UNCONFIRMED: "Checking the connection",
                Reason.CLOCK: "Check the clock",
                Reason.NOT_ENROLLED: "This device needs enrolling",
                Reason.NO_ROOMS: "No room assigned",
            }
        ),
    }
)


def word(shown: Shown, language: Language) -> str:
    """The big state word, e.g. BESETZT."""
    return WORDS[language][shown]


def since_text(since: datetime | None, language: Language, zone: ZoneInfo, now: datetime) -> str:
    """'seit 14:03' today, 'seit 24.11. 14:03' on another day; '' when unknown."""
    if since is None:
        return ""
    local = since.astimezone(zone)
    today = local.date() == now.astimezone(zone).date()
    if language == "de":
        return f"seit {local:%H:%M}" if today else f"seit {local:%d.%m. %H:%M}"
    return f"since {local:%H:%M}" if today else f"since {local:%d %b %H:%M}"


def waiting_text(count: int, language: Language) -> str:
    """'2 Personen warten' / '1 person waiting'; '' when nobody waits."""
    if count <= 0:
        return ""
    if language == "de":
        return "1 Person wartet" if count == 1 else f"{count} Personen warten"
    return "1 person waiting" if count == 1 else f"{count} people waiting"


def hint(reason: Reason | None, language: Language) -> str:
    """Why the state is unknown, in a few words; '' when it is known."""
    return "" if reason is None else _HINTS[language][reason]


@dataclass(frozen=True)
class RoomText:
    """Everything visible about one room, as text; equal texts look the same."""

    room: str
    name: str
    shown: Shown
    icon: str
    word: str
    since: str
    waiting: str
    hint: str


def room_text(view: RoomView, language: Language, zone: ZoneInfo, now: datetime) -> RoomText:
    """The visible texts of one room."""
    return RoomText(
        room=view.room,
        name=view.name,
        shown=view.shown,
        icon=ICONS[view.shown],
        word=word(view.shown, language),
        since=since_text(view.since, language, zone, now),
        waiting=waiting_text(view.waiting, language),
        hint=hint(view.reason, language),
    )
