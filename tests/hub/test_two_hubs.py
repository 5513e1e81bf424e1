"""Two `empfang-hub run` processes, one SQLite file, one Mosquitto: they behave as one hub.

A citizen registers on process A; a staff member whose queue page is served by process B
sees the arrival live and admits; the citizen's waiting page on A learns of it live and
takes her into the call, and a second citizen waiting on A moves up live. Nothing but the
database and the broker joins the two processes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.support.browser import PageLog, browser_context, log_in_page
from tests.support.mosquitto import Mosquitto
from tests.support.net import free_port, wait_for
from tests.support.processes import HttpClient, HubProcess, hub_env, run_cli, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Cross-process updates travel hub A -> Mosquitto -> hub B (and back), with three browsers
# and two gunicorn processes on one machine: allow more than the single-process default
# for every browser action and assertion, but stay bounded.
LIVE_MS = 10_000
ROOM = "sozialamt-1"
ROOM_NAME = "Sozialamt – Beratung 1"


def _env(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    return hub_env(
        mqtt_url=mosquitto.url,
        database_url=f"sqlite:///{tmp_path / 'shared.db'}",
        instance_path=tmp_path / "instance",
        secret_key="two-hubs-secret",  # as behind a proxy: every process signs alike
        tick_seconds=0.2,
    )


def _create_account(env: dict[str, str], username: str, name: str, admin: bool = False) -> None:
    args = ["create-user", username, "--name", name, "--password-stdin"]
    made = run_cli([*args, "--admin"] if admin else args, env, PASSWORD + "\n")
    assert made.returncode == 0, made.stderr


def _form_post(client: HttpClient, path: str, fields: dict[str, str]) -> None:
    answer = client.request("POST", path, form={**fields, "csrf_token": client.csrf_token})
    assert answer.status == 200, f"{path}: {answer.status} {answer.text[:500]}"


def _seed_through_admin(base: str) -> None:
    """Departments, a category, the reception and a consultation room, erika's queue."""
    admin = HttpClient(base)
    admin.log_in("boss", PASSWORD)
    _form_post(admin, "/admin/departments", {"slug": "sozialamt", "name": "Sozialamt"})
    _form_post(admin, "/admin/departments", {"slug": "buergerbuero", "name": "Bürgerbüro"})
    _form_post(
        admin,
        "/admin/categories",
        {
            "slug": "wohngeld",
            "name_de": "Wohngeld",
            "name_en": "Housing benefit",
            "department": "sozialamt",
        },
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
    _form_post(
        admin,
        f"/admin/users/{match.group(1)}",
        {"display_name": "Erika Muster", "departments": "sozialamt"},
    )


@contextmanager
def _hubs(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Hub processes A and B on their own ports; every process group is killed afterwards."""
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
            assert "Traceback" not in proc.log_tail(50_000), proc.log_tail()
    finally:
        for proc in procs:
            proc.cleanup()


def _mark(page: Page) -> None:
    """A JS global that a full reload would lose."""
    page.evaluate("() => { window.__marker = 1; }")


def _assert_not_reloaded(page: Page, log: PageLog, loads: int) -> None:
    assert page.evaluate("() => window.__marker") == 1, "the page was reloaded"
    assert len(log.loads) == loads, f"page loads: {log.loads}"


def _register(page: Page, base: str, name: str) -> str:
    """Take a ticket through the citizen form on `base`; returns the token from the address."""
    page.goto(f"{base}/empfang/")
    page.get_by_label("Name (ein Kürzel genügt)").fill(name)
    page.get_by_label("Wohngeld").check()
    page.get_by_label("Kurze Beschreibung").fill("Antrag auf Wohngeld")
    page.get_by_label("Ich habe den Datenschutzhinweis gelesen").check()
    page.get_by_role("button", name="Wartenummer ziehen").click()
    expect(page).to_have_url(re.compile(re.escape(base) + r"/empfang/t/[A-Za-z0-9_-]{43}$"))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=LIVE_MS)
    return page.url.rsplit("/", 1)[-1]


def test_citizen_on_a_is_admitted_by_staff_on_b(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    env = _env(tmp_path, mosquitto)
    _create_account(env, "boss", "Chefin", admin=True)  # also upgrades the shared database
    _create_account(env, "erika", "Erika")

    with (
        _hubs(tmp_path, env) as (hub_a, hub_b),
        browser_context(browser) as staff_ctx,
        browser_context(browser) as anna_ctx,
        browser_context(browser) as bernd_ctx,
    ):
        for context in (staff_ctx, anna_ctx, bernd_ctx):
            context.set_default_timeout(LIVE_MS)  # three browsers and two hubs on a busy box
        _seed_through_admin(hub_a)
        # B learns of what A created from the shared database alone.
        room_on_b = HttpClient(hub_b).get(f"/api/v1/rooms/{ROOM}")
        assert room_on_b.status == 200 and room_on_b.json()["department"] == "sozialamt"

        # Staff on B: the live queue is open and empty.
        staff = staff_ctx.new_page()
        staff_log = PageLog().watch(staff)
        log_in_page(staff, hub_b, "erika", PASSWORD)
        staff.goto(f"{hub_b}/staff/queue")
        expect(staff.locator("#live")).to_have_text("Live", timeout=LIVE_MS)
        expect(staff.locator("#waiting-title")).to_contain_text("(0)")
        _mark(staff)
        staff_loads = len(staff_log.loads)

        # Anna registers on A; she is next, and B's queue shows her without a reload.
        anna = anna_ctx.new_page()
        anna_log = PageLog().watch(anna)
        anna_token = _register(anna, hub_a, "Anna Beispiel")
        anna_state = anna.locator("#ticket [data-role='headline']")
        expect(anna_state).to_have_text("Sie sind als Nächstes an der Reihe.")
        waiting_names = staff.locator("#queue-lists ol.tickets li.ticket h3")
        expect(waiting_names).to_have_text(["Anna Beispiel"], timeout=LIVE_MS)
        anna_card = staff.locator("#queue-lists ol.tickets li.ticket", has_text="Anna Beispiel")
        expect(anna_card).to_have_class(re.compile(r"\bnew-arrival\b"))
        expect(anna_card).to_contain_text("Antrag auf Wohngeld")
        expect(staff.locator("#announce")).to_have_text("Neu im Wartebereich: Anna Beispiel")
        _assert_not_reloaded(staff, staff_log, staff_loads)

        # Bernd registers on A after her: second place, and B shows both in arrival order.
        bernd = bernd_ctx.new_page()
        bernd_log = PageLog().watch(bernd)
        bernd_token = _register(bernd, hub_a, "Bernd")
        bernd_state = bernd.locator("#ticket [data-role='headline']")
        expect(bernd_state).to_have_text("Ihr Platz in der Warteschlange: 2")
        expect(waiting_names).to_have_text(["Anna Beispiel", "Bernd"], timeout=LIVE_MS)
        _assert_not_reloaded(staff, staff_log, staff_loads)

        reception_on_a = HttpClient(hub_a).get("/api/v1/rooms/empfang").json()["status"]
        assert reception_on_a["state"] == "waiting" and reception_on_a["waiting"] == 2

        _mark(anna)
        _mark(bernd)
        anna_loads, bernd_loads = len(anna_log.loads), len(bernd_log.loads)

        # Erika admits Anna on B (first room offered: her department's consultation room).
        # Admitting opens Erika's side of the call in a new tab; the queue page stays.
        expect(anna_card.get_by_label("Raum")).to_have_value(ROOM)
        with staff_ctx.expect_page() as opened:
            anna_card.get_by_role("button", name="Einlassen").click()
        host_call = opened.value
        expect(host_call).to_have_url(re.compile(re.escape(hub_b) + r"/call/[\w-]+$"))
        expect(host_call.locator("#call-title")).to_have_text(f"Gespräch: {ROOM_NAME}")
        serving = staff.locator("#queue-lists ul.tickets li.ticket.serving")
        expect(serving).to_have_count(1, timeout=LIVE_MS)
        expect(serving).to_contain_text("Anna Beispiel")
        expect(waiting_names).to_have_text(["Bernd"])
        _assert_not_reloaded(staff, staff_log, staff_loads)

        # A's pages follow live: Anna's waiting page learns she is in and takes her into
        # the call (on A, her own hub); Bernd moves up to first place.
        expect(anna).to_have_url(re.compile(re.escape(hub_a) + r"/call/[\w-]+$"), timeout=LIVE_MS)
        expect(anna.locator("#call-title")).to_have_text(f"Gespräch: {ROOM_NAME}")
        # The page's load event may come after its title shows: let Playwright deliver it.
        wait_for(
            lambda: (
                anna.evaluate("() => document.readyState") == "complete"
                and len(anna_log.loads) > anna_loads
            ),
            LIVE_MS / 1000,
        )
        assert anna_log.loads[anna_loads:] == [anna.url], anna_log.loads  # one move, no reload
        expect(bernd_state).to_have_text("Sie sind als Nächstes an der Reihe.", timeout=LIVE_MS)
        expect(bernd.locator("#ticket")).to_have_attribute("data-position", "1")
        _assert_not_reloaded(bernd, bernd_log, bernd_loads)
        for log in (anna_log, bernd_log, staff_log):
            assert log.errors == [], log.errors

        # Over plain HTTP on A: the room is busy, the reception has one waiting, Anna serves.
        web_a = HttpClient(hub_a)
        room = web_a.get(f"/api/v1/rooms/{ROOM}").json()["status"]
        assert room["state"] == "busy" and room["occupants"] >= 1, room
        # Two people in it once Erika's call page (served by B) has connected.
        wait_for(
            lambda: web_a.get(f"/api/v1/rooms/{ROOM}").json()["status"]["occupants"] == 2,
            LIVE_MS / 1000,
            0.1,
            f"{ROOM} on A to count Erika and Anna",
        )
        reception = web_a.get("/api/v1/rooms/empfang").json()["status"]
        assert reception["state"] == "waiting" and reception["waiting"] == 1, reception
        anna_view = web_a.get(f"/api/v1/reception/tickets/{anna_token}").json()
        assert anna_view["status"] == "serving"
        assert anna_view["room"] == {"slug": ROOM, "name": ROOM_NAME}
        assert anna_view["staff"] == "Erika Muster"
        bernd_view = web_a.get(f"/api/v1/reception/tickets/{bernd_token}").json()
        assert bernd_view["status"] == "waiting" and bernd_view["position"] == 1
        assert web_a.get("/api/v1/reception").json()["waiting"] == 1
