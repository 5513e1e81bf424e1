"""Every user-facing string has an English translation, and the compiled catalog is current."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from scripts.i18n import extract

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "hub" / "translations" / "en" / "LC_MESSAGES"


def _key(value: object) -> object:
    # Plural entries come as lists or tuples depending on the reader.
    return tuple(value) if isinstance(value, list | tuple) else value


def test_every_string_is_translated(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    extract(pot)
    with pot.open("rb") as fh:
        wanted = {m.id for m in read_po(fh) if m.id}
    with (CATALOG / "messages.po").open("rb") as fh:
        po = {_key(m.id): _key(m.string) for m in read_po(fh) if m.id}
    missing = sorted(str(m) for m in wanted if not po.get(_key(m)))
    assert missing == [], f"untranslated (run scripts/i18n.py): {missing}"
    with (CATALOG / "messages.mo").open("rb") as fh:
        mo = {_key(m.id): _key(m.string) for m in read_mo(fh) if m.id}
    assert mo == {k: v for k, v in po.items() if k in mo} and set(mo) == set(po), (
        "messages.mo is out of date: run scripts/i18n.py"
    )
