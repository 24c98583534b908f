"""`evoforge verify` end to end through the real command: verdicts, the JSON contract, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "rtl"

VERIFY_KEYS = {
    "verdict",
    "stage",
    "reason",
    "metrics",
    "baseline",
    "improvement",
    "functional_hash",
    "stages",
    "assurance",
}
STAGE_NAMES = ["parse", "lint", "interface", "simulate", "equivalence", "synthesis", "timing"]
FAST_ENV = {
    "EVOFORGE_RTL__SIM_CYCLES": "1000",
    "EVOFORGE_RTL__SIM_SEEDS": "1",
    "EVOFORGE_RTL__PROBE_CYCLES": "300",
}


def evoforge(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **FAST_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )


def test_better_rewrite_is_accepted_with_its_improvement() -> None:
    done = evoforge("verify", EXAMPLES / "tick_timer.v", EXAMPLES / "tick_timer_better.v", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert set(payload) >= VERIFY_KEYS
    assert payload["verdict"] == "accepted"
    assert [s["name"] for s in payload["stages"]] == STAGE_NAMES
    assert payload["assurance"] in {"proven"} or payload["assurance"].startswith("bounded")
    assert payload["improvement"]["area_um2"] > 1.2
    assert payload["metrics"]["area_um2"] < payload["baseline"]["area_um2"]
    assert len(payload["functional_hash"]) == 64


def test_subtly_wrong_rewrite_is_rejected_with_stage_and_reason() -> None:
    done = evoforge("verify", EXAMPLES / "tick_timer.v", EXAMPLES / "tick_timer_wrong.v", "--json")
    assert done.returncode == 1, done.stderr
    payload = json.loads(done.stdout)
    assert payload["verdict"] == "rejected"
    assert payload["stage"] in {"simulate", "equivalence"}
    assert payload["reason"]
    assert payload["improvement"] == {}
    assert payload["stages"][-1]["ok"] is False


def test_human_output_names_every_stage_and_the_assurance() -> None:
    done = evoforge("verify", EXAMPLES / "tick_timer.v", EXAMPLES / "tick_timer_better.v")
    assert done.returncode == 0, done.stderr
    for name in STAGE_NAMES:
        assert name in done.stdout
    assert "assurance:" in done.stdout


def test_changed_ports_are_rejected_at_interface(tmp_path: Path) -> None:
    original = (EXAMPLES / "tick_timer.v").read_text()
    widened = original.replace("output wire [6:0] phase", "output wire [7:0] phase")
    assert widened != original
    candidate = tmp_path / "wide.v"
    candidate.write_text(widened)
    done = evoforge("verify", EXAMPLES / "tick_timer.v", candidate, "--json")
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["stage"] == "interface"
    assert "phase" in payload["reason"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("module broken(input a, output y);\n assign y = a &;\nendmodule\n", "line"),
        (
            "module a1(input a, output y); assign y = a; endmodule\n"
            "module a2(input a, output y); assign y = ~a; endmodule\n",
            "--top",
        ),
    ],
    ids=["malformed", "two-tops"],
)
def test_unusable_target_exits_2_with_a_clear_message(tmp_path: Path, text: str, needle: str) -> None:
    target = tmp_path / "t.v"
    target.write_text(text)
    done = evoforge("verify", target, target)
    assert done.returncode == 2
    assert "error:" in done.stderr and needle in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_files_and_bad_liberty_exit_2(tmp_path: Path) -> None:
    missing = evoforge("verify", tmp_path / "nope.v", EXAMPLES / "alu16.v")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    no_candidate = evoforge("verify", EXAMPLES / "alu16.v", tmp_path / "nope.v")
    assert no_candidate.returncode == 2 and "no such file" in no_candidate.stderr
    garbage = tmp_path / "bad.lib"
    garbage.write_text("this is not a liberty file\n")
    bad_lib = evoforge("verify", EXAMPLES / "alu16.v", EXAMPLES / "alu16_better.v", "--liberty", garbage)
    assert bad_lib.returncode == 2 and "liberty" in bad_lib.stderr.lower()
    assert "Traceback" not in missing.stderr + no_candidate.stderr + bad_lib.stderr


def test_unknown_top_lists_the_modules() -> None:
    done = evoforge("verify", EXAMPLES / "alu16.v", EXAMPLES / "alu16.v", "--top", "nosuch")
    assert done.returncode == 2
    assert "alu16" in done.stderr
