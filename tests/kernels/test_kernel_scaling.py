"""Issue 15.1: KernelBench problems at their GPU-scale sizes — the size check and ``--scale``.

The problem files under ``tests/fixtures/kernelbench/`` are written in KernelBench's exact shape
(``class Model(nn.Module)``, module-level size constants, ``get_inputs``/``get_init_inputs``) at its
current sizes (``batch_size = 4096; dim = 393216``: 6 GiB per input), so running them as written
on this machine is impossible; the size check must say so, and ``--scale`` must shrink them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from evoforge.config import KernelSettings
from evoforge.errors import TargetError
from evoforge.verifiers.kernel.child import KERNEL_LIMITS
from evoforge.verifiers.kernel.scaling import (
    check_size,
    child_limits,
    scale_note,
    scaled_source,
    size_constants,
    size_report,
)
from evoforge.verifiers.kernel.sizing import shrink

KB = Path(__file__).resolve().parents[1] / "fixtures" / "kernelbench"
RELU = KB / "level1_19_ReLU.py"
CONV = KB / "level2_1_Conv2D_ReLU_BiasAdd.py"


def test_size_constants_are_read_without_running_the_file() -> None:
    text = (
        "import torch\nbatch_size = 4096\ndim = 393216\nN = 2048 * 2\nheight = width = 128\n"
        "eps = 1e-5\nshape = (batch_size, dim)\nreused = 7\nreused = dim * 2\nM: int = 1 << 10\n"
        "raise SystemExit('never executed')\n"
    )
    found = {name: value for name, (value, _) in size_constants(text).items()}
    assert found == {"batch_size": 4096, "dim": 393216, "N": 4096, "height=width": 128, "M": 1024}


def test_scaled_source_replaces_values_and_keeps_lines() -> None:
    text = RELU.read_text()
    scaled = scaled_source(text, {"values": {"dim": 1024}})
    assert "dim = (1024)" in scaled and "dim = 393216" not in scaled
    assert scaled.count("\n") == text.count("\n")
    tree = ast.parse(scaled)  # still Python, the same statements
    assert len(tree.body) == len(ast.parse(text).body)
    assert RELU.read_text() == text  # the user's file is not edited
    chained = "height = width = 128\nx = height * width\n"
    assert scaled_source(chained, {"values": {"height=width": 32}}).startswith("height = width = (32)")


def test_shrink_keeps_alignment_and_a_floor() -> None:
    assert shrink(393216, 393216 / 2) == 196608
    assert shrink(4095, 2047.5) == 2047  # KernelBench's odd sizes stay odd (tails are tested)
    assert shrink(4096, 3000) == 2992  # a multiple of 16, as the original
    assert shrink(64, 1) == 16


@pytest.mark.slow
def test_size_check_refuses_as_written_with_numbers_and_what_to_do(tmp_path: Path) -> None:
    settings = KernelSettings(scale="none")
    with pytest.raises(TargetError) as caught:
        check_size(RELU.read_text(), settings, tmp_path, child_limits(settings, KERNEL_LIMITS))
    text = str(caught.value)
    assert "4096×393216" in text and "GiB" in text and "as written" in text
    assert "--scale auto" in text and "--memory-limit" in text


@pytest.mark.slow
def test_scale_auto_shrinks_the_large_constant_and_says_so(tmp_path: Path) -> None:
    settings = KernelSettings(scale="auto")
    record = check_size(RELU.read_text(), settings, tmp_path, child_limits(settings, KERNEL_LIMITS))
    assert record["mode"] == "auto" and record["problem_misfit"]
    values = record["values"]
    assert values["dim"] < 393216 and values.get("batch_size", 4096) <= 4096  # the largest shrinks first
    assert values["dim"] <= values.get("batch_size", 4096) * 2
    timed = record["chosen"]["input_shapes"]
    batch = values.get("batch_size", 4096)
    assert timed == [[batch, values["dim"]]]
    assert record["chosen"]["footprint_bytes"] <= record["memory_budget_bytes"]
    note = scale_note(record)
    assert note.startswith(f"timed at {batch}×{values['dim']}, the problem says 4096×393216")
    report = size_report(record)
    assert "does not fit" in report and "no GPU" in report


@pytest.mark.slow
def test_scale_factor_and_pinned_sizes(tmp_path: Path) -> None:
    text = CONV.read_text()
    settings = KernelSettings(scale="0.25")
    record = check_size(text, settings, tmp_path, child_limits(settings, KERNEL_LIMITS))
    assert record["mode"] == "factor 0.25"
    # kernel_size = 3 is not a size; in_channels 64 → 16, batch 128 → 32, height=width 128 → 32
    assert record["values"] == {"batch_size": 32, "in_channels": 16, "out_channels": 32, "height=width": 32}
    assert record["chosen"]["input_shapes"] == [[32, 16, 32, 32]]
    pinned = KernelSettings(sizes={"batch_size": 2, "height=width": 16})
    again = check_size(text, pinned, tmp_path, child_limits(pinned, KERNEL_LIMITS))
    assert again["mode"] == "pinned" and again["chosen"]["input_shapes"] == [[2, 64, 16, 16]]
    wrong = KernelSettings(sizes={"nope": 3})
    with pytest.raises(TargetError, match=r"no size constant nope \(the problem's: batch_size"):
        check_size(text, wrong, tmp_path, child_limits(wrong, KERNEL_LIMITS))


def test_scale_setting_is_validated() -> None:
    assert KernelSettings(scale=" AUTO ").scale == "auto"
    assert KernelSettings(scale="0.5").scale == "0.5"
    for bad in ("2", "0", "big"):
        with pytest.raises(ValueError, match="scale"):
            KernelSettings(scale=bad)
    with pytest.raises(ValueError, match="unknown kernel backend"):
        KernelSettings(backends=["opencl"])
    assert KernelSettings(memory_limit_gib=2).memory_limit_bytes == 2 << 30
    assert child_limits(KernelSettings(memory_limit_gib=3), KERNEL_LIMITS).memory_bytes == 3 << 30


@pytest.mark.slow
def test_triton_interpreter_checks_run_at_smaller_sizes(tmp_path: Path) -> None:
    from evoforge.verifiers.kernel.cascade import KernelVerifier
    from evoforge.verifiers.kernel.target import load_kernel_target

    settings = KernelSettings(backends=["c", "triton"])
    target = load_kernel_target(RELU, settings, work_dir=tmp_path / "t")
    summary = target.kernel_summary or {}
    timed = summary["scaling"]["chosen"]["input_bytes"]
    interpreted = summary["interpret_scaling"]["chosen"]["input_bytes"]
    assert interpreted < timed and interpreted <= 2 << 20
    verifier = KernelVerifier(target=target, settings=settings, work_root=tmp_path / "v")
    assert verifier.interpret_problem_path is not None
    assert "dim = (" in verifier.interpret_problem_path.read_text()
    only_c = load_kernel_target(RELU, KernelSettings(), work_dir=tmp_path / "c")
    assert (only_c.kernel_summary or {})["backends"] == [
        "c"
    ] and "interpret_scaling" not in only_c.kernel_summary
