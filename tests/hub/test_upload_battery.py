"""Uploads that must be refused, over HTTP: full calls, a nearly full disk, pixel bombs,
disguised files, oversized bodies; and names with path tricks, stored under a safe name.

Every refusal answers with its status and code and leaves no row and no file behind; the
call page holds a translated sentence for every code, and call.js shows it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from hub.config import ConfigError, Settings, load_settings
from hub.db import session_scope, upgrade
from hub.models import Document
from hub.runtime import HubRuntime
from hub.services.calls import IMAGE_HEADER_LIMIT, MAX_DOCUMENT, MB
from tests.conftest import make_settings
from tests.support.browser import browser_context
from tests.support.call_pages import CALL_URL
from tests.support.calls import (
    JPEG,
    PDF,
    PNG,
    Seat,
    add_room,
    documents_root,
    enter_room_as_guest,
    enter_room_as_staff,
    files_under,
    new_browser,
    participant_row,
    seat_from,
    staff_login,
)
from tests.support.hubserver import LiveServer
from tests.support.images import jpeg, jpeg_segment, png
from tests.support.mosquitto import Mosquitto

# Every code an upload can be refused with; the page must translate each one.
UPLOAD_CODES = (
    "document.missing",
    "document.type",
    "document.too_large",
    "document.image_invalid",
    "document.image_too_large",
    "document.quota.count",
    "document.quota.size",
    "document.disk_full",
)
Limits = dict[str, object | Callable[[Path], object]]


def above_free_space(folder: Path) -> int:
    """A low-water mark in MB above what the disk under `folder` has free: it counts as full."""
    return shutil.disk_usage(folder).free // MB + 1024


@pytest.fixture
def limits() -> Limits:
    """Settings for the hub under test (tests parametrize it); a callable gets tmp_path."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, mosquitto: Mosquitto, limits: Limits) -> Settings:
    """The usual test hub's settings with `limits` on top."""
    values = {k: v(tmp_path) if callable(v) else v for k, v in limits.items()}
    result = make_settings(tmp_path, mosquitto.url, **values)
    upgrade(result.database_url)
    return result


class Call:
    """Staff member and a guest in an open room's call."""

    def __init__(self, app: Flask, runtime: HubRuntime, room: str, staff: str) -> None:
        add_room(runtime, room, "open")
        host = staff_login(app, runtime, staff)
        self.host = seat_from(host.client, enter_room_as_staff(host.client, room))
        client = new_browser(app)
        self.guest = seat_from(client, enter_room_as_guest(client, room, "Gast"))


@pytest.fixture
def call(app: Flask, runtime: HubRuntime) -> Call:
    """A call in the open room "lounge"."""
    return Call(app, runtime, "lounge", "erika")


def upload(seat: Seat, body: bytes, name: str = "Datei.pdf") -> TestResponse:
    """Share a file as call.js does (asking for JSON answers).

    The name goes out as a quoted string with its backslashes escaped, as curl sends it
    (the test client writes names raw, and the hub's parser unescapes them).
    """
    return seat.client.post(
        f"/call/{seat.participant}/documents",
        data={"file": (io.BytesIO(body), name.replace("\\", "\\\\"))},
        headers={**seat.headers(), "Accept": "application/json"},
        content_type="multipart/form-data",
    )


def stored(runtime: HubRuntime) -> tuple[list[tuple[str, str, int]], list[Path]]:
    """Document rows (id, name, size) and the files under the documents folder."""
    with session_scope(runtime.sessions) as db:
        rows = sorted(
            (d.public_id, d.filename, d.size)
            for d in db.scalars(select(Document).order_by(Document.id))
        )
    return rows, files_under(documents_root(runtime))


