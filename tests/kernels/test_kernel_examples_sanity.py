"""The bundled kernel examples and fixtures are what they claim, checked without the verifier.

Every problem in ``examples/kernels`` runs on its default and benchmark inputs; its correct C
candidate matches the reference (in this process) and its correct Triton candidate matches under
the Triton interpreter (in one child process, since ``TRITON_INTERPRET`` must be set before triton is
imported), both within the verifier's fp32 tolerance ``1e-4 * |expected| + 1e-4 * rms(expected)``;
every ``_wrong`` candidate does not. The hostile fixtures each document their hack and the stage
expected to reject it, and the README tables list every file.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from evoforge.tools.process import run, scrubbed_env

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "kernels"
HOSTILE = ROOT / "tests" / "fixtures" / "kernel_hostile"
BAD = ROOT / "tests" / "fixtures" / "kernel_bad"
PROBLEMS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.endswith(("_c", "_triton", "_wrong")))
#: the problems whose ``_wrong`` candidate is a C kernel (the Triton ones run in the interpreter test)
WRONG_C = [n for n in PROBLEMS if "import triton" not in (EXAMPLES / f"{n}_wrong.py").read_text()]
STAGES = ("static", "compile", "correctness", "resources", "benchmark")

#: run in a child with TRITON_INTERPRET=1: argv = pairs of (problem, candidate) paths; prints JSON
TRITON_CHECK = r"""
import importlib.util, json, sys
import torch

def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def worst(expected, got):
    if type(got) is not torch.Tensor or got.shape != expected.shape or got.dtype != expected.dtype:
        return float("inf")
    rms = expected.double().pow(2).mean().sqrt().item()
    allowed = 1e-4 * expected.abs() + 1e-4 * rms
    return ((got - expected).abs() / allowed).max().item()

result = {}
pairs = sys.argv[1:]
for i in range(0, len(pairs), 2):
    problem = load(pairs[i], f"problem_{i}")
    candidate = load(pairs[i + 1], f"candidate_{i}")
    torch.manual_seed(1)
    model = problem.Model(*problem.get_init_inputs())
    torch.manual_seed(1)
    new = candidate.ModelNew(*problem.get_init_inputs())
    torch.manual_seed(2)
    inputs = problem.get_inputs()
    with torch.no_grad():
        result[pairs[i + 1]] = worst(model(*inputs), new(*inputs))
print(json.dumps(result))
"""


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"sanity_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _worst_ratio(expected: Any, got: Any) -> float:
    """max |got - expected| / allowed; <= 1 passes the verifier's fp32 tolerance."""
    assert type(got) is torch.Tensor
    assert got.shape == expected.shape and got.dtype == expected.dtype
    rms = expected.double().pow(2).mean().sqrt().item()
    allowed = 1e-4 * expected.abs() + 1e-4 * rms
    return float(((got - expected).abs() / allowed).max().item())


def _outputs(problem: ModuleType, candidate: ModuleType, inputs_fn: str) -> tuple[Any, Any]:
    torch.manual_seed(1)
    model = problem.Model(*problem.get_init_inputs())
    torch.manual_seed(1)
    new = candidate.ModelNew(*problem.get_init_inputs())
    torch.manual_seed(2)
    inputs = getattr(problem, inputs_fn)()
    with torch.no_grad():
        return model(*inputs), new(*[x.clone() for x in inputs])


def test_there_are_at_least_six_problems_each_with_three_candidates() -> None:
    assert len(PROBLEMS) >= 6
    for name in PROBLEMS:
        for suffix in ("_c", "_triton", "_wrong"):
            assert (EXAMPLES / f"{name}{suffix}.py").exists(), f"{name}{suffix}.py is missing"


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_runs_on_default_and_benchmark_inputs(name: str) -> None:
    problem = _load(EXAMPLES / f"{name}.py")
    torch.manual_seed(0)
    model = problem.Model(*problem.get_init_inputs())
    with torch.no_grad():
        small = model(*problem.get_inputs())
        large = model(*problem.get_benchmark_inputs())
    assert small.dtype == torch.float32 and torch.isfinite(small).all()
    assert small.numel() <= 8192, "default shapes must stay small for the Triton interpreter"
    inputs_mb = sum(x.numel() * x.element_size() for x in problem.get_benchmark_inputs()) / 1e6
    assert inputs_mb >= 4.0, f"benchmark inputs are only {inputs_mb:.1f} MB"
    assert large.shape != small.shape
    assert small.abs().max() > 0, "an all-zeros output would pass: the target is too loose"


