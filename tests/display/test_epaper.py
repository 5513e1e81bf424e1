"""The e-paper image: drawn from the real hub's statuses, redrawn only on visible change."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask.testing import FlaskClient
from PIL import Image

from display.config import EpaperConfig
from display.epaper import EpaperOutput, FullRefreshPolicy
from display.model import BoardView, Reason, RoomView, Shown
from display.panels import PngSink
from tests.conftest import create_room
from tests.display.conftest import count_red, make_config, running_display
from tests.support.clock import ManualClock
from tests.support.mosquitto import Mosquitto
from tests.support.net import wait_for

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def _fingerprint(path: Path) -> tuple[int, int, str]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_png_follows_the_hub_and_is_not_rewritten_without_a_visible_change(
    tmp_path: Path,
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: object,
    clock: ManualClock,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1", name="Sozialamt – Beratung 2")
    out = tmp_path / "door.png"
    config = make_config(
        mosquitto.url,
        ["raum-1"],
        outputs=["epaper"],
        epaper={"panel": f"png:{out}", "width": 800, "height": 480, "colours": "bwr"},
    )
    with running_display(config, clock.now) as display:
        sink = display.panel
        assert isinstance(sink, PngSink)
        wait_for(lambda: sink.writes >= 2, 5, message="the first (unknown, then free) images")
        wait_for(lambda: display.board.view().room("raum-1").shown == Shown.FREE, 5, message="free")
        wait_for(lambda: count_red(out) == 0 and sink.writes >= 2, 5, message="a free image")
        with Image.open(out) as image:
            assert image.size == (800, 480)
            colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 16) or []}
        assert colours <= {(255, 255, 255), (0, 0, 0), (255, 0, 0)}  # the panel's three inks
        free_writes = sink.writes

        client.post("/api/v1/rooms/raum-1/checkin", headers={"X-CSRFToken": token})
        wait_for(lambda: sink.writes > free_writes, 3, message="a new image for busy")
        wait_for(lambda: count_red(out) > 800 * 480 * 0.2, 3, message="a red busy band")
        busy = _fingerprint(out)
        writes = sink.writes
        assert sink.full_refreshes == 1  # only the first draw; the rest were partial

        # The hub republishes (same seq, fresh `updated`): nothing visible changes.
        before = display.board.status("raum-1")
        assert before is not None
        clock.advance(seconds=20)
        runtime.republish()  # type: ignore[attr-defined]
        wait_for(
            lambda: display.board.status("raum-1") != before, 3, message="the republished status"
        )
        time.sleep(1.5)  # a watchdog tick or more
        assert sink.writes == writes
        assert _fingerprint(out) == busy


def _view(shown: Shown, waiting: int = 0, name: str = "Raum 1") -> BoardView:
    reason = Reason.HUB_OFFLINE if shown == Shown.UNKNOWN else None
    since = None if shown == Shown.UNKNOWN else NOW - timedelta(minutes=3)
    return BoardView((RoomView("raum-1", name, shown, since, waiting, reason),))


def _output(tmp_path: Path, colours: str, size: tuple[int, int], now: list[float]) -> EpaperOutput:
    config = EpaperConfig(f"png:{tmp_path}/e.png", size[0], size[1], colours, 10)  # type: ignore[arg-type]
    return EpaperOutput(
        PngSink(tmp_path / "e.png"), config, "de", BERLIN, lambda: NOW, lambda: now[0]
    )


def test_three_colour_and_black_white_panels(tmp_path: Path) -> None:
    now = [0.0]
    big = _output(tmp_path / "big", "bwr", (800, 480), now)
    images = {}
    for shown in Shown:
        assert big.render(_view(shown, waiting=2 if shown == Shown.BUSY else 0))
        with Image.open(big.panel.path) as image:  # type: ignore[attr-defined]
            images[shown] = image.convert("RGB")
    assert len({img.tobytes() for img in images.values()}) == len(Shown)  # all distinct
    red = {
        shown: sum(n for n, c in img.getcolors(1 << 24) or [] if c == (255, 0, 0))
        for shown, img in images.items()
    }
    assert red[Shown.BUSY] > 800 * 480 * 0.3 and red[Shown.DND] > 800 * 480 * 0.3
    assert red[Shown.WAITING] > 1000
    assert red[Shown.FREE] == red[Shown.CLOSED] == red[Shown.UNKNOWN] == 0

    small = _output(tmp_path / "small", "bw", (296, 128), now)
    assert small.render(_view(Shown.BUSY))
    with Image.open(small.panel.path) as image:  # type: ignore[attr-defined]
        assert image.size == (296, 128)
        colours = {c for _, c in image.convert("RGB").getcolors() or []}
    assert colours <= {(255, 255, 255), (0, 0, 0)}


def test_redraws_only_on_visible_change_and_limits_full_refreshes(tmp_path: Path) -> None:
    now = [0.0]
    out = _output(tmp_path, "bwr", (800, 480), now)
    sink = out.panel
    assert isinstance(sink, PngSink)
    assert out.render(_view(Shown.FREE))
    assert not out.render(_view(Shown.FREE))  # same content
    assert sink.writes == 1 and sink.full_refreshes == 1
    now[0] += 60
    assert out.render(_view(Shown.BUSY))
    assert out.render(_view(Shown.BUSY, waiting=1))  # the waiting count is visible
    assert (sink.writes, sink.full_refreshes) == (3, 1)  # partial refreshes
    now[0] += 10 * 60
    assert out.render(_view(Shown.FREE))
    assert (sink.writes, sink.full_refreshes) == (4, 2)  # ten minutes on: a full one


def test_full_refresh_policy() -> None:
    now = [0.0]
    policy = FullRefreshPolicy(1, lambda: now[0])
    assert policy.next_is_full()
    now[0] = 59
    assert not policy.next_is_full()
    now[0] = 60
    assert policy.next_is_full()
    assert not policy.next_is_full()
    assert FullRefreshPolicy(0, lambda: 0.0).next_is_full()


def test_png_sink_writes_atomically(tmp_path: Path) -> None:
    sink = PngSink(tmp_path / "sub" / "door.png")
    sink.show(Image.new("RGB", (10, 10), (255, 0, 0)), full=True)
    first = (tmp_path / "sub" / "door.png").stat().st_ino
    sink.show(Image.new("RGB", (10, 10), (0, 0, 0)), full=False)
    assert (tmp_path / "sub" / "door.png").stat().st_ino != first  # replaced, not rewritten
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["door.png"]  # no temp files left
    assert (sink.writes, sink.full_refreshes) == (2, 1)


def test_list_of_rooms(tmp_path: Path) -> None:
    now = [0.0]
    out = _output(tmp_path, "bwr", (800, 480), now)
    view = BoardView(
        tuple(
            RoomView(f"raum-{i}", f"Raum {i}", shown, NOW, 0, None)
            for i, shown in enumerate([Shown.FREE, Shown.BUSY, Shown.CLOSED])
        )
    )
    assert out.render(view)
    texts = [room.word for room in out.content(view)]
    assert texts == ["FREI", "BESETZT", "GESCHLOSSEN"]
    red_rows = count_red(out.panel.path)  # type: ignore[attr-defined]
    assert 800 * 480 / 3 * 0.8 < red_rows < 800 * 480 / 3 * 1.2  # one busy band of three
