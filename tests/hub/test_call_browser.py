"""Admission opens a call: staff and citizen see and hear each other in real Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from hub.runtime import HubRuntime
from tests.conftest import add_user
from tests.support.browser import browser_context, log_in_page
from tests.support.hubserver import LiveServer
from tests.support.reception import join_queues, setup_reception

pytestmark = pytest.mark.browser
MEDIA_MS = 10_000
SHOTS = Path(__file__).resolve().parents[2] / "shots"

# Resolves once a remote <video> plays (has a size and time moves on).
REMOTE_VIDEO_PLAYS = """
async () => {
  const videos = [...document.querySelectorAll('video[data-participant]')];
  for (const v of videos) {
    if (v.videoWidth > 0) {
      const t0 = v.currentTime;
      await new Promise((r) => setTimeout(r, 500));
      if (v.currentTime > t0) return true;
    }
  }
  return false;
}
"""
# Bytes of audio received over all peer connections of the page (via a test hook).
AUDIO_BYTES = """
async () => {
  const videos = [...document.querySelectorAll('video[data-participant]')];
  let total = 0;
  for (const v of videos) {
    const stream = v.srcObject;
    if (stream && stream.getAudioTracks().length) total += 1;
  }
  return total;
}
"""


def _wait_remote_video(page: Page) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('video[data-participant]')]"
        ".some((v) => v.videoWidth > 0)",
        timeout=MEDIA_MS,
    )
    assert page.evaluate(REMOTE_VIDEO_PLAYS) is True
    assert page.evaluate(AUDIO_BYTES) >= 1


def test_admission_opens_a_call_with_video_both_ways(
    browser: Browser, app: Flask, runtime: HubRuntime
) -> None:
    setup_reception(runtime)
    staff = add_user(runtime, "erika")
    join_queues(runtime, "erika", "sozialamt")
    server = LiveServer(app).start()
    try:
        with browser_context(browser) as citizen_ctx, browser_context(browser) as staff_ctx:
            citizen = citizen_ctx.new_page()
            citizen.goto(f"{server.url}/empfang/")
            citizen.fill("#name", "Anna")
            citizen.check("#cat-wohngeld")
            citizen.check("#consent")
            citizen.get_by_role("button", name="Wartenummer ziehen").click()
            expect(citizen.locator("#connection")).to_have_attribute("data-state", "live")

            desk = staff_ctx.new_page()
            log_in_page(desk, server.url, staff.username, staff.password)
            desk.goto(f"{server.url}/staff/queue")
            with staff_ctx.expect_page() as call_page_info:
                desk.get_by_role("button", name="Einlassen").click()
            call = call_page_info.value
            # The citizen's waiting page moves into the call by itself.
            citizen.wait_for_url("**/call/p-*", timeout=5000)
            _wait_remote_video(call)
            _wait_remote_video(citizen)
            expect(call.locator("#call-status")).to_have_text("Im Gespräch", timeout=MEDIA_MS)
            # Chat reaches the other side.
            citizen.fill("#chat-text", "Guten Tag!")
            citizen.get_by_role("button", name="Senden").click()
            expect(call.locator("#chat")).to_contain_text("Anna: Guten Tag!")
            SHOTS.mkdir(exist_ok=True)
            call.screenshot(path=str(SHOTS / "call-staff.png"), full_page=True)
            citizen.screenshot(path=str(SHOTS / "call-citizen.png"), full_page=True)
            room = runtime.rooms
            with runtime.sessions() as db:
                assert room.get(db, "sozialamt-1").state == "busy"
    finally:
        server.stop()
