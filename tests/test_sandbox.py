"""The box that untrusted code and the tools run in: user, files, secrets, network, time, processes.

Issue 10 items 4 (process limits bind: the box runs as an unprivileged user) and 5 (only what a child
needs is visible). Each test is the attack, run for real in the box this machine provides; where a
mechanism is missing here the test says so and skips, and the degraded mode has its own tests.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import evoforge
from evoforge.tools import box
from evoforge.tools.process import SANDBOX_LIMITS
from evoforge.verifiers.sandbox import isolation, isolation_report, run_untrusted

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(evoforge.__file__).resolve().parent

FORK_BOMB = """
import os, sys, time
made = 0
try:
    for _ in range(1100):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        made += 1
except OSError as exc:
    print(f"stopped after {made}: {exc.strerror}")
    sys.exit(3)
print(f"forked {made}")
"""


def _needs_filesystem_isolation() -> None:
    if isolation() != "filesystem+network":
        pytest.skip(f"bubblewrap isolation is unavailable here ({isolation()})")


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Probe the machine again after the test changed what is installed (and once more after it)."""
    box.reset_probe()
    yield
    box.reset_probe()


def test_child_cannot_write_outside_its_workdir(tmp_path: Path) -> None:
    target = ROOT / "sandbox-escape.txt"
    work = tmp_path / "box"
    script = f"open('inside.txt','w').write('ok'); open({str(target)!r},'w').write('escaped')"
    result = run_untrusted([sys.executable, "-c", script], workdir=work, timeout=30)
    assert not result.ok
    assert (work / "inside.txt").read_text() == "ok"
    assert not target.exists()


def test_child_runs_as_an_unprivileged_user(tmp_path: Path) -> None:
    result = run_untrusted([sys.executable, "-c", "import os; print(os.getuid(), os.getgid())"],
                           workdir=tmp_path / "box", timeout=30)  # fmt: skip
    assert result.ok, result.output
    uid, gid = map(int, result.stdout.split())
    assert uid != 0 and gid != 0
    if os.geteuid() == 0:  # a uid of its own per scratch directory, so no box shares another's budget
        assert uid == box.uid_for((tmp_path / "box").resolve())
        assert box.uid_for(tmp_path / "other") != uid


def test_a_fork_bomb_of_1100_processes_is_stopped_at_the_process_limit(tmp_path: Path) -> None:
    # as root, RLIMIT_NPROC alone did nothing (the candidate forked 1,100); the box's own user makes it bind
    start = time.monotonic()
    result = run_untrusted([sys.executable, "-c", FORK_BOMB], workdir=tmp_path / "box", timeout=120)
    assert result.returncode == 3, result.output
    made = int(result.stdout.split()[2].rstrip(":"))
    assert made < 1100 and made <= (SANDBOX_LIMITS.processes or 0)
    assert "Resource temporarily unavailable" in result.stdout
    assert time.monotonic() - start < 90


def test_child_sees_only_what_it_needs(tmp_path: Path) -> None:
    _needs_filesystem_isolation()
    store = tmp_path / "data" / "evoforge.db"  # stands for the store and the data directory
    store.parent.mkdir()
    store.write_text("rows of another job")
    neighbour = tmp_path / "other-candidate" / "kernel.py"
    neighbour.parent.mkdir()
    neighbour.write_text("someone else's work")
    home = Path.home()
    # the box makes the parent directories of what it binds (the interpreter may live in home)
    bound = [Path(sys.prefix), Path(sys.base_prefix), PACKAGE]
    passages = {r.relative_to(home).parts[0] for r in bound if home in r.parents}
    hidden = sorted(p for p in os.listdir(home) if p not in passages)
    probes = {
        "shadow": "/etc/shadow",
        "passwd": "/etc/passwd",
        **{f"home:{name}": str(home / name) for name in hidden[:5]},
        "store": str(store),
        "data_dir": str(store.parent),
        "neighbour": str(neighbour),
        "verifier": f"/proc/{os.getpid()}/environ",
        "init_environ": "/proc/1/environ",
    }
    script = f"""
import os
for name, path in {probes!r}.items():
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        print(name, "READABLE")
    except OSError as exc:
        print(name, "refused", type(exc).__name__)
"""
    result = run_untrusted([sys.executable, "-c", script], workdir=tmp_path / "box", timeout=30)
    assert result.ok, result.output
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == set(probes)
    readable = [name for name, state in lines.items() if state == "READABLE"]
    assert readable == [], f"visible in the box: {readable}\n{result.stdout}"


def test_the_package_is_read_only_and_the_scratch_dir_is_not_on_the_import_path(tmp_path: Path) -> None:
    _needs_filesystem_isolation()
    work = tmp_path / "box"
    work.mkdir()
    # a candidate that plants its own copy of the verifier's module in its scratch directory
    (work / "evoforge").mkdir()
    (work / "evoforge" / "__init__.py").write_text("HIJACKED = True\n")
    harness = PACKAGE / "verifiers" / "kernel" / "harness.py"
    script = f"""
import evoforge, sys
print("imported", evoforge.__file__)
print("hijacked", getattr(evoforge, "HIJACKED", False))
print("cwd_on_path", any(p in ("", ".", {str(work.resolve())!r}) for p in sys.path))
try:
    open({str(harness)!r}, "a").write("# tampered")
    print("package WRITABLE")
except OSError as exc:
    print("package refused", type(exc).__name__)
"""
    result = run_untrusted([sys.executable, "-c", script], workdir=work, timeout=30)
    assert result.ok, result.output
    assert f"imported {PACKAGE / '__init__.py'}" in result.stdout
    assert "hijacked False" in result.stdout
    assert "cwd_on_path False" in result.stdout
    assert "package refused" in result.stdout
    assert "# tampered" not in harness.read_text()


