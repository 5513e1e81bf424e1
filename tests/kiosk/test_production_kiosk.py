"""The production kiosk has no test hooks: no route, switch or code path runs code it was sent.

The routes that drive the kiosk's window in the end-to-end test live in the tests
(tests/support/kiosk_launcher.py); the kiosk package itself only offers `run_window`'s
``on_window`` hook, which ``empfang-kiosk`` never fills.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from urllib.parse import urlencode

from PIL import Image, ImageStat

from kiosk import cli
from tests.support.kiosk_launcher import HOOK_PATHS
from tests.support.kiosk_process import KioskProcess, until
from tests.support.net import free_port
from tests.support.xvfb import Xvfb

KIOSK = Path(cli.__file__).resolve().parent
OLD_SWITCH = "EMPFANG_KIOSK_TEST_HOOKS"  # turned the hooks on, once
# A script that would move the kiosk on from the attract screen, and a button for it.
SENT = {"js": "window.pywebview.api.start('en'); 42", "selector": "#lang-en"}
# Calls that run a script or code given as their argument.
RUNS_SCRIPT = {"evaluate_js", "run_js", "runJavaScript"}
RUNS_CODE = {"eval", "exec", "compile", "__import__"}
NO_CODE_MODULES = {"runpy", "pickle", "marshal", "code", "codeop"}
JS_RUNS_TEXT = re.compile(
    r"\beval\s*\(|\bFunction\s*\(|set(Timeout|Interval)\s*\(\s*['\"`]|\bimport\s*\("
)


def _production_files() -> list[Path]:
    files = [p for p in KIOSK.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {"server.py", "window.py", "cli.py", "kiosk.js"} <= {p.name for p in files}
    return files


def _imported(tree: ast.Module) -> set[str]:
    """The top-level packages a module imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def _screen_drawn(xvfb: Xvfb, shot: Path) -> bool:
    """Whether the window has painted the page (the bare X screen is one flat colour)."""
    with Image.open(xvfb.screenshot(shot)) as image:
        return ImageStat.Stat(image.convert("L")).stddev[0] > 5


def test_the_production_kiosk_answers_no_hook_route(tmp_path: Path) -> None:
    port = free_port()
    config = (
        f'hub = "http://127.0.0.1:{free_port()}"\ndevice = "kiosk-rathaus"\n'
        f'camera = "synthetic"\nui_port = {port}\n'
        '[audio]\nmicrophone = "none"\nspeaker = "none"\n'
    )
    xvfb = Xvfb(tmp_path / "xvfb.log").start()
    kiosk: KioskProcess | None = None
    try:
        # `empfang-kiosk run --config FILE`, with the switch that once turned the hooks on.
        kiosk = KioskProcess(tmp_path, config, port, xvfb, hooks=False, env={OLD_SWITCH: "1"})
        status = until(kiosk.status, 60, "the kiosk's page server")
        assert status["device"] == "kiosk-rathaus"
        # The window is up and shows the page: every route the kiosk adds is in place.
        until(lambda: _screen_drawn(xvfb, tmp_path / "kiosk.png"), 60, "the kiosk's window")
        query = urlencode(SENT)
        for path in HOOK_PATHS:
            assert kiosk.request(path) == (404, b"not found"), path
            assert kiosk.request(f"{path}?{query}") == (404, b"not found"), path
        # The kiosk's own routes read a sent script as nothing: the same answer without it.
        for path in ("/status", "/state"):
            plain = json.loads(kiosk.request(path)[1])
            code, body = kiosk.request(f"{path}?{query}")
            sent = json.loads(body)
            assert code == 200 and sent.keys() == plain.keys(), (path, sent)
            assert not {"value", "clicked"} & sent.keys()
        assert kiosk.request(f"/?{query}") == kiosk.request("/")  # the page, as it is
        log = kiosk.log_text()
        assert "test routes on" not in log and "test hooks" not in log
        assert kiosk.stop() == 0
        kiosk = None
    finally:
        if kiosk is not None:
            kiosk.stop()
            print(kiosk.log_tail())
        xvfb.stop()


def test_no_production_module_references_the_test_hooks() -> None:
    words = [*HOOK_PATHS, "/test/", OLD_SWITCH, "test hook", "test route", "kiosk_launcher"]
    for file in _production_files():
        text = file.read_text(errors="replace")
        for word in words:
            assert word.lower() not in text.lower(), f"{file.name} mentions {word!r}"
        if file.suffix == ".py":
            imported = _imported(ast.parse(text))
            assert "tests" not in imported, f"{file.name} imports the tests"
    # The console script fills no window hook: nothing is added to the page server.
    assert inspect.signature(cli.main).parameters["on_window"].default is None


def _fixed_texts(tree: ast.Module) -> set[str]:
    """Names the module binds, once, at its top, to a literal string."""
    bound: dict[str, int] = {}
    literal: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound[node.id] = bound.get(node.id, 0) + 1
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            literal.add(node.targets[0].id)
    return {name for name in literal if bound[name] == 1}


def test_every_script_the_kiosk_runs_is_its_own_fixed_text() -> None:
    scripts_run = 0
    for file in _production_files():
        if file.suffix in (".js", ".html"):
            found = JS_RUNS_TEXT.search(file.read_text())
            assert found is None, f"{file.name} runs text as code: {found and found.group()}"
        if file.suffix != ".py":
            continue
        tree = ast.parse(file.read_text())
        assert not NO_CODE_MODULES & _imported(tree), f"{file.name} loads code"
        fixed = _fixed_texts(tree)
        # Each use of a script runner must be a call on fixed texts: handing the runner on
        # (to a thread, say) or naming it in a string would let it run something else.
        checked: set[int] = set()
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr in RUNS_SCRIPT:
                assert isinstance(node, ast.Call)
                arguments = [*node.args, *(k.value for k in node.keywords)]
                assert arguments and all(
                    isinstance(a, ast.Name) and a.id in fixed for a in arguments
                ), f"{file.name}:{node.lineno}: a script that is not a fixed text"
                checked.add(id(func))
                scripts_run += 1
        for node in ast.walk(tree):
            where = f"{file.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute) and node.attr in RUNS_SCRIPT | RUNS_CODE:
                assert id(node) in checked, f"{where}: {node.attr} used other than on a text"
            elif isinstance(node, ast.Name):
                assert node.id not in RUNS_CODE, f"{where}: {node.id}"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in RUNS_SCRIPT | RUNS_CODE, f"{where}: {node.value!r}"
    assert scripts_run >= 1  # the privacy reset clears the page's storage by script
