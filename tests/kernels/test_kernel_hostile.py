"""Every reward hack that runs on a CPU (fixtures/kernel_hostile) is rejected at its stage, for its reason.

Each fixture's docstring names the stage expected to reject it ("Expected: rejected at **stage**");
the reason must name the defence that caught it, so a hack rejected by accident (a crash, a timeout)
does not count.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from conftest import KERNEL_BAD, KERNEL_EXAMPLES, KERNEL_HOSTILE

from evoforge.config import KernelSettings
from evoforge.domain import Target
from evoforge.verifiers.kernel.cascade import KernelVerifier
from evoforge.verifiers.kernel.target import load_kernel_target

#: the words the rejection reason must contain, per fixture
REASONS = {
    "stale_output": "outside tolerance",
    "input_mutation": "modified its input",
    "zeros": "outside tolerance",
    "lazy_subclass": "not a plain torch.Tensor",
    "precision_downgrade": "outside tolerance",
    "shape_memo": "trial 2",
    "library_fallback": "try/except",
    "kernel_never_launched": "no custom kernel was launched",
    "work_in_init": "outside tolerance",
    "patched_timer": "time",
    "extra_thread": "threading",
    "harness_hijack": "outside tolerance",
    "self_rewrite": "outside tolerance",
    "spelled_fallback": "replayed alone",
    "numpy_route": "replayed alone",
    "thread_after_return": "thread",
    "switch_in_c": "timed call",
    "switch_in_python": "timed call",
    "identity_cache": "changed in place",
    "distribution_identity": "sign-flipped",
    "supervisor_memory": "PermissionError",
}


def expected_stage(path: Path) -> str:
    match = re.search(r"Expected: rejected at\s+\*\*(\w+)\*\*", path.read_text())
    assert match, f"{path.name} does not say which stage rejects it"
    return match.group(1)


def problem_of(path: Path) -> str:
    """The problem a fixture attacks: ``Against: **problem_x.py**`` in its docstring, else problem.py."""
    match = re.search(r"Against:\s+\*\*(problem\w*\.py)\*\*", path.read_text())
    return match.group(1) if match else "problem.py"


@pytest.fixture(scope="module")
def hostile_targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Target]:
    """Each problem of the folder, loaded once (lazily) for the whole module."""
    work = tmp_path_factory.mktemp("hostile-target")

    class Targets(dict[str, Target]):
        def __missing__(self, name: str) -> Target:
            self[name] = load_kernel_target(KERNEL_HOSTILE / name, KernelSettings(), work_dir=work / name)
            return self[name]

    return Targets()


def test_every_fixture_is_listed() -> None:
    files = {p.stem for p in KERNEL_HOSTILE.glob("*.py") if not p.stem.startswith("problem")}
    assert files == set(REASONS)


@pytest.mark.parametrize("name", sorted(REASONS))
def test_hostile_candidate_is_rejected_at_its_stage(
    name: str, hostile_targets: dict[str, Target], tmp_path: Path
) -> None:
    path = KERNEL_HOSTILE / f"{name}.py"
    target = hostile_targets[problem_of(path)]
    # 15 timed calls: all planned whatever the budget (bench.MIN_PLANNED_TIMED), so a switch after 16 shows
    settings = KernelSettings(benchmark_repeats=15, benchmark_budget_s=3.0, stage_timeout_s=180.0)
    verdict = KernelVerifier(target, settings, tmp_path).verify(path.read_text())
    bench = next((s.data for s in verdict.stages if s.name == "benchmark"), {})
    assert not verdict.accepted and not verdict.error, f"{verdict.reason} {bench}"
    assert verdict.stage == expected_stage(path), verdict.reason
    assert REASONS[name] in verdict.reason, verdict.reason


def test_a_hanging_candidate_is_killed_and_leaves_nothing_running(tmp_path: Path) -> None:
    settings = KernelSettings(stage_timeout_s=10.0)
    target = load_kernel_target(KERNEL_EXAMPLES / "swish_clamp.py", KernelSettings(), work_dir=tmp_path / "t")
    verdict = KernelVerifier(target, settings, tmp_path / "v").verify(
        (KERNEL_BAD / "candidate_hangs.py").read_text()
    )
    assert not verdict.accepted and not verdict.error
    assert "did not finish within" in verdict.reason
    time.sleep(1.0)  # the kernel's SIGKILL reaches the whole sandbox: its processes are gone
    assert _processes_in(tmp_path / "v") == [], "processes left running"


def _processes_in(directory: Path) -> list[str]:
    """Command lines of the processes whose working directory is under ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            if cwd.startswith(str(directory)):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    ("name", "message"),
    [("candidate_no_modelnew", "defines no ModelNew"), ("candidate_syntax_error", "syntax error at line")],
)
def test_unusable_candidates_are_rejected_at_static(name: str, message: str, tmp_path: Path) -> None:
    settings = KernelSettings()
    target = load_kernel_target(KERNEL_EXAMPLES / "swish_clamp.py", settings, work_dir=tmp_path / "t")
    verdict = KernelVerifier(target, settings, tmp_path / "v").verify((KERNEL_BAD / f"{name}.py").read_text())
    assert verdict.stage == "static" and message in verdict.reason
