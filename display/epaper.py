"""The e-paper output: a Pillow image at the panel's resolution, redrawn only when its
visible content changes, with a full refresh at most every N minutes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont

from display.config import EpaperConfig
from display.model import BoardView, Shown
from display.panels import BLACK, RED, WHITE, Panel
from display.texts import Language, RoomText, room_text

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]

# States drawn as a solid band (word and icon in white on the accent colour).
_BANDED = frozenset({Shown.BUSY, Shown.DND})
# States whose word and icon take the accent colour on white.
_ACCENTED = frozenset({Shown.WAITING})


class Fonts:
    """DejaVu Sans (Debian fonts-dejavu-core) in any size, else Pillow's built-in font.

    Fonts are sized arithmetically from one reference size, and only a few sizes are
    kept, so memory stays flat however many texts are fitted.
    """

    REFERENCE = 100
    KEEP = 12

    def __init__(self, directory: Path = FONT_DIR) -> None:
        self._directory = directory
        self._cache: dict[tuple[bool, int], Font] = {}

    def get(self, size: int, bold: bool = False) -> Font:
        """A font of ``size`` pixels."""
        key = (bold, size)
        font = self._cache.pop(key, None)
        if font is None:
            name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
            try:
                font = ImageFont.truetype(
                    str(self._directory / name), size, layout_engine=ImageFont.Layout.BASIC
                )
            except OSError:
                font = ImageFont.load_default(size=size)
            while len(self._cache) >= self.KEEP:
                self._cache.pop(next(iter(self._cache)))  # the least recently used
        self._cache[key] = font
        return font

    def fit(
        self, draw: ImageDraw.ImageDraw, text: str, width: float, size: int, bold: bool
    ) -> Font:
        """The largest font up to ``size`` in which ``text`` fits ``width`` pixels."""
        length = draw.textlength(text, font=self.get(self.REFERENCE, bold))
        if length > 0:
            size = min(size, int(self.REFERENCE * width / length))
        size = _step_down(size)
        while size > 8 and draw.textlength(text, font=self.get(size, bold)) > width:
            size = _step_down(size - 1)
        return self.get(size, bold)


def _step_down(size: int) -> int:
    """The nearest size at or below ``size`` on a ladder of 6% steps from 8 px.

    Texts of similar length then share a font instead of each loading its own.
    """
    step = 8
    while int(step * 1.06) + 1 <= size:
        step = int(step * 1.06) + 1
    return max(8, min(step, size))


def _wrap(text: str) -> list[str]:
    """Split a long word group in two at the space nearest its middle."""
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if not spaces:
        return [text]
    middle = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [text[:middle], text[middle + 1 :]]


def draw_icon(
    draw: ImageDraw.ImageDraw, icon: str, box: Sequence[float], fg: RGB, bg: RGB, fonts: Fonts
) -> None:
    """Draw one of the state icons (see texts.ICONS) into the square ``box``."""
    x0, y0, x1, y1 = box
    s = x1 - x0
    w = max(2, int(s * 0.09))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if icon == "check":
        draw.ellipse(box, outline=fg, width=w)
        pts = [
            (x0 + s * 0.27, cy + s * 0.02),
            (x0 + s * 0.44, y0 + s * 0.69),
            (x0 + s * 0.74, y0 + s * 0.32),
        ]
        draw.line(pts, fill=fg, width=int(w * 1.4), joint="curve")
    elif icon == "no-entry":
        draw.ellipse(box, fill=fg)
        draw.rectangle((x0 + s * 0.18, cy - s * 0.09, x1 - s * 0.18, cy + s * 0.09), fill=bg)
    elif icon == "hourglass":
        top = [(x0 + s * 0.2, y0 + s * 0.08), (x1 - s * 0.2, y0 + s * 0.08), (cx, cy)]
        bottom = [(cx, cy), (x1 - s * 0.2, y1 - s * 0.08), (x0 + s * 0.2, y1 - s * 0.08)]
        draw.polygon(top, outline=fg, width=w)
        draw.polygon(bottom, fill=fg, outline=fg, width=w)
        draw.line(
            [(x0 + s * 0.12, y0 + s * 0.08), (x1 - s * 0.12, y0 + s * 0.08)], fill=fg, width=w
        )
        draw.line(
            [(x0 + s * 0.12, y1 - s * 0.08), (x1 - s * 0.12, y1 - s * 0.08)], fill=fg, width=w
        )
    elif icon == "lock":
        draw.arc(
            (x0 + s * 0.25, y0 + s * 0.05, x1 - s * 0.25, y0 + s * 0.6), 180, 360, fill=fg, width=w
        )
        draw.line(
            [(x0 + s * 0.25 + w / 2, y0 + s * 0.33), (x0 + s * 0.25 + w / 2, y0 + s * 0.45)],
            fill=fg,
            width=w,
        )
        draw.line(
            [(x1 - s * 0.25 - w / 2, y0 + s * 0.33), (x1 - s * 0.25 - w / 2, y0 + s * 0.45)],
            fill=fg,
            width=w,
        )
        draw.rounded_rectangle(
            (x0 + s * 0.15, y0 + s * 0.42, x1 - s * 0.15, y1 - s * 0.05), s * 0.06, fill=fg
        )
        draw.ellipse((cx - s * 0.06, cy + s * 0.08, cx + s * 0.06, cy + s * 0.2), fill=bg)
    elif icon == "moon":
        draw.ellipse((x0 + s * 0.05, y0 + s * 0.05, x1 - s * 0.05, y1 - s * 0.05), fill=fg)
        draw.ellipse((x0 + s * 0.32, y0 - s * 0.05, x1 + s * 0.12, y1 - s * 0.3), fill=bg)
    else:  # question
        draw.ellipse(box, outline=fg, width=w)
        draw.text((cx, cy), "?", font=fonts.get(int(s * 0.62), bold=True), fill=fg, anchor="mm")


class BoardPainter:
    """Paints the texts of one or more rooms onto an image of the panel's size."""

    def __init__(self, width: int, height: int, colours: str, fonts: Fonts | None = None) -> None:
        self.size = (width, height)
        self.accent: RGB = RED if colours == "bwr" else BLACK
        self.fonts = fonts or Fonts()
        self._inks = [*WHITE, *BLACK, *RED] if colours == "bwr" else [*WHITE, *BLACK]

    def paint(self, rooms: Sequence[RoomText]) -> Image.Image:
        """The finished image in the panel's inks only: one big room, or a list of rooms."""
        # A palette image of the panel's inks only: no grey, no second full-colour copy.
        image = Image.new("P", self.size, 0)
        image.putpalette(self._inks)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: e-paper has no grey
        if len(rooms) == 1:
            self._single(draw, rooms[0])
        else:
            self._list(draw, rooms)
        return image

    def _colours(self, room: RoomText) -> tuple[RGB, RGB, RGB | None]:
        """(ink, background, band) for a room's state."""
        if room.shown in _BANDED:
            return WHITE, self.accent, self.accent
        if room.shown in _ACCENTED:
            return self.accent, WHITE, None
        return BLACK, WHITE, None

    def _single(self, draw: ImageDraw.ImageDraw, room: RoomText) -> None:
        w, h = self.size
        m = max(4, int(h * 0.05))
        name_font = self.fonts.fit(draw, room.name, w - 2 * m, int(h * 0.1), bold=False)
        draw.text((m, m), room.name, font=name_font, fill=BLACK)
        top, bottom = int(h * 0.2), int(h * 0.8)
        ink, bg, band = self._colours(room)
        if band is not None:
            draw.rectangle((0, top, w, bottom), fill=band)
        else:
            draw.line([(m, top), (w - m, top)], fill=BLACK, width=max(1, h // 160))
        icon = int((bottom - top) * 0.7)
        iy = top + ((bottom - top) - icon) // 2
        draw_icon(draw, room.icon, (m, iy, m + icon, iy + icon), ink, bg, self.fonts)
        left = m * 2 + icon
        self._word(draw, room.word, (left, top, w - m, bottom), ink)
        foot = self.fonts.get(max(10, int(h * 0.075)))
        draw.text((m, h - m), room.since or room.hint, font=foot, fill=BLACK, anchor="ls")
        if room.waiting:
            draw.text((w - m, h - m), room.waiting, font=foot, fill=self.accent, anchor="rs")

    def _word(self, draw: ImageDraw.ImageDraw, text: str, box: Sequence[int], ink: RGB) -> None:
        x0, y0, x1, y1 = box
        width, height = x1 - x0, y1 - y0
        font = self.fonts.fit(draw, text, width, int(height * 0.42), bold=True)
        lines = [text]
        if font.size < height * 0.25 and " " in text:  # type: ignore[union-attr]
            lines = _wrap(text)
            font = self.fonts.fit(draw, max(lines, key=len), width, int(height * 0.36), bold=True)
        step = height / (len(lines) + 1)
        for i, line in enumerate(lines, start=1):
            draw.text((x0, y0 + step * i), line, font=font, fill=ink, anchor="lm")

    def _list(self, draw: ImageDraw.ImageDraw, rooms: Sequence[RoomText]) -> None:
        w, h = self.size
        row = h / len(rooms)
        m = max(3, int(min(row, h) * 0.08))
        for i, room in enumerate(rooms):
            y0, y1 = int(i * row), int((i + 1) * row)
            ink, bg, band = self._colours(room)
            if band is not None:
                draw.rectangle((0, y0, w, y1), fill=band)
            elif i:
                draw.line([(0, y0), (w, y0)], fill=BLACK, width=1)
            icon = int((y1 - y0) * 0.7)
            iy = y0 + ((y1 - y0) - icon) // 2
            draw_icon(draw, room.icon, (m, iy, m + icon, iy + icon), ink, bg, self.fonts)
            text_x = 2 * m + icon
            name_ink = WHITE if band is not None else BLACK
            name_font = self.fonts.fit(
                draw, room.name, (w - text_x) * 0.45, int((y1 - y0) * 0.3), False
            )
            draw.text(
                (text_x, (y0 + y1) / 2), room.name, font=name_font, fill=name_ink, anchor="lm"
            )
            extra = room.waiting or room.hint
            word_font = self.fonts.fit(
                draw, room.word, (w - text_x) * 0.5, int((y1 - y0) * 0.36), True
            )
            mid = (y0 + y1) / 2 - ((y1 - y0) * 0.12 if extra else 0)
            draw.text((w - m, mid), room.word, font=word_font, fill=ink, anchor="rm")
            if extra:
                small = self.fonts.get(max(8, int((y1 - y0) * 0.16)))
                draw.text((w - m, y1 - m), extra, font=small, fill=name_ink, anchor="rs")


class FullRefreshPolicy:
    """A full refresh on the first draw, then at most every ``minutes``; partial otherwise."""

    def __init__(self, minutes: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = minutes * 60
        self._monotonic = monotonic
        self._last_full: float | None = None

    def next_is_full(self) -> bool:
        """Decide for the draw about to happen (and remember a full one)."""
        now = self._monotonic()
        if self._last_full is None or now - self._last_full >= self.seconds:
            self._last_full = now
            return True
        return False


class EpaperOutput:
    """Draws the board for an e-paper panel, only when its visible content changes."""

    name = "epaper"

    def __init__(
        self,
        panel: Panel,
        config: EpaperConfig,
        language: Language,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.panel = panel
        self.painter = BoardPainter(config.width, config.height, config.colours)
        self.policy = FullRefreshPolicy(config.full_refresh_minutes, monotonic)
        self._language = language
        self._zone = zone
        self._clock = clock
        self._content: tuple[RoomText, ...] | None = None
        self.draws = 0
        self._closed = False

    def content(self, view: BoardView) -> tuple[RoomText, ...]:
        """What the image would show (texts, not pixels): equal content, equal image."""
        now = self._clock()
        return tuple(room_text(room, self._language, self._zone, now) for room in view.rooms)

    def render(self, view: BoardView) -> bool:
        """Redraw and hand the image to the panel if the content changed."""
        content = self.content(view)
        if content == self._content or self._closed:
            return False
        image = self.painter.paint(content)
        self.panel.show(image, full=self.policy.next_is_full())
        self._content = content
        self.draws += 1
        log.info("e-paper drawn: %s", ", ".join(f"{r.room} {r.word}" for r in content))
        return True

    def close(self) -> None:
        """Put the panel to sleep; safe to call twice."""
        if not self._closed:
            self._closed = True
            self.panel.close()
