"""Every firmware file is valid MicroPython: mpy-cross compiles it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.helpers import FIRMWARE

SOURCES = sorted(FIRMWARE.rglob("*.py"))


def test_the_firmware_has_its_modules() -> None:
    names = {path.relative_to(FIRMWARE).as_posix() for path in SOURCES}
    assert {
        "main.py",
        "provision.py",
        "empfang_light/app.py",
        "empfang_light/config.py",
        "empfang_light/device.py",
        "empfang_light/status.py",
    } <= names


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.relative_to(FIRMWARE).as_posix())
def test_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    out = tmp_path / (source.stem + ".mpy")
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"mpy-cross rejected {source}:\n{result.stderr}{result.stdout}"
    assert out.read_bytes()[:1] == b"M", "mpy-cross wrote no .mpy file"


def test_mpy_cross_rejects_what_micropython_cannot_parse(tmp_path: Path) -> None:
    # The check above is only worth something if mpy-cross fails on bad code.
    bad = tmp_path / "bad.py"
    bad.write_text("items = [*range(3)]\n")  # valid CPython, not MicroPython
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / "bad.mpy"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SyntaxError" in result.stderr
