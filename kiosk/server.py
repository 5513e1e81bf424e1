"""A tiny HTTP server on 127.0.0.1 for the kiosk's own page: its files, its state, and the
video as raw pictures.

The staff member's video arrives in this (Python) process through aiortc; the page shows
it with no second WebRTC hop and no codec work of its own. It fetches one picture at a
time (``/frame/remote.rgba?after=N`` waits for the first picture newer than N; the
``X-Frame``, ``X-Width`` and ``X-Height`` headers describe it) and copies the RGBA bytes
into one reused canvas ImageData. At 640x480 that is 1.2 MB a picture, nothing for
loopback, and no decoding anywhere. Pictures are only made while the page is watching.

Why not JPEG: QtWebEngine keeps what it decodes until its garbage collector runs, and the
collector does not see that memory. An MJPEG ``<img>`` grew the web view by about 9 MB a
second of call, JPEG blobs grew the kiosk process itself, and ``ImageDecoder`` pictures
grew the renderer by 14 MB a second. Plain ArrayBuffers are counted, so they are freed.

Routes: ``/`` and the static files of ``kiosk/ui``, ``/state`` (the screen as JSON, polled
by the page), ``/status`` (the state plus media figures, for tests and diagnostics),
``/frame/remote.rgba`` and ``/frame/preview.rgba``. Only GET; bound to loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

UI_DIR = Path(__file__).parent / "ui"
MAX_REQUEST = 8192


@dataclass(frozen=True)
class Picture:
    """One video picture as RGBA bytes, row by row."""

    width: int
    height: int
    rgba: bytes


class FrameFeed:
    """The newest picture of one video; the page's requests wait for the next one."""

    def __init__(self) -> None:
        self.picture: Picture | None = None
        self.watchers = 0
        self.version = 0
        self._changed = asyncio.Event()

    def put(self, picture: Picture | None) -> None:
        """Show `picture` (None: nothing to show); call on the event loop's thread."""
        self.picture = picture
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def next(self, seen: int, timeout: float) -> tuple[int, Picture | None]:
        """The first picture newer than version `seen` (or the current one on timeout)."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version, self.picture


Handler = Callable[[dict[str, str]], Awaitable[Any]]


class PageServer:
    """Serves the UI, JSON routes and picture feeds on 127.0.0.1:`port` (0: a free port)."""

    def __init__(
        self,
        routes: dict[str, Handler],
        feeds: dict[str, FrameFeed],
        port: int = 0,
        ui_dir: Path = UI_DIR,
    ) -> None:
        self._routes = routes
        self._feeds = feeds
        self._ui_dir = ui_dir.resolve()
        self._port = port
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    def add_routes(self, routes: dict[str, Handler]) -> None:
        """Answer more JSON routes from now on."""
        self._routes.update(routes)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> PageServer:
        """Listen on loopback."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        return self

    async def close(self) -> None:
        """Stop listening and end every stream; idempotent."""
        if self._server is not None:
            self._server.close()
            for task in list(self._streams):
                task.cancel()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if len(head) > MAX_REQUEST:
                return
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            parts = urlsplit(target)
            path = parts.path
            if method != "GET":
                await self._send(writer, 405, b"only GET", "text/plain")
            elif path in self._routes:
                query = dict(parse_qsl(parts.query))
                body = json.dumps(await self._routes[path](query)).encode()
                await self._send(writer, 200, body, "application/json")
            elif path.startswith("/frame/") and path.endswith(".rgba"):
                feed = self._feeds.get(path[len("/frame/") : -len(".rgba")])
                if feed is None:
                    await self._send(writer, 404, b"no such feed", "text/plain")
                else:
                    after = int(dict(parse_qsl(parts.query)).get("after", "-1"))
                    await self._picture(writer, feed, after)
            else:
                await self._static(writer, path)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            TimeoutError,
            ValueError,
        ):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._streams.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        kind: str,
        extra: str = "",
    ) -> None:
        reason = {200: "OK", 204: "No Content", 404: "Not Found", 405: "Method Not Allowed"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n{extra}"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _picture(self, writer: asyncio.StreamWriter, feed: FrameFeed, after: int) -> None:
        """The first picture newer than number `after` (204 when none comes within 2 s)."""
        feed.watchers += 1
        try:
            version, picture = await feed.next(after, timeout=2.0)
        finally:
            feed.watchers -= 1
        kind = "application/octet-stream"
        if picture is None or version == after:
            await self._send(writer, 204, b"", kind, f"X-Frame: {version}\r\n")
            return
        size = f"X-Frame: {version}\r\nX-Width: {picture.width}\r\nX-Height: {picture.height}\r\n"
        await self._send(writer, 200, picture.rgba, kind, size)

    async def _static(self, writer: asyncio.StreamWriter, path: str) -> None:
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        file = (self._ui_dir / name).resolve()
        if self._ui_dir not in file.parents or not file.is_file():
            await self._send(writer, 404, b"not found", "text/plain")
            return
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        await self._send(writer, 200, file.read_bytes(), kind)