def test_reads_are_visible_read_only_and_nothing_else_beside_them(tmp_path: Path) -> None:
    _needs_filesystem_isolation()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "liberty.lib").write_text("library (x) { }\n")
    (shared / "secret.txt").write_text("not for the box")
    script = f"""
print(open({str(shared / "liberty.lib")!r}).read().strip())
for attempt in ("write", "sibling"):
    try:
        if attempt == "write":
            open({str(shared / "liberty.lib")!r}, "a").write("tampered")
        else:
            open({str(shared / "secret.txt")!r}).read()
        print(attempt, "ALLOWED")
    except OSError:
        print(attempt, "refused")
"""
    result = run_untrusted([sys.executable, "-c", script], workdir=tmp_path / "box", timeout=30,
                           reads=(shared / "liberty.lib",))  # fmt: skip
    assert result.ok, result.output
    assert "library (x) { }" in result.stdout
    assert "write refused" in result.stdout and "sibling refused" in result.stdout
    assert (shared / "liberty.lib").read_text() == "library (x) { }\n"


def test_child_sees_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("EVOFORGE_TOKEN", "also-secret")
    result = run_untrusted(
        [
            sys.executable,
            "-c",
            "import os; print(sorted(os.environ)); print(open('/proc/self/environ').read())",
        ],
        workdir=tmp_path / "box",
        timeout=30,
        env={"MY_API_KEY": "nope", "HARMLESS": "1"},
    )
    assert result.ok, result.stderr
    assert "OPENAI_API_KEY" not in result.stdout and "EVOFORGE_TOKEN" not in result.stdout
    assert "sk-should-not-leak" not in result.stdout and "also-secret" not in result.stdout
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


def test_a_planted_symlink_is_not_followed_when_the_directory_is_handed_over(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the hand-over of a scratch directory happens only when the verifier is root")
    outside = tmp_path / "outside.txt"
    outside.write_text("ours")
    work = tmp_path / "box"
    script = f"import os; os.symlink({str(outside)!r}, 'link')"
    assert run_untrusted([sys.executable, "-c", script], workdir=work, timeout=30).ok
    run_untrusted(["true"], workdir=work, timeout=30)  # a second run hands the directory over again
    assert outside.stat().st_uid == 0, "the hand-over followed a link the box planted"


def test_isolation_report_names_the_mechanism() -> None:
    report = isolation_report()
    assert report.level == isolation()
    assert report.unprivileged
    assert report.mechanism
    if report.level == "filesystem+network":
        assert report.warnings == ()


def test_without_bubblewrap_the_box_degrades_loudly_and_limits_still_bind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_probe: None
) -> None:
    monkeypatch.setattr(box, "_bwrap", lambda: None)
    with caplog.at_level(logging.WARNING, logger="evoforge.tools.box"):
        report = isolation_report()
    assert report.level in ("network", "limits-only")
    assert report.warnings and "bubblewrap (bwrap) is not installed" in report.warnings[0]
    assert "READ THE WHOLE FILE SYSTEM" in caplog.text and "Install bubblewrap" in caplog.text
    if sys.prefix.startswith("/root") or sys.base_prefix.startswith("/root"):
        pytest.skip("the interpreter lives under /root, which the box user cannot read without bubblewrap")
    result = run_untrusted([sys.executable, "-c", FORK_BOMB], workdir=tmp_path / "box", timeout=120)
    assert result.returncode == 3, result.output


def test_with_nothing_to_isolate_with_the_box_says_limits_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_probe: None
) -> None:
    monkeypatch.setattr(box, "_bwrap", lambda: None)
    real_which = box.shutil.which
    monkeypatch.setattr(box.shutil, "which", lambda name: None if name == "unshare" else real_which(name))
    with caplog.at_level(logging.WARNING, logger="evoforge.tools.box"):
        report = isolation_report()
    assert report.level == "limits-only"
    assert "use the network" in report.warnings[0]
    assert "sandbox degraded to limits-only" in caplog.text


def _reads(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_a_stage_detail_is_capped_head_and_tail() -> None:
    # a reason quotes a bounded part of what a candidate produced, never all of it
    from evoforge.domain import StageResult
    from evoforge.verifiers.runner import DETAIL_LIMIT_CHARS, run_stage

    flood = "HEAD" + "y" * 1_000_000 + "TAIL"
    result = run_stage("lint", lambda _: StageResult("lint", False, 0.0, detail=flood), None)
    assert len(result.detail) < DETAIL_LIMIT_CHARS + 100
    assert result.detail.startswith("HEAD") and result.detail.endswith("TAIL")
    assert "characters cut" in result.detail
