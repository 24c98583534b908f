"""The box that untrusted code runs in: files, secrets, network, time and process limits."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from evoforge.verifiers.sandbox import isolation, run_untrusted

ROOT = Path(__file__).resolve().parents[1]


def test_child_cannot_write_outside_its_workdir(tmp_path: Path) -> None:
    if isolation() != "filesystem+network":
        pytest.skip(f"bubblewrap isolation is unavailable here ({isolation()})")
    target = ROOT / "sandbox-escape.txt"
    work = tmp_path / "box"
    script = f"open('inside.txt','w').write('ok'); open({str(target)!r},'w').write('escaped')"
    result = run_untrusted([sys.executable, "-c", script], workdir=work, timeout=30)
    assert not result.ok
    assert "Read-only file system" in result.stderr
    assert (work / "inside.txt").read_text() == "ok"
    assert not target.exists()


def test_child_sees_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("EVOFORGE_TOKEN", "also-secret")
    result = run_untrusted(
        [sys.executable, "-c", "import os; print(sorted(os.environ))"],
        workdir=tmp_path / "box",
        timeout=30,
        env={"MY_API_KEY": "nope", "HARMLESS": "1"},
    )
    assert result.ok, result.stderr
    assert "OPENAI_API_KEY" not in result.stdout and "EVOFORGE_TOKEN" not in result.stdout
    assert "MY_API_KEY" not in result.stdout and "HARMLESS" in result.stdout


def test_child_has_no_network(tmp_path: Path) -> None:
    if isolation() == "limits-only":
        pytest.skip("no network namespace can be made here")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    script = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
    try:
        result = run_untrusted([sys.executable, "-c", script], workdir=tmp_path / "box", timeout=30)
    finally:
        server.close()
    assert "connected" not in result.stdout
    assert not result.ok


def test_hanging_child_and_its_children_are_killed_on_time(tmp_path: Path) -> None:
    marker = tmp_path / "box" / "late.txt"
    script = (
        "import subprocess, time; subprocess.Popen(['sleep', '61.25']); "
        f"time.sleep(60); open({str(marker)!r}, 'w').write('late')"
    )
    start = time.monotonic()
    result = run_untrusted([sys.executable, "-c", script], workdir=tmp_path / "box", timeout=2)
    assert result.timed_out
    assert time.monotonic() - start < 15
    assert not marker.exists()
    time.sleep(0.5)
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _reads(p) == b"sleep\x0061.25\x00"]
    assert not leftovers, "the grandchild outlived the timeout"


def _reads(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
