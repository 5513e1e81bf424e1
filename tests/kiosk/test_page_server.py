"""The kiosk's page server: its files, JSON routes and the raw picture feeds; the footprint
settings the kiosk starts with."""

from __future__ import annotations

import asyncio
import http.client

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from kiosk.engine import to_picture
from kiosk.footprint import tune_allocator, web_view_environment
from kiosk.server import FrameFeed, PageServer


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def test_pictures_files_and_routes() -> None:
    async def main() -> None:
        feed = FrameFeed()

        async def state(_query: dict[str, str]) -> dict[str, str]:
            return {"screen": "call"}

        server = await PageServer({"/state": state}, {"remote": feed}).start()
        port = server.port
        try:
            # Nothing to show yet: the request waits, then says so (204) with the number.
            status, headers, body = await asyncio.to_thread(_get, port, "/frame/remote.rgba")
            assert (status, headers["X-Frame"], body) == (204, "0", b"")
            # A picture arrives while the page waits for one newer than 0.
            waiting = asyncio.create_task(
                asyncio.to_thread(_get, port, "/frame/remote.rgba?after=0")
            )
            await asyncio.sleep(0.2)
            rgb = np.zeros((4, 6, 3), np.uint8)
            rgb[:, :, 0] = 200  # red
            converter = VideoReformatter()
            feed.put(to_picture(av.VideoFrame.from_ndarray(rgb, format="rgb24"), converter))
            status, headers, body = await waiting
            assert status == 200
            assert (headers["X-Frame"], headers["X-Width"], headers["X-Height"]) == ("1", "6", "4")
            pixels = np.frombuffer(body, np.uint8).reshape(4, 6, 4)
            assert pixels[0, 0].tolist() == [200, 0, 0, 255]
            assert feed.watchers == 0  # nobody waits any more: the engine makes no pictures
            # Scaled for the preview.
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            scaled = to_picture(frame, converter, (2, 2))
            assert (scaled.width, scaled.height, len(scaled.rgba)) == (2, 2, 16)
            # Unknown feeds and files, other methods, path tricks.
            assert (await asyncio.to_thread(_get, port, "/frame/secret.rgba"))[0] == 404
            assert (await asyncio.to_thread(_get, port, "/../config.py"))[0] == 404
            status, _h, body = await asyncio.to_thread(_get, port, "/state")
            assert (status, body) == (200, b'{"screen": "call"}')
            status, headers, body = await asyncio.to_thread(_get, port, "/")
            assert status == 200 and b"kiosk.js" in body
            assert headers["Content-Type"] == "text/html; charset=utf-8"
        finally:
            await server.close()

    asyncio.run(main())


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
