"""Ansible provisioning: lint, syntax check, and a real converge into Debian 12 roots.

The converge builds a Debian 12 (bookworm) root with debootstrap once and caches it as a
tarball (``/var/cache/empfang-test/bookworm-root.tar``; ``EMPFANG_TEST_CACHE`` moves it),
unpacks a fresh copy per host and runs the real ``site.yml`` through the
``community.general.chroot`` connection: a hub machine (mosquitto, coturn, hub), a kiosk
and a door display (the parts that make sense on plain Debian: no Qt WebEngine, no Pi
boot files), and an ESP32 light whose config.json is built on the control node. A second
converge must change nothing. Services cannot start in a chroot under systemd, so the
checks look at files, users, enabled units, ``nginx -t``, the hub's virtual environment,
its database and its backup script; then live_server.py starts the converged broker, hub
and nginx from the root in namespaces of their own and talks to them over MQTT, HTTPS
and a WebSocket.

Needs root, ``debootstrap`` (Debian package) and ``ansible`` plus ``ansible-lint`` (pip);
without them the tests fail and say what is missing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kiosk.config import parse_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
VENV_BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("EMPFANG_TEST_CACHE", "/var/cache/empfang-test"))
BASE_TAR = CACHE / "bookworm-root.tar"
MIRROR = os.environ.get("EMPFANG_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# A Debian 12 server as a county would hand it over: systemd, Python for Ansible, CAs.
BASE_PACKAGES = "python3,python3-apt,systemd,ca-certificates"
VERSION = "0.1.0"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)
HOSTS = ("server", "kiosk", "display")
MQTT_PASSWORD = "mqtt-admin-secret-123"
# Characters that the environment file must escape for systemd.
SECRET_KEY = 'test-secret-$HOME-"quoted"-back\\slash-`tick`-0123456789abcdef'
TIMINGS: dict[str, float] = {}


def tool(name: str, package: str) -> str:
    """The path of a command, from the project's venv or PATH; fails the test without it."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is missing: install {package}", pytrace=False)
    return found


