"""The kiosk end to end: its own process with the Qt window under Xvfb, a real hub, Mosquitto
and a staff member in Chromium.

A scripted touch flow (real DOM clicks in the kiosk's web view, whose handlers call the
pywebview bridge) takes a ticket; staff admit it and see the kiosk's synthetic camera; the
kiosk counts staff frames; staff end the visit: goodbye, then the privacy reset. Then the
hub goes away (out-of-service) and comes back on the same address (recovery without a
restart). A screenshot of every screen is saved to shots/ and checked for its key text.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image, ImageStat
from playwright.sync_api import Browser, expect, sync_playwright
from werkzeug.serving import make_server

from hub.runtime import HubRuntime
from tests.conftest import add_user
from tests.support.browser import browser_context, launch_chromium, log_in_page
from tests.support.kiosk_process import KioskProcess, until
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher
from tests.support.net import free_port
from tests.support.reception import join_queues, setup_reception
from tests.support.xvfb import Xvfb

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "shots"
DEVICE = "kiosk-rathaus"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


class HubServer:
    """The hub app over real HTTP on a fixed port, so it can stop and come back."""

    def __init__(self, app: Flask, port: int) -> None:
        self.app, self.port = app, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubServer:
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None


def _kiosk_config(hub_url: str, broker_url: str, ui_port: int, pre_encoded: bool) -> str:
    """The kiosk's TOML: synthetic camera, short timeouts, a test tone as the microphone."""
    return (
        f'hub = "{hub_url}"\ndevice = "{DEVICE}"\nbroker = "{broker_url}"\n'
        f'camera = "synthetic"\nui_port = {ui_port}\n'
        "[timeouts]\ngoodbye = 4\npoll = 0.5\nretry_min = 0.5\nretry_max = 2\n"
        f"[video]\npre_encoded = {'true' if pre_encoded else 'false'}\n"
        # A test tone as the microphone; staff's voice goes to ALSA's null device.
        '[audio]\nmicrophone = "tone"\nspeaker = "alsa:null"\n'
    )


def _shot(xvfb: Xvfb, kiosk: KioskProcess, name: str, *texts: str) -> Path:
    """Screenshot of the screen, checked for its key texts (in the page as shown)."""
    time.sleep(0.6)  # let the page paint
    path = xvfb.screenshot(SHOTS / f"kiosk-{name}.png")
    shown = kiosk.text()
    for text in texts:
        assert text in shown, f"{name}: {text!r} not in {shown!r}"
    return path


