"""The call's videos as Qt widgets laid over the web view, where the page leaves room.

The staff member's video arrives in this process through aiortc. Handing it to the web
page (fetch, canvas) cost the web view memory it kept long after, about 10 MB a minute of
call; a Qt widget that paints the engine's RGBA pictures costs one picture and no web
memory at all. The page reports where its video boxes are (``KioskApi.video``), and
`VideoOverlays.place` puts one widget on each, above the page; touches go through to the
page. Pictures are converted in the engine at the widget's size, so painting is a copy.

Everything here runs on Qt's GUI thread, except a feed's viewer (`_Screen.offer`), which
keeps only the newest picture and wakes the GUI thread once for it.
"""

from __future__ import annotations

import threading
from typing import Any

from kiosk.pictures import FrameFeed, Picture

# x, y, width, height in the web view's pixels, and the width of a white frame inside
Box = tuple[int, int, int, int, int]
BACKGROUND = (0, 0, 0)
FRAME = (255, 255, 255)
MAX_FRAME = 16


def parse_boxes(raw: object, names: set[str]) -> dict[str, Box]:
    """The page's boxes ({name: [x, y, width, height, frame]}, frame optional), checked;
    unknown or bad ones are dropped."""
    if not isinstance(raw, dict):
        return {}
    boxes: dict[str, Box] = {}
    for name, value in raw.items():
        if name not in names or not isinstance(value, list | tuple) or len(value) not in (4, 5):
            continue
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            continue
        x, y, width, height, frame = (round(v) for v in (*value, 0)[:5])
        if width >= 2 and height >= 2 and -10000 < x < 10000 and -10000 < y < 10000:
            frame = max(0, min(frame, MAX_FRAME, (min(width, height) - 2) // 2))
            boxes[name] = (x, y, min(width, 8192), min(height, 8192), frame)
    return boxes


class VideoOverlays:
    """One widget per picture feed over `view` (a QWidget); built on the GUI thread."""

    def __init__(self, view: Any, feeds: dict[str, FrameFeed]) -> None:
        screen_class = _screen_class()
        # Later siblings are drawn on top: the small preview goes last.
        self._screens = {name: screen_class(view, feed) for name, feed in feeds.items()}

    def place(self, raw: object) -> None:
        """Show a video in each box the page gives (see `parse_boxes`); hide the others (and
        stop their pictures)."""
        boxes = parse_boxes(raw, set(self._screens))
        for name, screen in self._screens.items():
            screen.place(boxes.get(name))

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per video: whether it shows, where (in the view and on the screen), pictures painted."""
        return {name: screen.figures() for name, screen in self._screens.items()}


def _screen_class() -> type:
    """The widget class; made on first use, so that only the windowed kiosk imports Qt."""
    from PyQt6.QtCore import QPoint, QRect, Qt, pyqtSignal
    from PyQt6.QtGui import QColor, QImage, QPainter
    from PyQt6.QtWidgets import QWidget

    class _Screen(QWidget):  # type: ignore[misc]
        arrived = pyqtSignal()

        def __init__(self, parent: Any, feed: FrameFeed) -> None:
            super().__init__(parent)
            self._feed = feed
            self._lock = threading.Lock()
            self._pending: Picture | None = None
            self._woken = False
            self._picture: Picture | None = None  # the bytes behind _image
            self._image: QImage | None = None
            self.painted = 0
            self._frame = 0
            self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
            self.arrived.connect(self._take, Qt.ConnectionType.QueuedConnection)
            self.hide()

        def place(self, box: Box | None) -> None:
            if box is None:
                self._feed.unwatch(self.offer)
                self.hide()
                self._show(None)
                return
            x, y, width, height, self._frame = box
            self.setGeometry(x, y, width, height)
            inside = 2 * self._frame
            self._feed.watch(self.offer, (width - inside, height - inside))
            self.show()
            self.raise_()

        def offer(self, picture: Picture | None) -> None:
            """A new picture (any thread): keep the newest, wake the GUI thread once."""
            with self._lock:
                self._pending = picture
                wake, self._woken = not self._woken, True
            if wake:
                self.arrived.emit()

        def _take(self) -> None:
            with self._lock:
                picture, self._pending, self._woken = self._pending, None, False
            self._show(picture)

        def _show(self, picture: Picture | None) -> None:
            self._picture = picture
            self._image = None
            if picture is not None:
                self._image = QImage(
                    picture.rgba,
                    picture.width,
                    picture.height,
                    picture.width * 4,
                    QImage.Format.Format_RGBA8888,
                )
            self.update()

        def paintEvent(self, _event: Any) -> None:
            painter = QPainter(self)
            try:
                frame = self._frame
                if frame:
                    painter.fillRect(self.rect(), QColor(*FRAME))
                area = self.rect().adjusted(frame, frame, -frame, -frame)
                painter.fillRect(area, QColor(*BACKGROUND))
                image = self._image
                if image is None:
                    return
                target = QRect(0, 0, image.width(), image.height())
                if image.width() > area.width() or image.height() > area.height():
                    keep = Qt.AspectRatioMode.KeepAspectRatio
                    target.setSize(image.size().scaled(area.size(), keep))
                target.moveCenter(area.center())
                painter.drawImage(target, image)
                self.painted += 1
            finally:
                painter.end()

        def figures(self) -> dict[str, Any]:
            if not self.isVisible():
                return {"shown": False, "box": None, "screen_box": None, "painted": self.painted}
            corner = self.mapToGlobal(QPoint(0, 0))
            return {
                "shown": True,
                "box": [self.x(), self.y(), self.width(), self.height()],
                "screen_box": [corner.x(), corner.y(), self.width(), self.height()],
                "painted": self.painted,
            }

    return _Screen
