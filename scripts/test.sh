#!/usr/bin/env bash
# Installs everything the tests need (Debian packages when missing, Python packages into
# .venv) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

apt_install mosquitto mosquitto-clients chromium xvfb imagemagick postgresql debootstrap \
  sqlite3 fonts-dejavu-core \
  libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libegl1 \
  libnss3 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libasound2
# The Debian packages start system services we do not use: tests run their own.
for service in mosquitto postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    as_root systemctl stop "$service" || true
  fi
done
ensure_venv dev

.venv/bin/ruff check .
.venv/bin/ruff format --check .
status=0
# Two workers (the machines here have two cores and the tests wait on browsers, brokers and
# networks much of the time); each test file stays on one worker, so its module fixtures
# (a browser, a seeded hub) are made once.
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@" || status=$?
if [ $status -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $status
