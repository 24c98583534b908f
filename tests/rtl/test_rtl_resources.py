"""Bounded everything, RTL side (issue 10 item 13): designs that drove Yosys and Icarus to 8 GB, and a
500 MB ``$display`` flood, end in a clear rejection (candidate) or a ``TargetError`` (exit 2) within
the limits of the box.

The limits are lowered for these tests (the mechanism is the same at the defaults, which
docs/security.md states): 768 MiB and 60 s of CPU for the tools, 2 GiB for candidate simulations.
That keeps the tests to seconds on a shared two-core machine instead of minutes at 4 GiB.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.errors import TargetError
from evoforge.tools import box, process
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl.cascade import RtlVerifier
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "examples" / "rtl" / "tick_timer.v"
RESOURCES = ROOT / "tests" / "fixtures" / "rtl_hostile" / "resources"
TOOL_MEMORY = 768 << 20

#: file -> (stage, words of the reason)
EXPECTED = {
    "mem_2e30.v": ("lint", ("iverilog", "exceeds")),  # Icarus refuses it, then aborts: a rejection
    "generate_1e7.v": ("parse", ("generate loop",)),  # slang's elaboration step limit, in its box
    "comb_for_forever.v": ("lint", ("yosys was stopped at the 768 MiB memory limit",)),
    "display_flood.v": ("simulate", ("output limit",)),
}


@pytest.fixture(scope="module")
def lowered() -> object:
    patch = pytest.MonkeyPatch()
    patch.setattr(box, "TOOL_LIMITS", dataclasses.replace(box.TOOL_LIMITS, memory_bytes=TOOL_MEMORY))
    patch.setattr(process, "SANDBOX_LIMITS", dataclasses.replace(process.SANDBOX_LIMITS, cpu_seconds=60))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def verifier(lowered: object, tmp_path_factory: pytest.TempPathFactory) -> RtlVerifier:
    work = tmp_path_factory.mktemp("resources")
    target = load_rtl_target([TARGET], RtlTargetOptions(), workdir=work / "target")
    settings = RtlSettings(
        sim_cycles=300, sim_seeds=1, probe_cycles=100, sim_timeout_s=60, tool_timeout_s=120
    )
    verifier = RtlVerifier(target, settings, prepare_liberty(None, work / "cache"), work / "runs")
    verifier.baseline()
    return verifier


def test_every_resource_fixture_is_listed() -> None:
    assert {p.name for p in RESOURCES.glob("*.v")} == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_resource_attack_candidate_is_rejected_within_the_limits(verifier: RtlVerifier, name: str) -> None:
    stage, words = EXPECTED[name]
    start = time.monotonic()
    verdict = verifier.verify((RESOURCES / name).read_text())
    assert not verdict.accepted and not verdict.error, verdict.reason
    assert verdict.stage == stage, f"{name}: rejected at {verdict.stage}: {verdict.reason}"
    for word in words:
        assert word in verdict.reason, f"{name}: {verdict.reason!r} lacks {word!r}"
    assert time.monotonic() - start < 240


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("mem_2e30.v", "exceeds"),
        ("generate_1e7.v", "generate loop"),
        ("comb_for_forever.v", "768 MiB memory limit"),
    ],
)
def test_resource_attack_target_is_bad_input(lowered: object, name: str, words: str, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(TargetError, match=words):
        target = load_rtl_target(
            [RESOURCES / name], RtlTargetOptions(top="tick_timer"), workdir=tmp_path / "t"
        )
        RtlVerifier(target, RtlSettings(tool_timeout_s=120), prepare_liberty(None, tmp_path / "c"),
                    tmp_path / "runs").baseline()  # fmt: skip
    assert time.monotonic() - start < 240


def test_the_verifier_stays_small_while_a_display_flood_is_rejected(tmp_path: Path) -> None:
    # in a fresh interpreter, so the peak memory is the verifier's own (it was 1.6 GB)
    code = f"""
import json
from pathlib import Path
def peak_mb():  # this image's own peak (ru_maxrss keeps the forking parent's)
    with open('/proc/self/status') as f:
        return int(next(l for l in f if l.startswith('VmHWM')).split()[1]) / 1024
from evoforge.config import RtlSettings
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl.cascade import RtlVerifier
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target
work = Path({str(tmp_path)!r})
target = load_rtl_target([Path({str(TARGET)!r})], RtlTargetOptions(), workdir=work / "target")
settings = RtlSettings(sim_cycles=300, sim_seeds=1, probe_cycles=100, sim_timeout_s=60)
verifier = RtlVerifier(target, settings, prepare_liberty(None, work / "cache"), work / "runs")
verifier.baseline()
before = peak_mb()
verdict = verifier.verify(Path({str(RESOURCES / "display_flood.v")!r}).read_text())
after = peak_mb()
out = {{"accepted": verdict.accepted, "reason": verdict.reason, "before": before, "after": after}}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["accepted"] and "output limit" in out["reason"]
    assert out["after"] - out["before"] < 100, out  # MB: the flood was streamed, not kept