def refused(answer: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Check a refusal's status and code; its JSON body."""
    body = answer.get_json()
    assert (answer.status_code, body and body.get("code")) == (status, code), (
        answer.status_code,
        answer.get_data(as_text=True)[:300],
    )
    assert code in UPLOAD_CODES
    return body


def pdf_of(size: int) -> bytes:
    """A PDF of exactly `size` bytes."""
    return PDF + b"\0" * (size - len(PDF))


# ---- quotas -------------------------------------------------------------------------------------
def test_a_call_holds_twenty_documents_by_default(
    app: Flask, runtime: HubRuntime, call: Call
) -> None:
    for n in range(20):
        assert upload(call.guest if n % 2 else call.host, PDF, f"{n}.pdf").status_code == 201
    before = stored(runtime)
    assert len(before[0]) == len(before[1]) == 20
    for body in (PDF, PNG, b"MZ not even a document"):  # full: refused before any check
        refused(upload(call.guest, body), 409, "document.quota.count")
    assert stored(runtime) == before
    other = Call(app, runtime, "cafe", "max")  # the quota is per call
    assert upload(other.guest, PDF).status_code == 201


@pytest.mark.parametrize("limits", [{"documents_per_call": 2}])
def test_the_count_is_configurable(runtime: HubRuntime, call: Call) -> None:
    assert upload(call.guest, PDF).status_code == 201
    assert upload(call.guest, JPEG, "Foto.jpg").status_code == 201
    before = stored(runtime)
    refused(upload(call.host, PNG, "Bild.png"), 409, "document.quota.count")
    assert stored(runtime) == before


@pytest.mark.parametrize("limits", [{"documents_mb_per_call": 1}])
def test_a_call_holds_its_megabytes_and_not_a_byte_more(runtime: HubRuntime, call: Call) -> None:
    assert upload(call.guest, pdf_of(600 * 1024)).status_code == 201
    before = stored(runtime)
    body = refused(upload(call.host, pdf_of(500 * 1024)), 413, "document.quota.size")
    assert body["field"] == "file" and "1 MB" in body["error"]
    assert stored(runtime) == before
    assert upload(call.host, pdf_of(MB - 600 * 1024)).status_code == 201  # exactly full
    before = stored(runtime)
    refused(upload(call.guest, PDF), 413, "document.quota.size")  # refused before reading
    assert stored(runtime) == before
    assert sum(size for _id, _name, size in before[0]) == MB


def test_the_default_size_quota_is_100_mb(runtime: HubRuntime, call: Call) -> None:
    for _ in range(4):
        assert upload(call.guest, pdf_of(MAX_DOCUMENT)).status_code == 201
    assert upload(call.guest, pdf_of(MAX_DOCUMENT - len(PDF))).status_code == 201
    before = stored(runtime)
    refused(upload(call.host, pdf_of(len(PDF) + 1)), 413, "document.quota.size")
    assert stored(runtime) == before
    assert upload(call.host, PDF).status_code == 201  # the last bytes of room
    assert sum(size for _id, _name, size in stored(runtime)[0]) == 100 * MB


@pytest.mark.parametrize("limits", [{"documents_min_free_mb": above_free_space}])
def test_a_nearly_full_disk_takes_no_documents(runtime: HubRuntime, call: Call) -> None:
    for body, name in ((PDF, "a.pdf"), (PNG, "b.png"), (JPEG, "c.jpg")):
        body_json = refused(upload(call.guest, body, name), 507, "document.disk_full")
        assert body_json["field"] == "file"
    assert stored(runtime) == ([], [])


# ---- sizes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [MAX_DOCUMENT + 1, MAX_DOCUMENT + 2 * MB], ids=["+1", "+2MB"])
def test_files_over_20_mb_are_refused(runtime: HubRuntime, call: Call, size: int) -> None:
    # Just over: the hub stops at the limit while writing; far over: the body's length says so.
    refused(upload(call.guest, pdf_of(size)), 413, "document.too_large")
    assert stored(runtime) == ([], [])


# ---- pixel bombs --------------------------------------------------------------------------------
EXIF = jpeg_segment(0xE1, b"Exif\0\0" + b"\0" * 65000)  # the frame header comes after it
BOMBS = {
    "png": png(30000, 30000),
    "jpeg-baseline": jpeg(30000, 30000),
    "jpeg-progressive": jpeg(30000, 30000, sof=0xC2),
    "jpeg-after-exif": jpeg(20000, 20000, sof=0xC2, before=EXIF),
    "png-just-over": png(8000, 5001),
    "jpeg-just-over": jpeg(8001, 5000),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_pixel_bombs_are_refused(runtime: HubRuntime, call: Call, name: str) -> None:
    bomb = BOMBS[name]
    assert len(bomb) < 70_000
    body = refused(upload(call.guest, bomb, "Foto.jpg"), 400, "document.image_too_large")
    assert body["field"] == "file" and "40 megapixels" in body["error"]
    assert stored(runtime) == ([], [])


@pytest.mark.parametrize(
    "body", [png(8000, 5000), jpeg(5000, 8000, sof=0xC2)], ids=["png", "jpeg-progressive"]
)
def test_forty_megapixels_are_fine(call: Call, body: bytes) -> None:
    answer = upload(call.guest, body, "Scan")
    assert answer.status_code == 201, answer.get_json()
    assert call.host.download(answer.get_json()["id"]).get_data() == body


@pytest.mark.parametrize("limits", [{"image_max_megapixels": 0.5}])
def test_the_pixel_limit_is_configurable(runtime: HubRuntime, call: Call) -> None:
    assert upload(call.guest, png(1000, 500), "a.png").status_code == 201
    before = stored(runtime)
    body = refused(upload(call.guest, png(1000, 501), "b.png"), 400, "document.image_too_large")
    assert "0.5 megapixels" in body["error"] and "1000 x 501" in body["error"]
    assert stored(runtime) == before


# ---- disguised and broken files -----------------------------------------------------------------
DISGUISED = {
    "exe-as-pdf": (
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 64,
        "setup.pdf",
        "document.type",
    ),
    "elf-as-pdf": (b"\x7fELF\x02\x01\x01" + b"\0" * 60, "Bescheid.pdf", "document.type"),
    "html-as-pdf": (
        b"<!DOCTYPE html><script>alert(document.cookie)</script>",
        "x.pdf",
        "document.type",
    ),
    "svg-as-png": (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "x.png",
        "document.type",
    ),
    "empty": (b"", "leer.pdf", "document.type"),
    "png-magic-then-garbage": (
        b"\x89PNG\r\n\x1a\n" + b"<script>alert(1)</script>" * 40,
        "x.png",
        "document.image_invalid",
    ),
    "png-magic-only": (b"\x89PNG\r\n\x1a\n", "x.png", "document.image_invalid"),
    "png-cut-in-ihdr": (png(10, 10)[:30], "x.png", "document.image_invalid"),
    "jpeg-magic-then-garbage": (
        b"\xff\xd8\xff" + b"\x00garbage" * 100,
        "x.jpg",
        "document.image_invalid",
    ),
    "jpeg-without-frame": (
        b"\xff\xd8" + jpeg_segment(0xE0, b"JFIF\0") + b"\xff\xd9",
        "x.jpg",
        "document.image_invalid",
    ),
    # More metadata before the frame header than the hub reads to find it.
    "jpeg-frame-too-late": (
        jpeg(10, 10, before=jpeg_segment(0xE1, b"\0" * 65000) * 17),
        "x.jpg",
        "document.image_invalid",
    ),
}


@pytest.mark.parametrize("name", sorted(DISGUISED))
def test_disguised_files_are_refused(runtime: HubRuntime, call: Call, name: str) -> None:
    body, filename, code = DISGUISED[name]
    refused(upload(call.guest, body, filename), 400, code)
    assert stored(runtime) == ([], [])


def test_the_frame_header_may_come_late_within_the_first_megabyte(call: Call) -> None:
    metadata = jpeg_segment(0xE1, b"\0" * 65000) * 15
    assert len(metadata) < IMAGE_HEADER_LIMIT < len(DISGUISED["jpeg-frame-too-late"][0])
    body = jpeg(10, 10, before=metadata)
    answer = upload(call.guest, body, "Foto.jpg")
    assert answer.status_code == 201, answer.get_json()
    assert call.host.download(answer.get_json()["id"]).get_data() == body


def test_an_upload_without_a_file_is_refused(runtime: HubRuntime, call: Call) -> None:
    answer = call.guest.client.post(
        f"/call/{call.guest.participant}/documents",
        data={"other": "x"},
        headers={**call.guest.headers(), "Accept": "application/json"},
        content_type="multipart/form-data",
    )
    refused(answer, 400, "document.missing")
    assert stored(runtime) == ([], [])


# ---- names --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "body", "shown"),
    [
        ("../../etc/passwd.pdf", PDF, "passwd.pdf"),
        ("..\\..\\windows\\win.ini.jpg", JPEG, "win.ini.jpg"),
        ("C:\\Users\\anna\\Bescheid.pdf", PDF, "Bescheid.pdf"),
        ("Bescheid\x00.exe.pdf", PDF, "Bescheid.exe.pdf"),
        ("Rechnung\u202egpj.exe", PNG, "Rechnunggpj.png"),  # no right-to-left override
        ("..", PDF, "dokument.pdf"),
        ("/", PNG, "dokument.png"),
        ("  .hidden.pdf", PDF, "hidden.pdf"),
        ("Foto.png", JPEG, "Foto.jpg"),  # the content names the type
        ("a" * 300 + ".pdf", PDF, "a" * 100 + ".pdf"),
    ],
    ids=[
        "dotdot-slash",
        "dotdot-backslash",
        "windows-path",
        "nul",
        "rtl-override",
        "dotdot",
        "slash",
        "leading-dots",
        "wrong-extension",
        "long",
    ],
)
def test_names_with_path_tricks_are_stored_under_a_safe_name(
    runtime: HubRuntime, call: Call, name: str, body: bytes, shown: str
) -> None:
    everything = runtime.settings.instance_path.parent  # the test's whole tmp directory
    before = set(files_under(everything))
    answer = upload(call.guest, body, name)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    info = answer.get_json()
    assert info["filename"] == shown
    session = participant_row(runtime, call.guest.participant)["session"]
    assert set(files_under(everything)) - before == {documents_root(runtime) / session / info["id"]}
    with session_scope(runtime.sessions) as db:
        assert db.scalar(select(func.count()).select_from(Document)) == 1
    download = call.host.download(info["id"])
    assert download.get_data() == body
    assert shown in download.headers["Content-Disposition"]


# ---- the page's words ---------------------------------------------------------------------------
def page_texts(seat: Seat, lang: str) -> dict[str, Any]:
    """The texts JSON the call page hands call.js, in `lang`."""
    html = seat.client.get(f"/call/{seat.participant}?lang={lang}").get_data(as_text=True)
    found = re.search(r'<script type="application/json" id="call-texts">(.*?)</script>', html, re.S)
    assert found, "the call page has no texts"
    return json.loads(found.group(1))


def test_the_page_says_every_refusal_in_its_language(call: Call) -> None:
    german, english = page_texts(call.guest, "de"), page_texts(call.guest, "en")
    for code in UPLOAD_CODES:
        assert german["errors"].get(code), code
        assert english["errors"].get(code), code
        assert english["errors"][code] != german["errors"][code], f"{code} is not translated"
    for key in ("upload_failed", "uploading"):
        assert german[key] and english[key] and german[key] != english[key], key


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["de", "en"])
def test_call_js_shows_the_refusal_in_the_page_language(
    app: Flask, runtime: HubRuntime, browser: Browser, lang: str
) -> None:
    add_room(runtime, "lounge", "open")
    server = LiveServer(app).start()
    try:
        with browser_context(browser, locale="en-GB" if lang == "en" else "de-DE") as context:
            page = context.new_page()
            page.goto(f"{server.url}/r/lounge?lang={lang}")
            page.locator("#name").fill("Gast")
            page.locator("form button[type=submit]").click()
            page.wait_for_url(CALL_URL)
            texts = json.loads(page.locator("#call-texts").text_content() or "{}")
            button = page.locator("#upload-form button")
            button.click()  # no file chosen yet
            expect(page.locator("#upload-result")).to_have_text(texts["errors"]["document.missing"])
            page.locator("#upload-file").set_input_files(
                files=[{"name": "Foto.png", "mimeType": "image/png", "buffer": BOMBS["png"]}]
            )
            button.click()
            expect(page.locator("#upload-result")).to_have_text(
                texts["errors"]["document.image_too_large"]
            )
    finally:
        server.stop()
    assert stored(runtime) == ([], [])
    sentence = texts["errors"]["document.image_too_large"]
    assert sentence.startswith("The picture" if lang == "en" else "Das Bild"), sentence


