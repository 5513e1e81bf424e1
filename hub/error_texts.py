"""Refusals in words for people: the service layer's English reasons, translated for pages.

The JSON API keeps the service's own English message (programs match on it); pages show
these sentences in the visitor's language instead.
"""

from __future__ import annotations

from flask_babel import gettext as _

from hub.errors import ServiceError


def _known() -> dict[str, str]:
    return {
        "the room is closed": _("Der Raum ist gerade geschlossen."),
        "guests cannot enter this room": _("Dieser Raum ist nur für Mitarbeitende."),
        "the room asks not to be disturbed": _(
            "Im Raum wird gebeten, nicht zu stören. Bitte versuchen Sie es später noch einmal."
        ),
        "nobody is in the room to let you in": _(
            "Gerade ist niemand im Raum, der Sie hereinbitten kann. "
            "Bitte versuchen Sie es später noch einmal."
        ),
        "no such invitation": _("Diese Einladung gibt es nicht. Bitte prüfen Sie den Link."),
        "this invitation was withdrawn": _("Diese Einladung wurde zurückgezogen."),
        "this invitation has expired": _(
            "Diese Einladung ist abgelaufen. Bitte fragen Sie nach einem neuen Link."
        ),
        "this conversation has ended": _("Dieses Gespräch ist beendet."),
    }


def _by_code() -> dict[str, str]:
    return {
        "call.closed": _(
            "Hier findet ein geschütztes Gespräch statt. Niemand sonst kann eintreten."
        ),
    }


def friendly(exc: ServiceError) -> str:
    """A translated sentence for a refused request, for HTML pages (by code where it has one)."""
    known = _by_code().get(exc.code or "") or _known().get(exc.message)
    if known:
        return known
    if exc.field == "name" and exc.status == 400:
        return _("Bitte geben Sie Ihren Namen an (höchstens 80 Zeichen).")
    by_status = {
        400: _("Die Eingabe konnte nicht verarbeitet werden."),
        403: _("Dafür fehlt Ihnen die Berechtigung."),
        404: _("Das gibt es hier nicht (mehr)."),
        409: _("Das geht gerade nicht, weil sich inzwischen etwas geändert hat."),
        429: _("Zu viele Versuche. Bitte warten Sie einige Minuten."),
    }
    return by_status.get(exc.status, _("Das hat leider nicht geklappt."))
