"""A tiny HTTP server on 127.0.0.1 for the kiosk's own page: its files and its state.

The page asks ``/state`` for each new view (a long poll) and draws the screen from it; the
call's videos are not part of the page (see `kiosk.overlay`). Routes: ``/`` and the static
files of ``kiosk/ui``, ``/state`` (the screen as JSON), ``/status`` (the state plus media
figures, for diagnostics) and whatever the owner adds with `PageServer.add_routes`. Every
route only reads its query as data: none runs a script or code it was sent. Only GET; bound
to loopback only.
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
MAX_REQUEST = 8192


Handler = Callable[[dict[str, str]], Awaitable[Any]]


class PageServer:
    """Serves the UI and JSON routes on 127.0.0.1:`port` (0: a free port)."""

    def __init__(
        self,
        routes: dict[str, Handler],
        port: int = 0,
        ui_dir: Path = UI_DIR,
    ) -> None:
        self._routes = routes
        self._ui_dir = ui_dir.resolve()
        self._port = port
        self._server: asyncio.Server | None = None
        self._requests: set[asyncio.Task[Any]] = set()

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
        """Stop listening and end every open request; idempotent."""
        if self._server is not None:
            self._server.close()
            for task in list(self._requests):
                task.cancel()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._requests.add(task)
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
                self._requests.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, kind: str
    ) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: {kind}\r\n"
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
