"""E-paper panel drivers behind one small adapter: a PNG file, Waveshare, Inky.

The hardware libraries are imported only when such a panel is opened, and a missing one
fails with a message that says what to install.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageChops

from display.config import ConfigError, EpaperConfig

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
RED = (255, 0, 0)

# Aliases for Waveshare panels: name -> module in the waveshare_epd package.
WAVESHARE_MODULES = {"waveshare-7in5b": "epd7in5b_V2", "waveshare-2in9": "epd2in9_V2"}


class Panel(Protocol):
    """Shows a finished image; ``full`` asks for a full (flashing, ghost-free) refresh."""

    def show(self, image: Image.Image, full: bool) -> None:
        """Put ``image`` on the panel."""
        ...

    def close(self) -> None:
        """Put the panel to sleep and release it; safe to call twice."""
        ...


class PngSink:
    """Writes each image to a PNG file atomically (temp file + rename): tests and previews."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writes = 0
        self.full_refreshes = 0

    def show(self, image: Image.Image, full: bool) -> None:
        """Replace the file with ``image`` in one step (readers never see half a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                image.save(fh, format="PNG")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1
        self.full_refreshes += int(full)

    def close(self) -> None:
        """Nothing to release."""


def _layers(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Split an RGB image into 1-bit black and red layers (0 = ink, as Waveshare wants)."""
    rgb = image.convert("RGB")
    r, g, _b = rgb.split()
    red_ink = ImageChops.multiply(
        r.point(lambda v: 255 if v > 160 else 0), g.point(lambda v: 255 if v < 100 else 0)
    )
    dark = rgb.convert("L").point(lambda v: 255 if v < 128 else 0)
    black_ink = ImageChops.subtract(dark, red_ink)
    return ImageChops.invert(black_ink).convert("1"), ImageChops.invert(red_ink).convert("1")


class WaveshareAdapter:
    """A Waveshare panel through its ``waveshare_epd`` Python driver."""

    def __init__(self, module: str, colours: str) -> None:
        self._red = colours == "bwr"
        try:
            self._driver: Any = importlib.import_module(f"waveshare_epd.{module}")
        except ImportError as exc:
            raise ConfigError(
                "epaper.panel",
                f"the Waveshare driver waveshare_epd.{module} is not installed ({exc}); install "
                "Waveshare's e-Paper Python library on the Pi",
            ) from None
        self._epd = self._driver.EPD()
        self._epd.init()
        self._closed = False

    def show(self, image: Image.Image, full: bool) -> None:
        """Full refresh, or a partial one where the panel can do it."""
        black, red = _layers(image)
        if not full and hasattr(self._epd, "display_Partial"):
            self._epd.display_Partial(self._epd.getbuffer(black))
        elif self._red:
            self._epd.init()
            self._epd.display(self._epd.getbuffer(black), self._epd.getbuffer(red))
        else:
            self._epd.init()
            self._epd.display(self._epd.getbuffer(black))

    def close(self) -> None:
        """Put the panel to sleep; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._epd.sleep()


class InkyAdapter:
    """A Pimoroni Inky panel through the ``inky`` library (auto-detected)."""

    def __init__(self) -> None:
        try:
            auto = importlib.import_module("inky.auto")
        except ImportError as exc:
            raise ConfigError(
                "epaper.panel", f"the inky library is not installed ({exc}); pip install inky"
            ) from None
        self._inky: Any = auto.auto()

    def show(self, image: Image.Image, full: bool) -> None:
        """Hand the image over (Inky always does a full refresh)."""
        palette = Image.new("P", (1, 1))
        palette.putpalette([*WHITE, *BLACK, *RED] + [0] * 759)
        self._inky.set_image(
            image.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE)
        )
        self._inky.show()

    def close(self) -> None:
        """Nothing to release."""


def open_panel(config: EpaperConfig) -> Panel:
    """The panel named by ``epaper.panel``."""
    spec = config.panel
    if spec.startswith("png:"):
        return PngSink(Path(spec[4:]))
    if spec.startswith("waveshare:"):
        return WaveshareAdapter(spec.split(":", 1)[1], config.colours)
    if spec in WAVESHARE_MODULES:
        return WaveshareAdapter(WAVESHARE_MODULES[spec], config.colours)
    if spec == "inky":
        return InkyAdapter()
    raise ConfigError("epaper.panel", f"unknown panel {spec!r}")