def run(
    argv: list[str], *, timeout: float = 600, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(
            f"{shlex.join(argv)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-20000:]}\n--- stderr ---\n{result.stderr[-8000:]}"
        )
    return result


def ansible_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        # Ansible Galaxy is never needed: everything used ships with the ansible package.
        ANSIBLE_GALAXY_SERVER_LIST="",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}:/usr/sbin:/sbin",
    )
    return env


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Record how long the block took under ``name`` (printed after the converge)."""
    start = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[name] = round(time.monotonic() - start, 1)


# --- lint and syntax -----------------------------------------------------------------------


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    lint = tool("ansible-lint", "the pip package ansible-lint")
    tool("ansible-playbook", "the pip package ansible")
    env = ansible_env(tmp_path)
    del env["ANSIBLE_CONFIG"]  # --project-dir finds ansible/ansible.cfg (the roles path)
    with timed("ansible-lint"):
        result = run(
            [lint, "--offline", "--profile", "production", "--nocolor",
             "--project-dir", "ansible", "ansible/"],
            cwd=ROOT,
            env=env,
            check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_site_playbook_syntax(tmp_path: Path) -> None:
    playbook = tool("ansible-playbook", "the pip package ansible")
    result = run(
        [playbook, "--syntax-check", "-i", "inventory.example.yml", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
    )
    assert "playbook: site.yml" in result.stdout


# --- the converge ----------------------------------------------------------------------------


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(path: Path) -> None:
    for point in mounts_below(path):
        if subprocess.run(["umount", point], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", point], check=False)


def remove_root(path: Path) -> None:
    """Delete a chroot, but never through a mount point into the host."""
    unmount_all(path)
    left = mounts_below(path)
    if left:
        raise RuntimeError(f"still mounted, not deleting {path}: {left}")
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def base_tarball() -> Path:
    """The cached Debian 12 minbase root; made with debootstrap the first time (~100 s)."""
    if BASE_TAR.exists():
        return BASE_TAR
    debootstrap = tool("debootstrap", "the Debian package debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"bookworm-root.{os.getpid()}"
    remove_root(work)
    try:
        with timed("debootstrap (first run only)"):
            run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={BASE_PACKAGES}",
                    "bookworm",
                    str(work),
                    MIRROR,
                ],
                timeout=900,
            )
            run(["chroot", str(work), "apt-get", "clean"])
            partial = BASE_TAR.with_suffix(".tar.partial")
            run(["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."])
            partial.replace(BASE_TAR)
    finally:
        remove_root(work)
    return BASE_TAR


def make_root(path: Path, tarball: Path, host: str) -> None:
    """A fresh Debian root from the tarball, ready for the chroot connection.

    Downloaded packages (apt's archives, pip's cache) are kept per host under
    the cache folder and bind-mounted, so a second test run downloads nothing again.
    """
    path.mkdir(parents=True)
    run(["tar", "--numeric-owner", "-C", str(path), "-xf", str(tarball)])
    run(["mount", "-t", "proc", "proc", str(path / "proc")])
    for cached, inside in (
        ("apt-archives", "var/cache/apt/archives"),
        ("pip", "root/.cache/pip"),
    ):
        source, target = CACHE / "downloads" / host / cached, path / inside
        source.mkdir(parents=True, exist_ok=True)
        target.mkdir(parents=True, exist_ok=True)
        run(["mount", "--bind", str(source), str(target)])
    # Package scripts must not start daemons inside the chroot (on the host's network).
    policy = path / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    for name in ("resolv.conf", "hosts"):
        shutil.copyfile(f"/etc/{name}", path / "etc" / name)
    # Trust the same local certificate authorities as this machine (a proxy in front of
    # PyPI, for example), as a real server in this network would.
    local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if local_cas:
        target = path / "usr/local/share/ca-certificates"
        target.mkdir(parents=True, exist_ok=True)
        for ca in local_cas:
            shutil.copyfile(ca, target / ca.name)
        run(["chroot", str(path), "update-ca-certificates"])


def build_wheel(out: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)])
    (wheel,) = out.glob(f"empfang-{VERSION}-*.whl")
    return wheel


def constraints() -> list[str]:
    """The versions the project's own venv runs, so the chroot installs the same ones."""
    frozen = run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"]).stdout
    return [
        line.strip()
        for line in frozen.splitlines()
        if "==" in line and not line.lower().startswith("empfang==")
    ]


