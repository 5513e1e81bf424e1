"""Picture sizes from headers alone: real files from Pillow, hand-built bombs, broken headers,
and every prefix of a file (the hub reads uploads in chunks)."""

from __future__ import annotations

import io
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from hub.imageinfo import JPEG_SIGNATURE, PNG_SIGNATURE, NotAnImage, Size, size
from tests.support.images import jpeg, jpeg_segment, png, png_chunk


def pillow(fmt: str, width: int, height: int, mode: str = "RGB", **options: object) -> bytes:
    """A real file as Pillow writes it."""
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, fmt, **options)
    return out.getvalue()


def first_answer(data: bytes) -> tuple[int, Size]:
    """How many leading bytes `size` needed, and what it said then."""
    for n in range(len(data) + 1):
        found = size(data[:n])
        if found is not None:
            return n, found
    raise AssertionError("no size in the whole file")


REAL = {
    "png-rgb": lambda: pillow("PNG", 321, 123),
    "png-rgba-interlaced": lambda: pillow("PNG", 64, 48, "RGBA", interlace=1),
    "png-palette": lambda: pillow("PNG", 7, 9, "P"),
    "png-grey-16bit": lambda: pillow("PNG", 5, 3, "I;16"),
    "jpeg-baseline": lambda: pillow("JPEG", 321, 123),
    "jpeg-progressive": lambda: pillow("JPEG", 320, 200, progressive=True),
    "jpeg-grey": lambda: pillow("JPEG", 17, 1, "L"),
    "jpeg-cmyk": lambda: pillow("JPEG", 40, 30, "CMYK"),
    # EXIF in APP1 and a large ICC profile split over several APP2 segments before the frame.
    "jpeg-metadata": lambda: pillow(
        "JPEG", 640, 480, exif=Image.Exif().tobytes(), icc_profile=b"\0" * 150_000
    ),
}
EXPECTED = {
    "png-rgb": (321, 123),
    "png-rgba-interlaced": (64, 48),
    "png-palette": (7, 9),
    "png-grey-16bit": (5, 3),
    "jpeg-baseline": (321, 123),
    "jpeg-progressive": (320, 200),
    "jpeg-grey": (17, 1),
    "jpeg-cmyk": (40, 30),
    "jpeg-metadata": (640, 480),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_give_their_size_from_the_header(name: str) -> None:
    data = REAL[name]()
    assert Image.open(io.BytesIO(data)).size == EXPECTED[name]  # what a decoder would see
    needed, found = first_answer(data)
    assert found == Size(*EXPECTED[name])
    assert size(data) == found
    if name.startswith("png"):
        assert needed == 33  # signature and IHDR, nothing more
    elif name == "jpeg-metadata":
        assert needed > 150_000  # the frame header comes after the ICC segments
    else:
        assert needed < 1000


def test_pixels_is_width_times_height() -> None:
    assert Size(30000, 20000).pixels == 600_000_000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(30000, 30000), Size(30000, 30000)),
        (png(2**31 - 1, 1), Size(2**31 - 1, 1)),
        (jpeg(65535, 65535), Size(65535, 65535)),
        (jpeg(65535, 40000, sof=0xC2), Size(65535, 40000)),  # progressive
        (jpeg(50000, 2, sof=0xC3), Size(50000, 2)),  # lossless
        (jpeg(4, 3, sof=0xC9), Size(4, 3)),  # arithmetic coding
        (
            jpeg(60000, 60000, before=jpeg_segment(0xE1, b"Exif\0\0" + b"x" * 60000)),
            Size(60000, 60000),
        ),
        # Tables and a restart interval before the frame, fill bytes before a marker.
        (
            jpeg(8, 8, before=jpeg_segment(0xDB, b"\0" * 65) + jpeg_segment(0xDD, b"\0\4")),
            Size(8, 8),
        ),
        (jpeg(8, 8, before=b"\xff\xff\xff" + jpeg_segment(0xFE, b"comment")[1:]), Size(8, 8)),
    ],
    ids=[
        "png-bomb",
        "png-widest",
        "jpeg-bomb",
        "jpeg-progressive-bomb",
        "jpeg-lossless",
        "jpeg-arithmetic",
        "jpeg-after-exif",
        "jpeg-after-tables",
        "jpeg-fill-bytes",
    ],
)
def test_hand_built_headers(data: bytes, expected: Size) -> None:
    assert first_answer(data)[1] == expected


