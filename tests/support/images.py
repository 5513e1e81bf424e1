"""PNG and JPEG files built byte by byte: headers that declare any size, in a few bytes."""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, *, depth: int = 8, colour: int = 6, tail: bytes = b"") -> bytes:
    """A PNG whose IHDR declares `width` x `height`; a tiny IDAT and IEND follow (or `tail`)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    rest = tail or png_chunk(b"IDAT", zlib.compress(b"\0" * 16)) + png_chunk(b"IEND", b"")
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + rest


def jpeg_segment(marker: int, data: bytes) -> bytes:
    """One JPEG marker segment (its length counts the two length bytes)."""
    return bytes((0xFF, marker)) + struct.pack(">H", len(data) + 2) + data


def jpeg(width: int, height: int, *, sof: int = 0xC0, before: bytes = b"") -> bytes:
    """A JPEG whose frame header (SOF0 by default, SOF2 for progressive) declares the size.

    `before` goes between the JFIF header and the frame header (metadata segments).
    """
    jfif = jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    frame = jpeg_segment(sof, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    return b"\xff\xd8" + jfif + before + frame + b"\xff\xd9"