@pytest.mark.parametrize("name", PROBLEMS)
def test_c_candidate_matches_at_default_and_benchmark_shapes(name: str) -> None:
    problem, candidate = _load(EXAMPLES / f"{name}.py"), _load(EXAMPLES / f"{name}_c.py")
    for inputs_fn in ("get_inputs", "get_benchmark_inputs"):
        expected, got = _outputs(problem, candidate, inputs_fn)
        assert _worst_ratio(expected, got) <= 1.0, f"{name}_c.py on {inputs_fn}()"


@pytest.mark.parametrize("name", WRONG_C)
def test_wrong_c_candidate_does_not_match(name: str) -> None:
    problem, candidate = _load(EXAMPLES / f"{name}.py"), _load(EXAMPLES / f"{name}_wrong.py")
    expected, got = _outputs(problem, candidate, "get_inputs")
    assert _worst_ratio(expected, got) > 1.0


def test_triton_candidates_under_the_interpreter() -> None:
    """Every ``_triton`` candidate matches; every Triton ``_wrong`` candidate does not (one child)."""
    pairs: list[str] = []
    wrong: set[str] = set()
    for name in PROBLEMS:
        pairs += [str(EXAMPLES / f"{name}.py"), str(EXAMPLES / f"{name}_triton.py")]
        if "import triton" in (EXAMPLES / f"{name}_wrong.py").read_text():
            pairs += [str(EXAMPLES / f"{name}.py"), str(EXAMPLES / f"{name}_wrong.py")]
            wrong.add(str(EXAMPLES / f"{name}_wrong.py"))
    env = scrubbed_env({"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "2"})
    done = run([sys.executable, "-c", TRITON_CHECK, *pairs], timeout=120, env=env, cwd=ROOT)
    assert done.ok, done.output[-3000:]
    ratios = json.loads(done.stdout.strip().splitlines()[-1])
    assert wrong, "at least one wrong candidate is a Triton kernel"
    for path, ratio in ratios.items():
        if path in wrong:
            assert ratio > 1.0, f"{path} matches the reference but is meant to be wrong"
        else:
            assert ratio <= 1.0, f"{path}: worst error {ratio:.2f}x the tolerance"


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def test_hostile_fixtures_name_their_hack_and_expected_stage() -> None:
    readme = (HOSTILE / "README.md").read_text()
    files = sorted(p for p in HOSTILE.glob("*.py") if not p.stem.startswith("problem"))
    assert len(files) >= 11
    for path in files:
        doc = _docstring(path)
        assert doc.startswith("Hack #"), f"{path.name}: the docstring must name the hack"
        assert any(f"**{stage}**" in doc for stage in STAGES), f"{path.name}: no expected stage"
        assert f"`{path.name}`" in readme, f"{path.name} is missing from README.md"
        assert "class ModelNew" in path.read_text()


def test_hostile_problem_is_loose_enough_for_zeros_to_fool_a_naive_check() -> None:
    """The premise of zeros.py: every softmax output is below 1e-2, so ``atol=1e-2`` passes zeros."""
    problem = _load(HOSTILE / "problem.py")
    torch.manual_seed(0)
    expected = problem.Model()(*problem.get_inputs())
    assert torch.allclose(torch.zeros_like(expected), expected, atol=1e-2)
    assert _worst_ratio(expected, torch.zeros_like(expected)) > 1.0


def test_bad_fixtures_are_present_and_documented() -> None:
    readme = (HOSTILE / "README.md").read_text()
    names = [
        "problem_import_error",
        "problem_no_get_inputs",
        "problem_model_fails",
        "problem_too_loose",
        "candidate_no_modelnew",
        "candidate_syntax_error",
        "candidate_hangs",
    ]
    for name in names:
        path = BAD / f"{name}.py"
        assert path.exists(), f"{name}.py is missing"
        assert f"`{name}.py`" in readme
    with pytest.raises(SyntaxError):
        ast.parse((BAD / "candidate_syntax_error.py").read_text())
