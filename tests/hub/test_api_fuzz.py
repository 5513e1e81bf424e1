"""The OpenAPI document is the truth: schemathesis against a running hub (`empfang-hub run`,
real Mosquitto), anonymous, as staff and as an admin.

Every check is on: no 5xx answer, no schema-valid request refused as malformed, every
answer's status and body as documented, schema-invalid requests refused. Afterwards the
hub's log holds no unhandled error. Each run is bounded in time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.processes import HttpClient, HubProcess, hub_env, run_cli
from tests.support.seeded_hub import start_seeded_hub

pytestmark = pytest.mark.slow

STAFF, ADMIN, PASSWORD = "erika", "ada", "fuzz-password-123"
# Statuses a schema-valid request may get: 422 is a rule JSON Schema cannot say (an unknown
# room, overlapping hours), 409 a clash with what exists, 404 an id that does not exist.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, str]]:
    """A seeded hub process with a staff member and an admin, and its broker."""
    work = tmp_path_factory.mktemp("fuzz")
    broker = Mosquitto(work)
    broker.start()
    try:
        process, base = start_seeded_hub(work, broker.url, STAFF, PASSWORD, ticket_rate=1000)
        try:
            env = hub_env(
                mqtt_url=broker.url,
                database_url=f"sqlite:///{work / 'hub.db'}",
                instance_path=work / "inst",
            )
            made = run_cli(["create-user", ADMIN, "--admin", "--password-stdin"], env, PASSWORD)
            assert made.returncode == 0, made.stderr[-1000:]
            yield process, base
        finally:
            process.cleanup()
    finally:
        broker.stop()


def _auth(base: str, username: str | None) -> str:
    """The document's security schemes filled in, so schemathesis can also leave them out."""
    if username is None:
        return ""
    client = HttpClient(base)
    token = client.log_in(username, PASSWORD)
    cookie = next(c for c in client.cookies if c.name == "empfang_session")
    return (
        f'[auth.openapi.session]\napi_key = "{cookie.value}"\n'
        f'[auth.openapi.csrf]\napi_key = "{token}"\n'
    )


@pytest.mark.parametrize("who", [None, STAFF, ADMIN], ids=["anonymous", "staff", "admin"])
def test_the_hub_does_what_its_document_says(
    hub: tuple[HubProcess, str], who: str | None, tmp_path: Path
) -> None:
    process, base = hub
    (tmp_path / "schemathesis.toml").write_text(CONFIG + _auth(base, who))
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{base}/api/v1/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "15",
        "--max-time",
        "50",
        "--seed",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        # Leaving the queue (DELETE) ends a ticket but keeps it readable, so the citizen's
        # page can still say "you left"; it is not a deleted resource.
        "--exclude-checks",
        "use_after_free",
        # Logging out or revoking the session mid-run would only test the login page.
        "--exclude-path",
        "/api/v1/openapi.json",
    ]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=170, check=False
    )
    (tmp_path / "report.txt").write_text(run.stdout + run.stderr)
    report = run.stdout[:20000] + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert re.search(r"\d+ passed", run.stdout), report
    log = process.log_tail(200_000)
    assert "Traceback" not in log, log[-6000:]
