"""Languages of the hub's pages: German first, English second (Flask-Babel)."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from flask_babel import Babel, format_date, get_locale

LANGUAGES = ("de", "en")
LANGUAGE_NAMES = {"de": "Deutsch", "en": "English"}
COOKIE = "empfang_lang"


def select_locale() -> str:
    """?lang= first, then the remembered choice, then the browser; German by default."""
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        g.lang_chosen = chosen
        return chosen
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES, default="de") or "de"


def _remember_choice(response: Any) -> Any:
    chosen = g.get("lang_chosen")
    if chosen:
        response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


def init_app(app: Flask) -> None:
    """Install Flask-Babel with our catalogs and remember explicit language choices."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "de")
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    Babel(app, locale_selector=select_locale)
    app.after_request(_remember_choice)
    app.add_template_global(LANGUAGE_NAMES, "language_names")
    app.add_template_global(get_locale, "get_locale")
    app.add_template_global(format_date, "format_date")