# ---- settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCUMENTS_PER_CALL", "0"),
        ("DOCUMENTS_PER_CALL", "many"),
        ("DOCUMENTS_MB_PER_CALL", "0"),
        ("DOCUMENTS_MIN_FREE_MB", "-1"),
        ("IMAGE_MAX_MEGAPIXELS", "0"),
        ("IMAGE_MAX_MEGAPIXELS", "5000"),
    ],
)
def test_bad_document_settings_are_named(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"EMPFANG_{name}"):
        load_settings(environ={f"EMPFANG_{name}": value}, instance_path=tmp_path)


def test_document_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {
        "EMPFANG_DOCUMENTS_PER_CALL": "3",
        "EMPFANG_DOCUMENTS_MB_PER_CALL": "7",
        "EMPFANG_DOCUMENTS_MIN_FREE_MB": "0",
        "EMPFANG_IMAGE_MAX_MEGAPIXELS": "12.5",
    }
    loaded = load_settings(environ=env, instance_path=tmp_path)
    assert (
        loaded.documents_per_call,
        loaded.documents_mb_per_call,
        loaded.documents_min_free_mb,
        loaded.image_max_megapixels,
    ) == (3, 7, 0, 12.5)
    defaults = load_settings(environ={}, instance_path=tmp_path)
    assert (defaults.documents_per_call, defaults.documents_mb_per_call) == (20, 100)
    assert (defaults.documents_min_free_mb, defaults.image_max_megapixels) == (500, 40.0)
