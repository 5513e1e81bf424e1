"""A call across two `empfang-hub run` processes that share one SQLite file and one Mosquitto.

The citizen's pages are served by process A, the staff member's by process B: the WebRTC
signalling between them can only travel over MQTT (`signal/` topics). Both sides see and
hear each other; chat crosses too, and ending the visit on B ends the call page on A.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import PASSWORD
from tests.support.browser import PageLog, browser_context, log_in_page
from tests.support.call_pages import (
    CALL_URL,
    MEDIA_MS,
    call_config,
    prepare,
    wait_audio_flowing,
    wait_remote_videos,
)
from tests.support.mosquitto import Mosquitto
from tests.support.net import free_port, wait_for
from tests.support.processes import HttpClient, HubProcess, hub_env, run_cli, wait_healthy
from tests.support.reception_pages import public_id, screenshot, ticket_card

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LIVE_MS = 10_000  # hub A -> Mosquitto -> hub B and back: more than in one process, bounded
ROOM = "sozialamt-1"
ROOM_NAME = "Sozialamt – Beratung 1"


def _env(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    return hub_env(
        mqtt_url=mosquitto.url,
        database_url=f"sqlite:///{tmp_path / 'shared.db'}",
        instance_path=tmp_path / "instance",
        secret_key="two-hubs-secret",
        tick_seconds=0.2,
    )


def _create_account(env: dict[str, str], username: str, name: str, admin: bool = False) -> None:
    args = ["create-user", username, "--name", name, "--password-stdin"]
    made = run_cli([*args, "--admin"] if admin else args, env, PASSWORD + "\n")
    assert made.returncode == 0, made.stderr


def _seed(base: str) -> None:
    """A department, a category, the reception, a consultation room; erika serves the queue."""
    admin = HttpClient(base)
    admin.log_in("boss", PASSWORD)

    def form(path: str, fields: dict[str, str]) -> None:
        answer = admin.request("POST", path, form={**fields, "csrf_token": admin.csrf_token})
        assert answer.status == 200, f"{path}: {answer.status} {answer.text[:500]}"

    form("/admin/departments", {"slug": "sozialamt", "name": "Sozialamt"})
    form(
        "/admin/categories",
        {"slug": "wohngeld", "name_de": "Wohngeld", "name_en": "Housing benefit"}
        | {"department": "sozialamt"},
    )
    for body in (
        {"slug": "empfang", "name": "Empfang", "kind": "reception"},
        {"slug": ROOM, "name": ROOM_NAME, "kind": "consultation", "department": "sozialamt"},
    ):
        created = admin.api("POST", "/api/v1/rooms", body)
        assert created.status == 201, created.text
    users = admin.get("/admin/users").text
    match = re.search(r'<code>erika</code>.*?action="/admin/users/(\d+)"', users, flags=re.DOTALL)
    assert match, "erika is missing from the admin's account list"
    form(f"/admin/users/{match.group(1)}", {"display_name": "Erika", "departments": "sozialamt"})


def _session_of(database: Path, participant: str) -> str:
    """The call a participant sits in, read from the shared SQLite file."""
    with closing(sqlite3.connect(database)) as db:
        row = db.execute(
            "SELECT s.public_id FROM participants p JOIN call_sessions s ON s.id = p.session_id"
            " WHERE p.public_id = ?",
            (participant,),
        ).fetchone()
    assert row is not None, participant
    return str(row[0])


@contextmanager
def _hubs(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Hub processes A and B on their own ports; both process groups are killed afterwards."""
    ports = free_port(), free_port()
    procs = [
        HubProcess(
            ["run", "--port", str(port), "--threads", "16"], env, tmp_path / f"hub-{name}.log"
        )
        for name, port in zip("ab", ports, strict=True)
    ]
    try:
        bases = []
        for proc, port in zip(procs, ports, strict=True):
            proc.start()
            base = f"http://127.0.0.1:{port}"
            health = wait_healthy(proc, base)
            assert health["database"] is True and health["broker"] is True, health
            bases.append(base)
        yield bases[0], bases[1]
        for proc in procs:
            assert proc.running(), proc.log_tail()
            assert "Traceback" not in proc.log_tail(200_000), proc.log_tail()
    finally:
        for proc in procs:
            proc.cleanup()


