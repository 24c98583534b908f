"""Scratch space of one evoforge process: created on first use, removed when the process ends.

Verifier work (problem copies, compiled kernels, the ``trial*.pt`` tensors of correctness checks)
goes to ``<root>/run-<pid>-<random>/``, where ``root`` is the configured scratch directory or
``<system temp>/evoforge-<uid>``: never the data directory that ``--db`` has nothing to do with.
The directory is removed at exit, on SIGTERM and SIGHUP (the handler removes it, then lets the
signal take its default course) and, for a run killed outright (SIGKILL, a power cut), by the next
evoforge process that starts: every run directory holds a lock file its owner keeps locked while
it lives, so a directory whose lock can be taken belongs to a dead process. Imports nothing from
evoforge.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = ".owner.lock"
_lock = threading.Lock()
_state: dict[str, Any] = {"dir": None, "fd": None, "root": None}


def default_root() -> Path:
    return Path(tempfile.gettempdir()) / f"evoforge-{os.getuid()}"


def run_dir(root: Path | None = None) -> Path:
    """This process's scratch directory (made, and stale ones swept, on the first call)."""
    root = Path(root) if root is not None else default_root()
    with _lock:
        current = _state["dir"]
        if current is not None and _state["root"] == root and current.is_dir():
            return Path(current)
        root.mkdir(parents=True, exist_ok=True)
        sweep(root)
        path = root / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        path.mkdir()
        fd = os.open(path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _state["dir"] is None:
            atexit.register(cleanup)
            _install_signal_handlers()
        else:  # another root asked for: the previous directory is finished with
            _remove(Path(_state["dir"]), _state["fd"])
        _state.update(dir=path, fd=fd, root=root)
        return path


def sweep(root: Path) -> list[Path]:
    """Remove the run directories under ``root`` whose owner process is gone; the ones removed."""
    removed = []
    for path in sorted(root.glob("run-*")):
        if not path.is_dir() or path == _state["dir"]:
            continue
        lock = path / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            fd = None  # being created right now, or left half-made: judged by its age below
        except OSError:
            continue
        if fd is None:
            try:
                import time

                if time.time() - path.stat().st_mtime < 60:
                    continue
            except OSError:
                continue
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its owner still holds it
                os.close(fd)
                continue
        shutil.rmtree(path, ignore_errors=True)
        if fd is not None:
            os.close(fd)
        removed.append(path)
        log.info("removed scratch of a process that did not clean up: %s", path)
    return removed


def cleanup() -> None:
    """Remove this process's scratch directory (idempotent)."""
    with _lock:
        path, fd = _state["dir"], _state["fd"]
        _state.update(dir=None, fd=None)
    if path is not None:
        _remove(Path(path), fd)


def _remove(path: Path, fd: int | None) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_DFL:
            continue  # someone else (a web server) handles it: atexit still runs on a clean exit
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: Any) -> None:
    cleanup()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
