"""The command-line contract under faults (issue 11, items 10 and 11), run as a user runs it.

Exit codes: 0 ok, 1 rejected/failed, 2 bad input, 3 the verifier or its machinery failed (a
missing or crashing tool, a database that fails), 141 stdout closed early. ``--json`` prints exactly
one JSON object on stdout, errors included; progress goes to stderr with or without ``--json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evoforge.cli import exit_code_of
from evoforge.errors import (
    ConfigError,
    NotFoundError,
    SearchError,
    StoreError,
    TargetError,
    ToolError,
    ToolNotFoundError,
    VerifierError,
)

ADDER = "module m(input [3:0] a, b, output [4:0] y);\n  assign y = a + b;\nendmodule\n"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVOFORGE_", "OPENAI_"))}
    return env | {"EVOFORGE_DATA_DIR": str(tmp_path / "data")} | extra


def _evoforge(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *argv],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **env),
        timeout=300,
    )


def _path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH whose directories hold every program of the current PATH except ``tools``."""
    folder = tmp_path / "bin-without"
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = folder / name
            if name not in tools and not link.exists():
                link.symlink_to(Path(directory) / name)
    return str(folder)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ToolError("x"), 3),
        (ToolNotFoundError("x"), 3),
        (VerifierError("x"), 3),
        (StoreError("x"), 3),
        (NotFoundError("x"), 2),
        (TargetError("x"), 2),
        (ConfigError("x"), 2),
        (SearchError("x"), 1),
    ],
)
def test_errors_map_to_their_exit_codes(error: Exception, code: int) -> None:
    assert exit_code_of(error) == code  # type: ignore[arg-type]


def test_a_missing_tool_is_a_verifier_failure_naming_the_tool(tmp_path: Path) -> None:
    design = tmp_path / "m.v"
    design.write_text(ADDER)
    path = _path_without(tmp_path, "yosys", "yosys-abc")
    done = _evoforge(tmp_path, "verify", str(design), str(design), "--json", PATH=path)
    assert done.returncode == 3, done.stderr
    assert "yosys" in done.stderr and "fix the design" not in done.stderr
    error = json.loads(done.stdout)
    assert error["exit_code"] == 3 and "yosys" in error["error"] and error["kind"] == "VerifierError"


def test_a_crashing_tool_is_a_verifier_failure(tmp_path: Path) -> None:
    design = tmp_path / "m.v"
    design.write_text(ADDER)
    path = _path_without(tmp_path, "yosys")
    crash = Path(path) / "yosys"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    done = _evoforge(tmp_path, "run", str(design), "--budget", "1", "--json", PATH=path)
    assert done.returncode == 3, done.stderr
    assert "yosys" in done.stderr and "fix the design" not in done.stderr
    assert json.loads(done.stdout)["exit_code"] == 3


def test_a_typo_in_db_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    done = _evoforge(tmp_path, "jobs", "--db", f"sqlite:///{missing / 'x.db'}", "--json")
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not missing.parent.exists()
    assert "does not exist" in json.loads(done.stdout)["error"]


def test_json_prints_one_object_for_every_error(tmp_path: Path) -> None:
    design = tmp_path / "broken.v"
    design.write_text("module broken(input a; endmodule\n")
    cases = [
        ("run", str(design), "--json"),  # a refused target
        ("run", str(tmp_path / "nosuch.v"), "--json"),
        ("show", "12345", "--json"),  # an unknown id
        ("show", str(2**70), "--json"),  # an id past 64 bits
        ("run", "--budget", "zero", "--json"),  # a flag argparse refuses
    ]
    for argv in cases:
        done = _evoforge(tmp_path, *argv)
        assert done.returncode == 2, (argv, done.stderr)
        payload = json.loads(done.stdout)  # exactly one JSON object: json.loads takes nothing more
        assert isinstance(payload, dict) and payload["error"] and payload["exit_code"] == 2
        assert "Traceback" not in done.stderr


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    env = _env(tmp_path)
    design = tmp_path / "m.v"
    design.write_text(ADDER)
    for _ in range(3):
        subprocess.run(
            [sys.executable, "-m", "evoforge.cli", "run", str(design), "--budget", "1"],
            env=env,
            capture_output=True,
            timeout=300,
            check=True,
        )
    command = f"{sys.executable} -m evoforge.cli jobs | head -c 1; exit ${{PIPESTATUS[0]}}"
    for listing in ("", " --json"):
        done = subprocess.run(
            ["bash", "-c", command.replace("jobs |", f"jobs{listing} |")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
        assert done.returncode in (0, 141)


def test_progress_goes_to_stderr_with_json(tmp_path: Path) -> None:
    design = tmp_path / "m.v"
    design.write_text(ADDER)
    done = _evoforge(tmp_path, "run", str(design), "--budget", "2", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert "[" in done.stderr and "/2" in done.stderr  # the progress lines, as without --json
