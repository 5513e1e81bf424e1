"""Refresh the message catalogs: extract, merge into each language's .po, compile .mo.

Run after changing user-facing strings: `.venv/bin/python scripts/i18n.py`. Missing
translations are listed and make the script fail, so no string ships untranslated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "hub" / "translations"


def extract(pot: Path) -> None:
    """Collect every translatable string of the project into the template `pot`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_",
            "-k",
            "gettext",
            "-k",
            "ngettext:1,2",
            "--no-location",
            "--omit-header",
            "-o",
            str(pot),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def main() -> int:
    """Extract, update, check and compile every catalog."""
    pot = ROOT / "build" / "messages.pot"
    pot.parent.mkdir(exist_ok=True)
    extract(pot)
    with pot.open("rb") as fh:
        template = read_po(fh)
    missing = []
    for po_path in sorted(CATALOGS.glob("*/LC_MESSAGES/messages.po")):
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=po_path.parts[-3])
        catalog.update(template, no_fuzzy_matching=True)
        for message in catalog:
            if message.id and (
                not message.string
                or message.fuzzy
                or (isinstance(message.string, tuple) and not all(message.string))
            ):
                missing.append(f"{po_path.parts[-3]}: {message.id!r}")
        with po_path.open("wb") as fh:
            write_po(fh, catalog, omit_header=False, no_location=True, width=100)
        with po_path.with_suffix(".mo").open("wb") as fh:
            write_mo(fh, catalog)
    for line in missing:
        print("untranslated:", line)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