def inventory(roots: dict[str, Path], tmp: Path, wheel: Path) -> dict[str, object]:
    secret = SECRET_KEY
    pins = constraints()
    chroot = {
        "ansible_connection": "community.general.chroot",
        "ansible_become": False,
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    credentials = tmp / "light-test.json"
    credentials.write_text(
        json.dumps(
            {
                "device_id": "light-test",
                "site": "default",
                "rooms": ["sozialamt-2"],
                "username": "light-test",
                "password": "light-secret",
                "broker": {"host": "empfang.test", "port": 8883, "tls": True},
            }
        )
    )
    return {
        "all": {
            "vars": {
                "hub_package_file": str(wheel),
                "kiosk_package_file": str(wheel),
                "display_package_file": str(wheel),
                "hub_pip_constraints": pins,
                "kiosk_pip_constraints": pins,
                "display_pip_constraints": pins,
            },
            "children": {
                "hub": {
                    "hosts": {"server": {"ansible_host": str(roots["server"]), **chroot}},
                    "vars": {
                        "hub_server_name": "empfang.test",
                        "hub_secret_key": secret,
                        "hub_mqtt_password": MQTT_PASSWORD,
                        "hub_stun_urls": ["stun:empfang.test:3478"],
                        "hub_turn_urls": ["turn:empfang.test:3478?transport=udp"],
                        "hub_turn_secret": "turn-secret-0123456789",
                        "hub_tls_self_signed": True,
                        "mosquitto_dynsec_admin_password": MQTT_PASSWORD,
                        "mosquitto_tls_self_signed": True,
                        "mosquitto_tls_common_name": "empfang.test",
                        "coturn_static_auth_secret": "turn-secret-0123456789",
                        "coturn_tls_self_signed": True,
                        "coturn_server_name": "empfang.test",
                        "coturn_realm": "empfang.test",
                    },
                },
                "broker": {"children": {"hub": {}}},
                "turn": {"children": {"hub": {}}},
                "kiosks": {
                    "hosts": {"kiosk": {"ansible_host": str(roots["kiosk"]), **chroot}},
                    "vars": {
                        "kiosk_hub_url": "https://empfang.test",
                        # Qt WebEngine (about 150 MB) is left out to keep the test fast.
                        "kiosk_webview_apt_packages": [],
                        "kiosk_settings": {
                            "camera": "synthetic",
                            "gpio": {"call_button": 17, "motion_sensor": 4, "status_led": 27},
                            "video": {"pre_encoded": True},
                            "audio": {"microphone": "alsa:default", "speaker": "none"},
                        },
                        "kiosk_nightly_reboot": True,
                    },
                },
                "displays": {
                    "hosts": {"display": {"ansible_host": str(roots["display"]), **chroot}},
                    "vars": {
                        "display_hub_url": "https://empfang.test",
                        "display_outputs": ["epaper", "leds"],
                        # Before enrollment: a broker account made by hand.
                        "display_broker_url": "mqtts://tuer-test:door%2Fsecret@empfang.test:8883",
                        "display_device_id": "tuer-test",
                        "display_rooms": ["sozialamt-2"],
                        "display_settings": {
                            "epaper": {"panel": "png:/var/lib/empfang-display/door.png"},
                            "leds": {"red": 17, "green": 27, "blue": 22},
                            "knock": {"pin": 5},
                        },
                    },
                },
                "lights": {
                    "hosts": {
                        "light-test": {
                            "ansible_connection": "local",
                            "firmware_credentials_file": str(credentials),
                            "firmware_build_dir": str(tmp / "lights"),
                            "firmware_wifi_ssid": "Rathaus-IoT",
                            "firmware_wifi_password": "wifi-secret",
                            "firmware_quiet_hours": "22:00-06:00",
                        }
                    }
                },
            },
        }
    }


def env_file_value(raw: str) -> str:
    """A double-quoted value of a systemd EnvironmentFile, unquoted as systemd does.

    Inside double quotes systemd (env-file.c) removes the backslash before the characters
    a shell needs escaped there (double quote, backslash, backtick, dollar) and keeps it
    before anything else, exactly like a POSIX shell.
    """
    assert raw.startswith('"') and raw.endswith('"'), raw
    return re.sub(r'\\([\\"`$])', r"\1", raw[1:-1])


def recap(output: str) -> dict[str, dict[str, int]]:
    hosts = {}
    for match in RECAP.finditer(output):
        hosts[match["host"]] = {
            key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")
        }
    return hosts


@dataclass
class Converged:
    roots: dict[str, Path]
    tmp: Path
    first: dict[str, dict[str, int]]
    second: dict[str, dict[str, int]]
    second_output: str
    timings: dict[str, float] = field(default_factory=dict)

    def chroot(self, host: str, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run(["chroot", str(self.roots[host]), *argv], **kwargs)  # type: ignore[arg-type]

    def path(self, host: str, inside: str) -> Path:
        return self.roots[host] / inside.lstrip("/")


@pytest.fixture(scope="module")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converged]:
    if os.geteuid() != 0:
        pytest.fail("the converge test needs root (debootstrap, chroot, mount)", pytrace=False)
    playbook = tool("ansible-playbook", "the pip package ansible")
    tool("debootstrap", "the Debian package debootstrap")  # also when the root is cached
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("ansible")
    roots = {host: tmp / f"root-{host}" for host in HOSTS}
    try:
        tarball = base_tarball()
        with timed("unpack roots"):
            for host, path in roots.items():
                make_root(path, tarball, host)
        with timed("build wheel"):
            wheel = build_wheel(tmp / "dist")
        inv = tmp / "inventory.yml"
        inv.write_text(yaml.safe_dump(inventory(roots, tmp, wheel), sort_keys=False))
        env = ansible_env(tmp)
        argv = [playbook, "-i", str(inv), "site.yml"]
        with timed("first converge"):
            first = run(argv, cwd=ANSIBLE_DIR, env=env, timeout=1200, check=False)
        (tmp / "first-converge.log").write_text(first.stdout + first.stderr)
        assert first.returncode == 0, first.stdout[-20000:] + first.stderr[-5000:]
        with timed("second converge"):
            second = run(argv, cwd=ANSIBLE_DIR, env=env, timeout=900, check=False)
        (tmp / "second-converge.log").write_text(second.stdout + second.stderr)
        assert second.returncode == 0, second.stdout[-20000:] + second.stderr[-5000:]
        yield Converged(roots, tmp, recap(first.stdout), recap(second.stdout), second.stdout)
    finally:
        for path in roots.values():
            remove_root(path)
        TIMINGS["converge fixture total"] = round(time.monotonic() - started, 1)
        print("\nansible test timings (s):", json.dumps(TIMINGS, indent=1), file=sys.stderr)


def test_first_converge_reaches_every_host(converged: Converged) -> None:
    for host in (*HOSTS, "light-test"):
        assert host in converged.first, converged.first
        assert converged.first[host]["failed"] == 0
        assert converged.first[host]["unreachable"] == 0
    assert converged.first["server"]["changed"] > 20


def test_second_converge_changes_nothing(converged: Converged) -> None:
    changed_tasks = re.findall(r"^changed: \[.*$", converged.second_output, re.MULTILINE)
    assert set(converged.second) >= {*HOSTS, "light-test"}
    for host, counts in converged.second.items():
        assert counts["changed"] == 0, (host, counts, changed_tasks)
        assert counts["failed"] == 0


def test_hub_user_settings_and_units(converged: Converged) -> None:
    passwd = converged.path("server", "/etc/passwd").read_text()
    assert re.search(r"^empfang:x:\d+:\d+:.*:/var/lib/empfang:/usr/sbin/nologin$", passwd, re.M)
    env_file = converged.path("server", "/etc/empfang/hub.env")
    info = env_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0
    settings = env_file.read_text()
    assert f'EMPFANG_MQTT_URL="mqtt://empfang-hub:{MQTT_PASSWORD}@127.0.0.1:1883"' in settings
    assert 'EMPFANG_TURN_SECRET="turn-secret-0123456789"' in settings
    assert 'EMPFANG_PUBLIC_URL="https://empfang.test"' in settings

    unit = converged.path("server", "/etc/systemd/system/empfang-hub.service").read_text()
    assert "Restart=always" in unit and "Type=notify" in unit
    assert not re.search(r"^WatchdogSec=", unit, re.M)  # gunicorn sends no watchdog pings
    assert "--worker-class gthread" in unit and "'hub:create_app()'" in unit
    assert "EnvironmentFile=/etc/empfang/hub.env" in unit
    enabled = {
        unit: run(
            ["systemctl", "--root", str(converged.roots["server"]), "is-enabled", unit], check=False
        ).stdout.strip()
        for unit in (
            "empfang-hub.service",
            "empfang-hub-backup.timer",
            "empfang-hub-healthcheck.timer",
            "nginx.service",
            "mosquitto.service",
            "coturn.service",
        )
    }
    assert set(enabled.values()) == {"enabled"}, enabled
    verify = converged.chroot(
        "server",
        "systemd-analyze",
        "verify",
        "/etc/systemd/system/empfang-hub.service",
        "/etc/systemd/system/empfang-hub-backup.service",
        "/etc/systemd/system/empfang-hub-healthcheck.service",
        check=False,
    )
    assert "empfang-hub" not in verify.stderr, verify.stderr


def test_nginx_configuration_passes_nginx_t(converged: Converged) -> None:
    result = converged.chroot("server", "nginx", "-t", check=False)
    assert result.returncode == 0, result.stderr
    link = converged.path("server", "/etc/nginx/sites-enabled/empfang.conf")
    assert os.readlink(link) == "/etc/nginx/sites-available/empfang.conf"
    site = converged.path("server", "/etc/nginx/sites-available/empfang.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in site
    assert "proxy_set_header Connection $connection_upgrade;" in site
    assert not converged.path("server", "/etc/nginx/sites-enabled/default").exists()
    websocket_map = converged.path("server", "/etc/nginx/conf.d/empfang-websocket-map.conf")
    assert "map $http_upgrade $connection_upgrade" in websocket_map.read_text()
    logrotate = converged.chroot(
        "server", "logrotate", "--debug", "/etc/logrotate.d/empfang", check=False
    )
    assert logrotate.returncode == 0, logrotate.stderr
    assert not re.search(r"^error:", logrotate.stderr, re.M), logrotate.stderr


def test_hub_is_installed_and_its_database_upgraded(converged: Converged) -> None:
    converged.chroot("server", "/opt/empfang/venv/bin/python", "-c", "import hub, gunicorn")
    version = converged.chroot(
        "server",
        "/opt/empfang/venv/bin/python",
        "-c",
        "import importlib.metadata as m; print(m.version('empfang'))",
    ).stdout.strip()
    assert version == VERSION

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ROOT / "hub" / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    database = converged.path("server", "/var/lib/empfang/empfang.db")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
    owner = database.stat().st_uid
    assert converged.path("server", "/var/lib/empfang").stat().st_uid == owner != 0

    # The hub's own command, with the hub's settings and user, finds nothing to do.
    environment = {}
    for line in converged.path("server", "/etc/empfang/hub.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            environment[name] = env_file_value(value)
    assert environment["EMPFANG_SECRET_KEY"] == SECRET_KEY
    upgrade = converged.chroot(
        "server",
        "env",
        *[f"{k}={v}" for k, v in environment.items()],
        "runuser",
        "-u",
        "empfang",
        "--",
        "/opt/empfang/venv/bin/empfang-hub",
        "db",
        "upgrade",
    )
    assert "Database is up to date." in upgrade.stdout
    assert "Running upgrade" not in upgrade.stderr


def test_hub_backup_script_writes_a_backup(converged: Converged) -> None:
    converged.chroot(
        "server", "runuser", "-u", "empfang", "--", "/usr/local/sbin/empfang-hub-backup"
    )
    backups = list(converged.path("server", "/var/backups/empfang").glob("empfang-*.db.gz"))
    assert len(backups) == 1 and backups[0].stat().st_size > 0


def test_mosquitto_tls_auth_and_dynsec(converged: Converged) -> None:
    conf = converged.path("server", "/etc/mosquitto/mosquitto.conf").read_text()
    for line in (
        "allow_anonymous false",
        "persistence true",
        "listener 8883",
        "certfile /etc/mosquitto/certs/broker.crt",
        "listener 1883 127.0.0.1",
        "plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json",
    ):
        assert line in conf.splitlines(), line
    plugin = re.search(r"^plugin (\S+)$", conf, re.M)
    assert plugin and converged.path("server", plugin[1]).exists()
    dynsec = converged.path("server", "/var/lib/mosquitto/dynamic-security.json")
    assert stat.S_IMODE(dynsec.stat().st_mode) == 0o600
    clients = json.loads(dynsec.read_text())["clients"]
    admin = next(c for c in clients if c["username"] == "empfang-hub")
    assert {"rolename": "admin"} in [{"rolename": r["rolename"]} for r in admin["roles"]]
    key = converged.path("server", "/etc/mosquitto/certs/broker.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o640


def test_coturn_shares_the_hubs_secret(converged: Converged) -> None:
    conf = converged.path("server", "/etc/turnserver.conf").read_text().splitlines()
    assert "use-auth-secret" in conf
    assert "static-auth-secret=turn-secret-0123456789" in conf
    assert "realm=empfang.test" in conf and "listening-port=3478" in conf
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" in conf
    mode = converged.path("server", "/etc/turnserver.conf").stat().st_mode
    assert stat.S_IMODE(mode) == 0o640


def test_kiosk_parts_that_run_on_debian(converged: Converged) -> None:
    root = converged.roots["kiosk"]
    assert "empfang-kiosk:x:" in converged.path("kiosk", "/etc/passwd").read_text()
    converged.chroot("kiosk", "/opt/empfang/venv/bin/python", "-c", "import aiortc, gpiozero")
    session = converged.path("kiosk", "/etc/systemd/system/empfang-session.service").read_text()
    assert "ExecStart=/usr/bin/cage -d -- /opt/empfang/venv/bin/empfang-kiosk run" in session
    assert converged.path("kiosk", "/usr/bin/cage").exists()

    def enabled(unit: str) -> str:
        return run(
            ["systemctl", "--root", str(root), "is-enabled", unit], check=False
        ).stdout.strip()

    # Not enrolled (no code in this inventory): the session waits for the enrollment.
    assert enabled("empfang-session.service") == "disabled"
    assert enabled("empfang-screen-on.timer") == "enabled"
    assert enabled("empfang-nightly-reboot.timer") == "enabled"
    assert os.readlink(root / "etc/systemd/system/default.target").endswith("graphical.target")
    watchdog = converged.path("kiosk", "/etc/systemd/system.conf.d/empfang-watchdog.conf")
    assert "RuntimeWatchdogSec=15s" in watchdog.read_text()
    config = converged.path("kiosk", "/etc/empfang/kiosk.toml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert 'hub = "https://empfang.test"' in config.read_text()
    # Once enrollment adds the device's keys, the kiosk accepts the file as it is.
    with config.open("rb") as fh:
        settings = parse_config({**tomllib.load(fh), "device": "kiosk-test"})
    assert settings.camera.kind == "synthetic" and settings.video.pre_encoded is True
    assert (settings.gpio.call_button, settings.gpio.motion_sensor) == (17, 4)
    assert (settings.audio.microphone, settings.audio.speaker) == ("alsa:default", "none")


def test_display_configuration_is_accepted_by_the_display(converged: Converged) -> None:
    root = converged.roots["display"]
    config = converged.path("display", "/etc/empfang/display.toml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    checked = converged.chroot(
        "display",
        "runuser",
        "-u",
        "empfang-display",
        "--",
        "/opt/empfang/venv/bin/python",
        "-c",
        "from pathlib import Path; from display.config import load_config; "
        "c = load_config(Path('/etc/empfang/display.toml')); "
        "print(c.device, c.broker.password, ','.join(c.outputs), c.leds.red, c.epaper.panel)",
    )
    assert checked.stdout.split() == [
        "tuer-test",
        "door/secret",
        "epaper,leds",
        "17",
        "png:/var/lib/empfang-display/door.png",
    ]
    state = run(
        ["systemctl", "--root", str(root), "is-enabled", "empfang-display.service"], check=False
    ).stdout.strip()
    assert state == "enabled"
    # No HDMI: no cage session.
    assert not converged.path("display", "/etc/systemd/system/empfang-session.service").exists()


def test_light_config_is_built_and_checked_on_the_control_node(converged: Converged) -> None:
    config = converged.tmp / "lights" / "light-test" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    data = json.loads(config.read_text())
    assert data["device_id"] == "light-test"
    assert data["wifi"] == {"ssid": "Rathaus-IoT", "password": "wifi-secret"}
    assert data["quiet_hours"] == ["22:00", "06:00"]


def test_server_answers_in_a_network_of_its_own(converged: Converged) -> None:
    """The converged broker, hub and nginx really start and answer.

    They run from the root in namespaces of their own (a network with only a loopback
    device, so the host's ports are never touched; a PID namespace that ends every process
    with the driver), not as systemd services, which cannot run in a chroot.
    """
    unshare = tool("unshare", "the Debian package util-linux")
    driver = Path(__file__).with_name("live_server.py")
    root = str(converged.roots["server"])
    result = run(
        [unshare, "--net", "--pid", "--mount", "--fork", "--mount-proc",
         sys.executable, str(driver), root, MQTT_PASSWORD],
        timeout=180,
    )  # fmt: skip
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["mosquitto_listening"] and seen["hub_listening"], seen
    # Mosquitto: no anonymous access; the hub's admin account over the local listener
    # and over TLS (certificate checked for empfang.test); the dynamic-security plugin.
    assert seen["mqtt_anonymous"]["ok"] is False, seen
    assert seen["mqtt_admin"]["ok"] and "empfang-hub" in seen["mqtt_admin"]["clients"], seen
    assert seen["mqtt_tls_admin"]["ok"], seen
    # The hub behind nginx over TLS: healthy (database and broker reachable), WebSocket
    # upgrades pass, plain HTTP is sent to HTTPS.
    assert seen["healthz"][0] == 200, seen
    assert seen["websocket"] == "HTTP/1.1 101 Switching Protocols", seen
    assert seen["http"][0] == "HTTP/1.1 301 Moved Permanently", seen
    assert "Location: https://empfang.test/empfang/" in seen["http"], seen
