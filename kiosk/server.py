"""A tiny HTTP server on 127.0.0.1 for the kiosk's own page: its files, its state, and the
video as MJPEG.

Why MJPEG: the staff member's video arrives in this (Python) process through aiortc, and
QtWebEngine shows a ``multipart/x-mixed-replace`` JPEG stream in a plain ``<img>`` with no
script, no second WebRTC hop and no codec work in the page. At 640x480 and 15 fps a JPEG
is 30-60 kB, far below what loopback carries, and a frame costs a few milliseconds to
encode; frames are only encoded while the page is watching.

Routes: ``/`` and the static files of ``kiosk/ui``, ``/state`` (the screen as JSON, polled
by the page), ``/status`` (the state plus media figures, for tests and diagnostics),
``/remote.mjpg`` and ``/preview.mjpg``. Only GET; bound to loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

UI_DIR = Path(__file__).parent / "ui"
BOUNDARY = "kioskframe"
MAX_REQUEST = 8192


class FrameFeed:
    """The newest JPEG of one video; MJPEG streams wait for the next one."""

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.watchers = 0
        self.version = 0
        self._changed = asyncio.Event()

    def put(self, jpeg: bytes | None) -> None:
        """Show `jpeg` (None: nothing to show); call on the event loop's thread."""
        self.jpeg = jpeg
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def next(self, seen: int, timeout: float) -> tuple[int, bytes | None]:
        """The first picture newer than version `seen` (or the current one on timeout)."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version, self.jpeg


Handler = Callable[[dict[str, str]], Awaitable[Any]]


class PageServer:
    """Serves the UI, JSON routes and MJPEG feeds on 127.0.0.1:`port` (0: a free port)."""

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
            elif path.endswith(".mjpg") and path[1:-5] in self._feeds:
                await self._stream(writer, self._feeds[path[1:-5]])
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
        self, writer: asyncio.StreamWriter, status: int, body: bytes, kind: str
    ) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

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

    async def _stream(self, writer: asyncio.StreamWriter, feed: FrameFeed) -> None:
        writer.write(
            "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nConnection: close\r\n"
            f"Content-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\r\n".encode()
        )
        feed.watchers += 1
        try:
            seen = -1
            while True:
                seen, jpeg = await feed.next(seen, timeout=1.0)
                if jpeg is None:
                    continue
                writer.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                await writer.drain()
        finally:
            feed.watchers -= 1
