"""Loading KernelBench problems: what a good one yields, and a clear error for each bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.config import KernelSettings
from evoforge.domain import TargetKind
from evoforge.errors import TargetError
from evoforge.verifiers.kernel.target import load_kernel_target


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "problem.py"
    path.write_text(text)
    return path


def test_good_problem_gives_a_kernel_target(
    relu_problem: Path, kernel_settings: KernelSettings, tmp_path: Path
) -> None:
    target = load_kernel_target(relu_problem, kernel_settings, work_dir=tmp_path / "w")
    assert target.kind is TargetKind.KERNEL and target.name == "relu2"
    probe = (target.kernel_summary or {})["probe"]
    assert probe["inputs"][0]["shape"] == [16, 256]
    assert probe["outputs"][0] == {
        "type": "Tensor",
        "shape": [16, 256],
        "dtype": "torch.float32",
        "device": "cpu",
    }
    assert probe["benchmark_inputs"] is True and probe["runtime_ms"] > 0


HEAD = "import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n"
TAIL = "def get_inputs():\n    return [torch.randn(4, 5)]\ndef get_init_inputs():\n    return []\n"

BAD = {
    "import_error": (
        "import torch\nimport no_such_module_xyz\n",
        "importing the problem file raised ModuleNotFoundError",
    ),
    "no_get_inputs": (
        "import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
        "def get_init_inputs():\n    return []\n",
        "defines no get_inputs",
    ),
    "model_fails": (
        HEAD + "        return x @ torch.ones(3, 3)\n" + TAIL,
        "the reference Model on its own inputs raised RuntimeError",
    ),
    "too_loose": (
        HEAD + "        return x * 0.0\n" + TAIL,
        "too loose to optimise against",
    ),
    "syntax": ("class Model(:\n", "syntax error at line 1"),
    "random": (
        HEAD + "        return x + torch.rand_like(x)\n" + TAIL,
        "different outputs on the same inputs",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_problems_are_clear_target_errors(
    case: str, kernel_settings: KernelSettings, tmp_path: Path
) -> None:
    text, message = BAD[case]
    with pytest.raises(TargetError) as info:
        load_kernel_target(_write(tmp_path, text), kernel_settings, work_dir=tmp_path / "w")
    assert message in str(info.value)
    assert info.value.hint


def test_a_problem_that_hangs_is_killed(tmp_path: Path) -> None:
    text = "import time\nwhile True:\n    time.sleep(0.1)\n"
    settings = KernelSettings(stage_timeout_s=8)
    with pytest.raises(TargetError, match="did not finish within"):
        load_kernel_target(_write(tmp_path, text), settings, work_dir=tmp_path / "w")


def test_missing_file(tmp_path: Path, kernel_settings: KernelSettings) -> None:
    with pytest.raises(TargetError, match="no such problem file"):
        load_kernel_target(tmp_path / "nope.py", kernel_settings, work_dir=tmp_path)
