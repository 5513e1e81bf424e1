"""Keep the kiosk small: how the process allocates, and how the web view runs.

Measured with ``bench/kiosk_media.py`` during a call, each step took the kiosk down from
about 1.1 GB (the last step, the videos out of the page, is `kiosk.overlay`):

- no OpenGL in Qt and no GPU process in the web view (`web_view_environment`): under a
  software GL the emulation alone loaded 60 MB of libraries and half a core of CPU; the
  kiosk's page is a few buttons and boxes (the videos are Qt widgets over it), which
  Chromium's software compositor draws cheaply;
- the web view's renderer in the kiosk process (``--single-process``): one copy of the
  engine's baseline instead of four processes; a failing renderer ends the kiosk, and
  systemd starts it again;
- glibc's allocator (`tune_allocator`): few arenas, and large buffers (a 640x480 picture
  is 1.2 MB) always returned to the system, instead of each worker thread keeping its own
  64 MB arena of freed pictures.

Settings a deployment made itself (environment variables) are never overridden.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

WEB_VIEW_FLAGS = ("--disable-gpu", "--single-process")
QT_DEFAULTS = {"QT_XCB_GL_INTEGRATION": "none", "QT_QUICK_BACKEND": "software"}
# mallopt() parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_FROM = 256 * 1024  # bytes: larger blocks are mapped, and unmapped when freed
TRIM_FROM = 1024 * 1024


def web_view_environment(environ: MutableMapping[str, str]) -> None:
    """Software drawing and a single web view process, unless configured otherwise."""
    for key, value in QT_DEFAULTS.items():
        environ.setdefault(key, value)
    flags = environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
    if "--enable-gpu" in flags:  # a deployment that wants the GPU keeps it
        return
    flags += [flag for flag in WEB_VIEW_FLAGS if flag not in flags]
    environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags)


def tune_allocator(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set glibc's malloc up for a long-running media process; False where not glibc.

    Call before worker threads start and before numpy is imported. MALLOC_ARENA_MAX in
    the environment wins.
    """
    env = os.environ if environ is None else environ
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's BLAS pool: no linear algebra here
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl or another libc: nothing to tune
    ok = True
    if "MALLOC_ARENA_MAX" not in env:
        ok &= bool(mallopt(M_ARENA_MAX, ARENAS))
    ok &= bool(mallopt(M_MMAP_THRESHOLD, MMAP_FROM))
    ok &= bool(mallopt(M_TRIM_THRESHOLD, TRIM_FROM))
    if not ok:
        log.warning("glibc did not take every allocator setting")
    return ok
