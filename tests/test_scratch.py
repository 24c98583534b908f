"""Issue 15.9: scratch never lands in the data directory and does not outlive its run — removed at
exit, on SIGTERM, and (after a SIGKILL) by the next process that starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evoforge.config import Settings
from evoforge.scratch import LOCK_NAME, sweep

CHILD = """
import sys, time
from pathlib import Path
from evoforge.config import Settings
work = Settings(scratch_dir=Path(sys.argv[1])).work_dir()
(work / "trial0.pt").write_bytes(b"x" * 1000)
print(work, flush=True)
if sys.argv[2] == "wait":
    time.sleep(60)
"""


def _start(root: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    work = Path(proc.stdout.readline().strip())
    if mode == "wait":  # an exiting child may already have cleaned up
        assert (work / "trial0.pt").exists()
    return proc, work


def test_work_dir_is_not_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", scratch_dir=tmp_path / "scratch")
    work = settings.work_dir()
    assert work.is_relative_to(tmp_path / "scratch") and not (tmp_path / "data").exists()
    assert (work / LOCK_NAME).exists()


def test_scratch_removed_at_exit_and_on_sigterm(tmp_path: Path) -> None:
    proc, work = _start(tmp_path, "exit")
    assert proc.wait(timeout=60) == 0
    assert not work.exists()
    proc, work = _start(tmp_path, "wait")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    assert not work.exists()


def test_scratch_of_a_killed_run_is_swept_by_the_next_start(tmp_path: Path) -> None:
    proc, dead = _start(tmp_path, "wait")
    alive, living = _start(tmp_path, "wait")
    try:
        proc.kill()
        proc.wait(timeout=60)
        assert dead.exists()  # SIGKILL: nothing could clean up
        removed = sweep(tmp_path)
        assert dead in removed and not dead.exists()
        assert living.exists()  # its owner still holds its lock
        half_made = tmp_path / "run-1-old"
        half_made.mkdir()
        os.utime(half_made, (time.time() - 3600, time.time() - 3600))
        assert half_made in sweep(tmp_path)
    finally:
        alive.kill()
        alive.wait(timeout=60)