def _contrast(shot: Path, box: list[int]) -> float:
    """Standard deviation of the grey levels in the top left quarter of `box` on `shot`."""
    x, y, width, height = box
    with Image.open(shot) as image:
        grey = image.convert("L").crop((x, y, x + width // 2, y + height // 2))
    return float(ImageStat.Stat(grey).stddev[0])


@pytest.mark.parametrize("pre_encoded", [False, True], ids=["raw", "pre-encoded-h264"])
def test_a_walk_in_citizen_is_served_at_the_kiosk(
    browser: Browser,
    app: Flask,
    runtime: HubRuntime,
    mosquitto: Mosquitto,
    tmp_path: Path,
    pre_encoded: bool,
) -> None:
    setup_reception(runtime)
    staff = add_user(runtime, "erika")
    join_queues(runtime, "erika", "sozialamt")
    hub = HubServer(app, free_port()).start()
    xvfb = Xvfb(tmp_path / "xvfb.log").start()
    kiosk: KioskProcess | None = None
    state_topic = f"empfang/v1/default/devices/{DEVICE}/state"
    try:
        with Watcher(mosquitto.url, state_topic) as health:
            ui_port = free_port()
            config = _kiosk_config(hub.url, mosquitto.url, ui_port, pre_encoded)
            kiosk = KioskProcess(tmp_path, config, ui_port, xvfb)
            kiosk.wait_screen("attract", 60)
            online = health.wait(lambda m: json.loads(m.payload)["state"] == "online", 15)
            assert json.loads(online.payload)["kind"] == "kiosk"
            until(lambda: kiosk.js("document.getElementById('hub-figures').textContent"),
                  10, "the hub's figures")  # fmt: skip
            _shot(xvfb, kiosk, "1-attract", "Willkommen im Rathaus", "Deutsch", "English")

            # The citizen's touches, through the page and its bridge.
            kiosk.click("#lang-de")
            kiosk.wait_screen("concern")
            until(lambda: kiosk.js("!!document.getElementById('category-wohngeld')"), 10,
                  "the categories")  # fmt: skip
            _shot(xvfb, kiosk, "2-concern", "Worum geht es?", "Wohngeld", "Ausweis")
            kiosk.click("#category-wohngeld")
            kiosk.wait_screen("name")
            for key in "ADA":
                kiosk.click(f"#key-{key}")
            until(lambda: kiosk.js("document.getElementById('name-field').textContent")
                  == "Ada", 5, "the typed name")  # fmt: skip
            _shot(xvfb, kiosk, "3-name", "Wie dürfen wir Sie ansprechen?", "Wartenummer ziehen")
            kiosk.click("#take-ticket")
            kiosk.wait_screen("waiting")
            _shot(xvfb, kiosk, "4-waiting", "Bitte warten Sie einen Moment", "Abbrechen")

            with browser_context(browser) as staff_ctx:
                desk = staff_ctx.new_page()
                log_in_page(desk, hub.url, staff.username, staff.password)
                queue = desk.request.get(f"{hub.url}/api/v1/queue").json()
                sources = json.dumps(queue)
                assert f'"source": "{DEVICE}"' in sources, sources
                desk.goto(f"{hub.url}/staff/queue")
                expect(desk.get_by_text("Ada")).to_be_visible()
                admitted_at = time.monotonic()
                with staff_ctx.expect_page() as call_page_info:
                    desk.get_by_role("button", name="Einlassen").click()
                call = call_page_info.value
                call.wait_for_url("**/call/p-*", timeout=10000)

                # Staff see the kiosk's camera, playing.
                call.wait_for_function(
                    "() => [...document.querySelectorAll('video[data-participant]')]"
                    ".some((v) => v.videoWidth === 640)",
                    timeout=20000,
                )
                kiosk.wait_screen("call")
                # The kiosk counts staff frames and shows them in its window.
                media = until(
                    lambda: (m := kiosk.status()["media"])["frames_received"] > 30 and m,
                    20,
                    "frames from staff",
                )
                first_frame = time.monotonic() - admitted_at
                assert media["connection"] == "connected"
                # The kiosk's picture keeps flowing (raw frames, or H.264 packets).
                sent = media["frames_sent"]
                until(lambda: kiosk.status()["media"]["frames_sent"] > sent + 15, 5,
                      "the kiosk's picture to keep flowing")  # fmt: skip
                video = until(
                    lambda: (
                        (v := kiosk.video())["remote"]["painted"] > 5
                        and v["preview"]["painted"] > 0
                        and v
                    ),
                    10,
                    "the staff's video and the citizen's own in the kiosk window",
                )
                shot = _shot(xvfb, kiosk, "5-call", "Gespräch beenden", "Mikrofon aus")
                # On the screen, where the page left room: the staff's moving test
                # picture, not an empty black box.
                assert _contrast(shot, video["remote"]["screen_box"]) > 8
                remote, preview = video["remote"]["box"], video["preview"]["box"]
                assert remote[2] > 4 * preview[2]  # the staff large, the citizen small
                assert "frames from staff" in kiosk.log_text()
                # Sound both ways: the kiosk sends its microphone and plays staff's voice.
                until(lambda: kiosk.status()["media"]["audio_frames_played"] > 25, 10,
                      "staff's voice on the kiosk's speaker")  # fmt: skip
                assert kiosk.status()["media"]["audio_frames_sent"] > 25
                # The citizen mutes the microphone by touch, and turns it on again.
                kiosk.click("#mute")
                until(lambda: kiosk.status()["media"]["muted"], 5, "the microphone muted")
                _shot(xvfb, kiosk, "5b-call-muted", "Mikrofon ist aus")
                kiosk.click("#mute")
                until(lambda: not kiosk.status()["media"]["muted"], 5, "the microphone on")
                print(f"admit to first staff frame (upper bound): {first_frame:.2f} s; {media}")

                # Staff end the visit: goodbye, then the privacy reset.
                desk.goto(f"{hub.url}/staff/queue")
                # The live queue redraws its list: retry until the click lands.
                desk.get_by_role("button", name="Besuch beenden").click(timeout=15000)
                kiosk.wait_screen("goodbye")
                _shot(xvfb, kiosk, "6-goodbye", "Vielen Dank und auf Wiedersehen!")
                assert kiosk.js("sessionStorage.getItem('kiosk.language')") == "de"
                kiosk.wait_screen("attract", 20)
                stored = until(lambda: (s := kiosk.storage())["resets"] >= 1 and s,
                               10, "the privacy reset")  # fmt: skip
                assert (stored["local"], stored["session"], stored["cookies"]) == (0, 0, 0)
                assert kiosk.js("sessionStorage.getItem('kiosk.language')") is None
                assert not any(v["shown"] for v in kiosk.video().values())
                status = kiosk.status()
                assert status["has_ticket"] is False
                assert status["media"]["frames_received"] == 0
                state = kiosk.get("/state")
                assert (state["name"], state["category"]) == ("", None)

            # The hub goes away: out-of-service; it comes back: the kiosk recovers.
            hub.stop()
            kiosk.wait_screen("out-of-service", 20)
            _shot(xvfb, kiosk, "7-out-of-service", "Zurzeit außer Betrieb")
            hub.start()
            kiosk.wait_screen("attract", 20)
            _shot(xvfb, kiosk, "8-recovered", "Willkommen im Rathaus")
            assert kiosk.proc.poll() is None

            assert kiosk.stop() == 0
            kiosk = None
            health.wait(lambda m: json.loads(m.payload)["state"] == "offline", 10)
    finally:
        if kiosk is not None:
            kiosk.stop()
            print(kiosk.log_text()[-5000:])
        xvfb.stop()
        hub.stop()
