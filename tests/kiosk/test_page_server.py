"""The kiosk's page server (its files and JSON routes), the pictures of the call's videos,
the video boxes the page reports, and the footprint settings the kiosk starts with."""

from __future__ import annotations

import asyncio
import http.client

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from kiosk.config import parse_config
from kiosk.engine import Engine
from kiosk.footprint import tune_allocator, web_view_environment
from kiosk.overlay import parse_boxes
from kiosk.pictures import FrameFeed, Picture, fit, to_picture
from kiosk.server import PageServer


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def red_frame(width: int = 6, height: int = 4) -> av.VideoFrame:
    """A red video frame, as aiortc hands the staff's video to the engine."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = 200
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def test_files_and_routes() -> None:
    async def main() -> None:
        async def state(_query: dict[str, str]) -> dict[str, str]:
            return {"screen": "call"}

        server = await PageServer({"/state": state}).start()
        port = server.port
        try:
            status, _h, body = await asyncio.to_thread(_get, port, "/state")
            assert (status, body) == (200, b'{"screen": "call"}')
            status, headers, body = await asyncio.to_thread(_get, port, "/")
            assert status == 200 and b"kiosk.js" in body
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            assert headers["Cache-Control"] == "no-store"
            # Unknown files, path tricks, and the routes that are gone.
            assert (await asyncio.to_thread(_get, port, "/../config.py"))[0] == 404
            assert (await asyncio.to_thread(_get, port, "/%2e%2e/config.py"))[0] == 404
            assert (await asyncio.to_thread(_get, port, "/stream/remote.rgba"))[0] == 404
        finally:
            await server.close()

    asyncio.run(main())


def test_pictures_fit_the_box_that_shows_them() -> None:
    converter = VideoReformatter()
    whole = to_picture(red_frame(), converter)
    assert (whole.width, whole.height, len(whole.rgba)) == (6, 4, 96)
    assert np.frombuffer(whole.rgba, np.uint8).reshape(4, 6, 4)[0, 0].tolist() == [200, 0, 0, 255]
    # 640x480 into a wide box: as high as the box, the aspect kept, even sizes.
    assert fit(640, 480, (1248, 571)) == (760, 570)
    assert fit(640, 480, (234, 174)) == (232, 174)
    assert fit(640, 480, None) == (640, 480)
    assert fit(640, 480, (0, 0)) == (640, 480)  # a box not laid out yet
    scaled = to_picture(red_frame(640, 480), converter, (320, 320))
    assert (scaled.width, scaled.height, len(scaled.rgba)) == (320, 240, 320 * 240 * 4)


def test_a_feed_hands_pictures_only_to_its_viewers() -> None:
    feed = FrameFeed()
    seen: list[Picture | None] = []
    assert feed.watchers == 0  # nobody watches: the engine makes no pictures
    feed.watch(seen.append, (320, 240))
    feed.watch(seen.append, (160, 120))  # the same viewer again: its box changes, once
    assert (feed.watchers, feed.box) == (1, (160, 120))
    picture = to_picture(red_frame(), VideoReformatter(), feed.box)
    feed.put(picture)
    feed.put(None)
    assert seen == [picture, None]
    feed.unwatch(seen.append)
    feed.put(picture)
    assert feed.watchers == 0 and seen == [picture, None]


def test_the_page_boxes_are_checked() -> None:
    names = {"remote", "preview"}
    raw = {"remote": [16, 16.4, 1248, 571], "preview": [1000, 380, 240, 180, 3]}
    assert parse_boxes(raw, names) == {
        "remote": (16, 16, 1248, 571, 0),
        "preview": (1000, 380, 240, 180, 3),
    }
    bad: list[object] = [
        None,
        "remote",
        [1, 2, 3, 4],
        {"secret": [0, 0, 10, 10]},
        {"remote": [0, 0, 10]},
        {"remote": [0, 0, 10, 10, 1, 1]},
        {"remote": [0, 0, "10", 10]},
        {"remote": [0, 0, True, 10]},
        {"remote": [0, 0, 1, 10]},
        {"remote": [99999, 0, 10, 10]},
    ]
    for value in bad:
        assert parse_boxes(value, names) == {}, value
    # Sizes and frames within reason.
    huge = {"remote": [0, 0, 99999, 99999, 500], "preview": [0, 0, 10, 10, 9]}
    assert parse_boxes(huge, names) == {
        "remote": (0, 0, 8192, 8192, 16),
        "preview": (0, 0, 10, 10, 4),
    }


def test_the_web_view_draws_in_software_in_one_process() -> None:
    env: dict[str, str] = {"QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox"}
    web_view_environment(env)
    assert env["QTWEBENGINE_CHROMIUM_FLAGS"] == "--no-sandbox --disable-gpu --single-process"
    assert env["QT_XCB_GL_INTEGRATION"] == "none" and env["QT_QUICK_BACKEND"] == "software"
    web_view_environment(env)  # twice changes nothing
    assert env["QTWEBENGINE_CHROMIUM_FLAGS"] == "--no-sandbox --disable-gpu --single-process"
    # A deployment's own choices stay.
    own = {"QTWEBENGINE_CHROMIUM_FLAGS": "--enable-gpu", "QT_QUICK_BACKEND": "rhi"}
    web_view_environment(own)
    assert own["QTWEBENGINE_CHROMIUM_FLAGS"] == "--enable-gpu"
    assert own["QT_QUICK_BACKEND"] == "rhi"


def test_the_allocator_is_tuned_on_glibc() -> None:
    env: dict[str, str] = {}
    assert tune_allocator(env) is True  # this machine runs glibc, like Raspberry Pi OS
    assert env["OPENBLAS_NUM_THREADS"] == "1"


def test_the_page_learns_of_each_change_with_one_request() -> None:
    engine = Engine(parse_config({"hub": "https://empfang.example/", "device": "kiosk-1"}))

    async def main() -> None:
        first = await engine.next_view({})
        assert first["screen"] == "attract" and first["tag"]
        assert await engine.next_view({"seen": "stale"}) == first  # an old tag: at once
        # The page's tag is current: the request waits until the view changes.
        waiting = asyncio.create_task(engine.next_view({"seen": first["tag"]}))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        engine.flow.start("en")
        changed = await asyncio.wait_for(waiting, 2)
        assert (changed["screen"], changed["language"]) == ("concern", "en")
        assert changed["tag"] != first["tag"]
        assert (await engine.next_view({}))["tag"] == changed["tag"]  # same view, same tag

    asyncio.run(main())
