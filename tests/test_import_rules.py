"""The house plan's dependency rule, checked on the real import graph with import-linter.

The contracts live in pyproject.toml (``[tool.importlinter]``): protocol imports nothing of
the project and does no I/O; edge serves kiosk and display and never imports them or the
hub; nothing imports the hub; the hub imports no device code; kiosk and display never
import each other; a door display does not pull Flask.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict[str, object]]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]["contracts"]


def test_every_rule_of_the_house_plan_is_a_contract() -> None:
    contracts = _contracts()
    forbidden = {
        (source, target)
        for c in contracts
        if c["type"] == "forbidden"
        for source in c["source_modules"]  # type: ignore[union-attr]
        for target in c["forbidden_modules"]  # type: ignore[union-attr]
    }
    for part in ("edge", "hub", "kiosk", "display"):
        assert ("protocol", part) in forbidden
    for io in ("os", "pathlib", "socket", "http", "paho"):
        assert ("protocol", io) in forbidden, f"protocol may import {io}"
    for part in ("hub", "kiosk", "display"):
        assert ("edge", part) in forbidden
    for part in ("protocol", "edge", "kiosk", "display"):
        assert (part, "hub") in forbidden
    assert ("display", "flask") in forbidden
    independent = [c for c in contracts if c["type"] == "independence"]
    assert any(set(c["modules"]) == {"kiosk", "display"} for c in independent)  # type: ignore[arg-type]


def test_the_code_keeps_every_contract() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in done.stdout