def test_citizen_on_a_and_staff_on_b_complete_a_call(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    env = _env(tmp_path, mosquitto)
    _create_account(env, "boss", "Chefin", admin=True)  # also upgrades the shared database
    _create_account(env, "erika", "Erika")

    with (
        _hubs(tmp_path, env) as (hub_a, hub_b),
        browser_context(browser) as citizen_ctx,
        browser_context(browser) as staff_ctx,
    ):
        _seed(hub_a)
        prepare(citizen_ctx)
        prepare(staff_ctx)

        # Erika's queue is served by B.
        desk = staff_ctx.new_page()
        log_in_page(desk, hub_b, "erika", PASSWORD)
        desk.goto(f"{hub_b}/staff/queue")
        expect(desk.locator("#live")).to_have_attribute("data-state", "live", timeout=LIVE_MS)

        # Anna registers on A.
        citizen = citizen_ctx.new_page()
        citizen_log = PageLog().watch(citizen)
        citizen.goto(f"{hub_a}/empfang/")
        citizen.get_by_label("Name (ein Kürzel genügt)").fill("Anna")
        citizen.get_by_label("Wohngeld").check()
        citizen.get_by_label("Ich habe den Datenschutzhinweis gelesen").check()
        citizen.get_by_role("button", name="Wartenummer ziehen").click()
        expect(citizen.locator("#connection")).to_have_attribute(
            "data-state", "live", timeout=LIVE_MS
        )

        # B shows her live; Erika admits her; her call page opens on B.
        card = ticket_card(desk, "Anna")
        expect(card).to_be_visible(timeout=LIVE_MS)
        ticket = public_id(card)
        with staff_ctx.expect_page() as opened:
            card.get_by_role("button", name="Einlassen").click()
        call = opened.value
        call_log = PageLog().watch(call)
        call.wait_for_url(CALL_URL)
        assert call.url.startswith(f"{hub_b}/call/p-"), call.url
        assert call_config(call)["role"] == "host"

        # Anna's waiting page on A follows into her call, still on A.
        citizen.wait_for_url(CALL_URL, timeout=LIVE_MS)
        assert citizen.url.startswith(f"{hub_a}/call/p-"), citizen.url
        assert call_config(citizen)["role"] == "guest"
        for page in (call, citizen):
            expect(page.locator("#call-title")).to_have_text(f"Gespräch: {ROOM_NAME}")
        sessions = {
            _session_of(tmp_path / "shared.db", call_config(page)["participant"])
            for page in (call, citizen)
        }
        assert len(sessions) == 1, f"staff and citizen landed in different calls: {sessions}"

        # Signalled across the processes over MQTT: video and audio flow both ways.
        for page in (call, citizen):
            wait_remote_videos(page, 1)
            wait_audio_flowing(page)
            expect(page.locator("#call-status")).to_have_text("Im Gespräch", timeout=MEDIA_MS)

        # Chat crosses both ways.
        citizen.get_by_label("Nachricht").fill("Guten Tag aus A")
        citizen.get_by_role("button", name="Senden").click()
        expect(call.locator("#chat")).to_contain_text("Anna: Guten Tag aus A", timeout=LIVE_MS)
        call.get_by_label("Nachricht").fill("Hallo aus B")
        call.get_by_role("button", name="Senden").click()
        expect(citizen.locator("#chat")).to_contain_text("Erika: Hallo aus B", timeout=LIVE_MS)

        # Both processes count both people in the room.
        for base in (hub_a, hub_b):
            status = HttpClient(base).get(f"/api/v1/rooms/{ROOM}").json()["status"]
            assert status["state"] == "busy" and status["occupants"] == 2, (base, status)
        screenshot(call, "call-two-hubs-staff-b")
        screenshot(citizen, "call-two-hubs-citizen-a")

        # Erika ends the visit through B's API: Anna's call page on A ends.
        web_b = HttpClient(hub_b)
        web_b.log_in("erika", PASSWORD)
        ended = web_b.api("POST", f"/api/v1/queue/{ticket}/end", {"outcome": "resolved"})
        assert ended.status == 200, ended.text
        for page in (citizen, call):
            expect(page.locator("#call-status")).to_have_text(
                "Das Gespräch ist beendet.", timeout=LIVE_MS
            )
        web_a = HttpClient(hub_a)

        def free_on_a() -> bool:
            status = web_a.get(f"/api/v1/rooms/{ROOM}").json()["status"]
            return status["state"] == "free" and status["occupants"] == 0

        wait_for(free_on_a, LIVE_MS / 1000, 0.1, f"{ROOM} free again on A")
        for log in (citizen_log, call_log):
            assert log.errors == [], log.errors
