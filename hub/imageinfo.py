"""Picture sizes from PNG and JPEG headers alone: no pixel is ever decoded.

`size(head)` takes the first bytes of a file as they arrive and answers as soon as they
hold the size (PNG: the IHDR chunk; JPEG: the first SOFn segment, found by walking the
segments before it), None while more bytes are needed, or raises NotAnImage.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE: Final = b"\xff\xd8\xff"  # start of image, then the first marker's 0xFF

_PNG_HEADER_END: Final = 33  # signature 8, chunk length 4, "IHDR" 4, data 13, CRC 4
# Bit depths PNG allows per colour type (grey, RGB, palette, grey+alpha, RGBA).
_PNG_DEPTHS: Final = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_MAX_SIDE: Final = 2**31 - 1

# Start of frame: baseline, extended, progressive, lossless, in Huffman and arithmetic
# coding. 0xC4 (DHT), 0xC8 (reserved) and 0xCC (DAC) share the range but are not frames.
_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA


class NotAnImage(ValueError):
    """The bytes do not begin a well-formed PNG or JPEG header."""


@dataclass(frozen=True)
class Size:
    """A picture's width and height in pixels."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


def size(head: bytes) -> Size | None:
    """The size of the PNG or JPEG that `head` begins; None while `head` is too short."""
    if head.startswith(PNG_SIGNATURE):
        return _png(head)
    if head.startswith(JPEG_SIGNATURE):
        return _jpeg(head)
    if PNG_SIGNATURE.startswith(head) or JPEG_SIGNATURE.startswith(head):
        return None
    raise NotAnImage("neither a PNG nor a JPEG signature")


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _png(head: bytes) -> Size | None:
    # IHDR must be the first chunk; judge its length and type as soon as they are there.
    if len(head) >= 16 and (_u32(head, 8) != 13 or head[12:16] != b"IHDR"):
        raise NotAnImage("PNG: the first chunk is not a valid IHDR")
    if len(head) < _PNG_HEADER_END:
        return None
    if zlib.crc32(head[12:29]) != _u32(head, 29):
        raise NotAnImage("PNG: the IHDR checksum does not match")
    width, height = _u32(head, 16), _u32(head, 20)
    depth, colour, compression, filtering, interlace = head[24:29]
    if not (0 < width <= _PNG_MAX_SIDE and 0 < height <= _PNG_MAX_SIDE):
        raise NotAnImage("PNG: width and height must be 1 to 2^31-1")
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise NotAnImage("PNG: the IHDR fields are not valid")
    return Size(width, height)


def _jpeg(head: bytes) -> Size | None:
    at = 2  # after the start-of-image marker
    while True:
        if at >= len(head):
            return None
        if head[at] != 0xFF:
            raise NotAnImage(f"JPEG: no marker where one belongs (byte {at})")
        while at < len(head) and head[at] == 0xFF:  # a marker may be padded with 0xFF
            at += 1
        if at >= len(head):
            return None
        marker = head[at]
        at += 1
        if marker in _STANDALONE:
            continue
        if marker in (0x00, _SOI, _EOI, _SOS):
            raise NotAnImage("JPEG: the image data begins or ends before its frame header")
        if at + 2 > len(head):
            return None
        length = _u16(head, at)  # counts its own two bytes
        if length < 2:
            raise NotAnImage("JPEG: a segment is shorter than its length field")
        if marker in _SOF:
            return _frame(head, at, length)
        at += length


def _frame(head: bytes, at: int, length: int) -> Size | None:
    if length < 8:
        raise NotAnImage("JPEG: the frame header is too short")
    if at + 8 > len(head):
        return None
    height, width, components = _u16(head, at + 3), _u16(head, at + 5), head[at + 7]
    if components == 0 or length != 8 + 3 * components:
        raise NotAnImage("JPEG: the frame header's length does not fit its components")
    if width == 0 or height == 0:  # height 0 leaves it to a later DNL marker: unknowable here
        raise NotAnImage("JPEG: the frame header gives no width or height")
    return Size(width, height)
