"""A test-only kiosk: the production ``empfang-kiosk`` plus routes that drive its window.

``python -m tests.support.kiosk_launcher run --config FILE`` runs `kiosk.cli.main` as the
console script does, with an ``on_window`` hook that adds these routes to the engine's page
server once the window exists:

- ``/test/click?selector=``: a real DOM click on a button (whose handler calls the bridge);
- ``/test/eval?js=``: the value of a script evaluated in the web view;
- ``/test/storage``: what the web view holds (storage, cookies) and the resets done;
- ``/test/video``: the video widgets' figures (shown, where, pictures painted).

None of this is in the kiosk package: the production kiosk answers these paths with 404
(tests/kiosk/test_production_kiosk.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kiosk import cli

if TYPE_CHECKING:
    from kiosk.engine import Engine
    from kiosk.server import Handler
    from kiosk.window import WindowUi

log = logging.getLogger(__name__)

CLICK = "/test/click"
EVAL = "/test/eval"
STORAGE = "/test/storage"
VIDEO = "/test/video"
HOOK_PATHS = (CLICK, EVAL, STORAGE, VIDEO)
STORAGE_JS = """
(function () {
  var n = function (s) { try { return s.length; } catch (e) { return -1; } };
  return JSON.stringify({local: n(localStorage), session: n(sessionStorage), cookie: document.cookie});
})()
"""  # noqa: E501

OnGui = Callable[[Callable[[], None]], None]


def click_script(selector: str) -> str:
    """A script that clicks the enabled element `selector` and says whether it did."""
    quoted = json.dumps(selector)
    return (
        f"(function(){{var b=document.querySelector({quoted});"
        "if(!b||b.disabled)return false;b.click();return true;})()"
    )


def storage(ui: WindowUi) -> dict[str, Any]:
    """What the web view holds now: storage lengths, cookies, and the privacy resets done."""
    raw = ui.window.evaluate_js(STORAGE_JS)
    held = json.loads(raw) if isinstance(raw, str) else {}
    held["cookies"] = len(getattr(ui.window.native, "cookies", {}) or {})
    held["resets"] = ui.resets
    return held


def video_figures(ui: WindowUi, on_gui: OnGui) -> dict[str, Any]:
    """Per video widget: shown, where, pictures painted ({} before the window is shown)."""
    overlays = ui.overlays
    if overlays is None:
        return {}
    figures: dict[str, Any] = {}
    on_gui(lambda: figures.update(overlays.figures()))
    return figures


def hook_routes(ui: WindowUi, on_gui: OnGui) -> dict[str, Handler]:
    """The test routes on `ui`'s window (see the module's docstring)."""

    async def click(query: dict[str, str]) -> Any:
        script = click_script(query.get("selector", ""))
        return {"clicked": await asyncio.to_thread(ui.window.evaluate_js, script)}

    async def evaluate(query: dict[str, str]) -> Any:
        return {"value": await asyncio.to_thread(ui.window.evaluate_js, query.get("js", "null"))}

    async def held(_query: dict[str, str]) -> Any:
        return await asyncio.to_thread(storage, ui)

    async def video(_query: dict[str, str]) -> Any:
        return await asyncio.to_thread(video_figures, ui, on_gui)

    return {CLICK: click, EVAL: evaluate, STORAGE: held, VIDEO: video}


def install(engine: Engine, ui: WindowUi) -> None:
    """The ``on_window`` hook: the test routes on the engine's page server."""
    from kiosk.window import gui_caller  # on the main thread, before the GUI loop starts

    if engine.server is None:
        raise RuntimeError("the engine's page server is not running")
    log.warning("test routes on (%s): a test kiosk, never a real one", ", ".join(HOOK_PATHS))
    engine.server.add_routes(hook_routes(ui, gui_caller()))


def main(argv: Sequence[str] | None = None) -> int:
    """``empfang-kiosk`` with the test routes."""
    return cli.main(argv, on_window=install)


if __name__ == "__main__":
    sys.exit(main())