def test_tables_named_like_frames_are_skipped() -> None:
    # DHT (0xC4) and DAC (0xCC) sit in the SOF range but carry no size.
    huffman = jpeg_segment(0xC4, b"\x00" + b"\x01" * 16 + b"\x05")
    arithmetic = jpeg_segment(0xCC, b"\x00\x10")
    assert size(jpeg(12, 34, before=huffman + arithmetic)) == Size(12, 34)


def _broken_crc(data: bytes) -> bytes:
    return data[:29] + bytes([data[29] ^ 1]) + data[30:]


@pytest.mark.parametrize(
    "data",
    [
        PNG_SIGNATURE + b"garbage garbage garbage garbage!",
        PNG_SIGNATURE + png_chunk(b"tEXt", b"a" * 13),  # IHDR must come first
        PNG_SIGNATURE + b"\x00\x00\x00\x0eIHDR" + b"\0" * 30,  # IHDR of the wrong length
        _broken_crc(png(10, 10)),
        png(0, 10),
        png(10, 0),
        png(2**31, 1),
        png(10, 10, depth=3),  # no such bit depth
        png(10, 10, colour=5),  # no such colour type
        png(10, 10, depth=16, colour=3),  # palettes go up to 8 bits
        JPEG_SIGNATURE + b"\x00garbage",
        b"\xff\xd8\xff\xda\x00\x08scan..",  # image data before any frame header
        b"\xff\xd8\xff\xd9",  # ends before any frame header
        b"\xff\xd8\xff\xe0\x00\x01",  # a length too short to count itself
        b"\xff\xd8" + jpeg_segment(0xE0, b"JFIF") + b"no marker here",
        b"\xff\xd8\xff\xc0\x00\x05\x08\x00\x01",  # frame header too short
        jpeg(0, 10),
        jpeg(10, 0),  # height left to a DNL marker: not knowable from the header
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x01\x00\x01\x01\x01\x11\x00"
        + b"\0" * 6,  # 3 parts by length, 1 told
        b"GIF89a\x01\x00\x01\x00",
        b"%PDF-1.4",
    ],
    ids=[
        "png-garbage",
        "png-other-chunk-first",
        "png-ihdr-length",
        "png-crc",
        "png-zero-width",
        "png-zero-height",
        "png-too-wide",
        "png-bit-depth",
        "png-colour-type",
        "png-palette-16bit",
        "jpeg-garbage",
        "jpeg-scan-first",
        "jpeg-end-first",
        "jpeg-short-length",
        "jpeg-no-marker",
        "jpeg-short-frame",
        "jpeg-zero-width",
        "jpeg-zero-height",
        "jpeg-components",
        "gif",
        "pdf",
    ],
)
def test_broken_headers_are_not_images(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        size(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        PNG_SIGNATURE[:3],
        PNG_SIGNATURE,
        png(10, 10)[:32],
        b"\xff",
        JPEG_SIGNATURE,
        jpeg(10, 10)[:-8],
        jpeg(10, 10, before=jpeg_segment(0xE1, b"x" * 5000))[:3000],
    ],
    ids=[
        "empty",
        "png-signature-part",
        "png-signature",
        "png-ihdr-part",
        "jpeg-first-byte",
        "jpeg-signature",
        "jpeg-frame-part",
        "jpeg-inside-a-segment",
    ],
)
def test_too_few_bytes_ask_for_more(data: bytes) -> None:
    assert size(data) is None


@given(st.sampled_from([PNG_SIGNATURE, b"\xff\xd8", JPEG_SIGNATURE, b""]), st.binary(max_size=200))
def test_any_bytes_get_one_of_three_answers(start: bytes, rest: bytes) -> None:
    data = start + rest
    try:
        found = size(data)
    except NotAnImage:
        return
    assert found is None or (found.width > 0 and found.height > 0)
    if found is not None:  # more bytes never change an answer once given
        assert size(data + b"\0" * 100) == found


@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_any_png_size_reads_back(width: int, height: int) -> None:
    assert size(png(width, height)) == Size(width, height)


@given(st.integers(1, 65535), st.integers(1, 65535), st.sampled_from([0xC0, 0xC1, 0xC2]))
def test_any_jpeg_size_reads_back(width: int, height: int, sof: int) -> None:
    assert size(jpeg(width, height, sof=sof)) == Size(width, height)


def test_a_png_bomb_is_a_few_bytes() -> None:
    bomb = png(30000, 30000, tail=png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)))
    assert len(bomb) < 100 and size(bomb) == Size(30000, 30000)
