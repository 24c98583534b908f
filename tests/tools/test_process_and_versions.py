"""The process choke point (group kill, scrubbed env) and the tool wrappers' version probes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from evoforge.errors import ToolNotFoundError
from evoforge.tools import process
from evoforge.tools.iverilog import Iverilog, Vvp
from evoforge.tools.opensta import OpenSta
from evoforge.tools.verilator import Verilator
from evoforge.tools.yosys import Yosys


@pytest.mark.parametrize(
    ("tool", "major"),
    [(Iverilog(), 11), (Vvp(), 11), (Verilator(), 5), (Yosys(), 0), (OpenSta(), 2)],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_version_probe_reads_numbers(tool, major):
    version = tool.version()
    assert version.numbers, version.text
    assert version.numbers[0] >= major
    assert version.name == tool.name


def test_missing_executable_names_the_package():
    with pytest.raises(ToolNotFoundError, match="not installed") as info:
        Iverilog(executable="no-such-iverilog-binary").version()
    assert "apt-get install iverilog" in str(info.value)


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except (FileNotFoundError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie is dead, merely not reaped yet


def test_timeout_kills_the_whole_process_group():
    script = "sleep 100 & echo $!; sleep 100"
    start = time.monotonic()
    result = process.run(["sh", "-c", script], timeout=1.0)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - start < 10
    grandchild = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the background grandchild survived the timeout"


def test_scrubbed_env_drops_api_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    env = process.scrubbed_env({"MY_TOKEN": "x", "COCOTB_SEED": "1"})
    assert "OPENAI_API_KEY" not in env and "MY_TOKEN" not in env
    assert env["COCOTB_SEED"] == "1"
    result = process.run(["env"], timeout=10, env=env)
    assert "sk-test-secret" not in result.stdout
    assert "PATH=" in result.stdout or "PATH" not in os.environ
