"""Fitting a KernelBench problem to this machine: its size constants, the size check, scaled sources.

KernelBench problems state their sizes as module-level integer constants (``batch_size = 4096``,
``dim = 393216``) that ``get_inputs``/``get_init_inputs`` read. :func:`size_constants` finds them by
reading the source (nothing is executed here); :func:`check_size` runs the sizing child
(:mod:`evoforge.verifiers.kernel.sizing`, sandboxed: it executes the problem on the ``meta``
device) which estimates memory and time as written and, as ``KernelSettings.scale`` asks, chooses
smaller values. The user's file is never edited: :func:`scaled_source` gives the text the verifier
runs, the same file with those constants' values replaced (line numbers kept), and
:func:`scale_note` the words shown next to every result ("timed at 4096×1024, the problem says
4096×393216").
"""

from __future__ import annotations

import ast
import json
import logging
import operator
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from evoforge.config import KernelSettings
from evoforge.errors import TargetError
from evoforge.tools.process import Limits
from evoforge.verifiers.sandbox import run_untrusted

log = logging.getLogger(__name__)

MARKER = "EVOFORGE-RESULT"
#: address space torch, Triton and LLVM map in a child before the problem allocates anything
RUNTIME_ADDRESS_SPACE = 4 << 30
#: the largest trial file a stage child may write (its file-size limit is 1 GiB)
IO_BUDGET_BYTES = 128 << 20
#: what Triton's interpreter (numpy, one program at a time) checks at: tensors of a trial, a call
INTERPRET_IO_BYTES = 2 << 20
INTERPRET_CALL_MS = 5.0
#: reference calls the target check makes (two runs, a warm-up and ten timed)
PROBE_CALLS = 13

_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
}


def _int_value(node: ast.AST) -> int | None:
    """The value of an integer expression of literals (``4096``, ``1024 * 2``, ``2**16``), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _int_value(node.left), _int_value(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Pow) and abs(right) > 64):
            return None
        try:
            return int(_OPS[type(node.op)](left, right))
        except (ZeroDivisionError, ValueError, OverflowError):
            return None
    return None


def size_constants(text: str) -> dict[str, tuple[int, list[int]]]:
    """Module-level ``NAME = <integer literal expression>``: name → (value, span of the value)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    found: dict[str, tuple[int, list[int]]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        for name in list(found):  # reassigned: only the last plain assignment counts
            if set(name.split("=")) & set(names):
                found.pop(name)
        number = _int_value(value)
        if len(names) != len(targets) or number is None or number < 1:
            continue
        if value.end_lineno is None or value.end_col_offset is None:
            continue
        # ``height = width = 128`` is one constant, "height=width": one value, one edit
        span = [value.lineno, value.col_offset, value.end_lineno, value.end_col_offset]
        found["=".join(names)] = (number, span)
    return found


def scaled_source(text: str, scaling: dict[str, Any] | None) -> str:
    """The problem as the verifier runs it: ``text`` with the chosen constant values (if any)."""
    values = dict((scaling or {}).get("values") or {})
    if not values:
        return text
    from evoforge.verifiers.kernel.sizing import scaled_text

    constants = size_constants(text)
    spans = {name: constants[name][1] for name in values if name in constants}
    return scaled_text(text, spans, {n: int(v) for n, v in values.items() if n in spans})


def child_limits(settings: KernelSettings, base: Limits) -> Limits:
    """``base`` (the kernel children's limits) with the configured memory cap."""
    return replace(base, memory_bytes=settings.memory_limit_bytes)


def memory_budget(settings: KernelSettings) -> int:
    """What the problem's own tensors may take in one child: half of what the cap leaves torch."""
    cap = settings.memory_limit_bytes
    return max(cap - RUNTIME_ADDRESS_SPACE, cap // 4) // 2


def check_size(
    text: str,
    settings: KernelSettings,
    workdir: Path,
    limits: Limits,
    *,
    io_budget_bytes: int = IO_BUDGET_BYTES,
) -> dict[str, Any]:
    """Estimate the problem's memory and time, choose its sizes; the record kept with the target.

    Raises :class:`TargetError` when the problem does not fit and may not be scaled, or cannot be
    scaled enough. A problem without size constants, or whose inputs cannot be built on the meta
    device, runs as written (the record says why nothing was estimated).
    """
    constants = size_constants(text)
    request = {
        "problem": str(workdir / "problem.py"),
        "constants": {n: v for n, (v, _) in constants.items()},
        "spans": {n: s for n, (_, s) in constants.items()},
        "scale": settings.scale,
        "sizes": settings.sizes,
        "memory_budget_bytes": memory_budget(settings),
        "io_budget_bytes": io_budget_bytes,
        "call_budget_ms": settings.call_budget_ms,
        "threads": settings.cpu_threads,
    }
    (workdir / "problem.py").write_text(text)
    answer = _run_sizing(request, workdir, settings, limits)
    record: dict[str, Any] = {
        "scale": settings.scale,
        "memory_limit_bytes": settings.memory_limit_bytes,
        "memory_budget_bytes": request["memory_budget_bytes"],
        "call_budget_ms": settings.call_budget_ms,
        **{k: answer.get(k) for k in ("estimated", "reason", "machine", "mode", "scalable", "values")},
        **{k: answer.get(k) for k in ("problem", "chosen", "problem_misfit", "chosen_misfit")},
    }
    record["values"] = record.get("values") or {}
    record["constants"] = {
        name: {"problem": constants[name][0], "timed": int(value)}
        for name, value in record["values"].items()
        if name in constants
    }
    record["note"] = scale_note(record)
    if not answer.get("ok"):
        if settings.sizes:
            raise TargetError(
                f"--size: {answer.get('detail')}", hint="--size NAME=VALUE, NAME a size constant"
            )
        raise TargetError(
            f"the problem does not fit this machine and cannot be scaled to fit: {answer.get('detail')}",
            hint="raise --memory-limit, or give explicit sizes with --size NAME=VALUE",
        )
    if not answer.get("estimated"):
        log.info("size check skipped: %s", answer.get("reason"))
        return record
    misfit = list(answer.get("chosen_misfit") or [])
    too_big = [m for m in misfit if "ms, more than" not in m]
    check_s = PROBE_CALLS * float(answer["chosen"]["call_ms"]) / 1e3
    if check_s > settings.target_timeout_s:
        too_big.append(
            f"would take ~{check_s:.0f} s to check ({PROBE_CALLS} reference calls), more than the "
            f"{settings.target_timeout_s:g} s limit"
        )
    if too_big:
        said, mode = settings.scale, str(answer.get("mode") or "")
        if mode == "auto" and record["values"]:
            what = (
                "shrunk as far as it goes ("
                + ", ".join(f"{n}={v}" for n, v in record["values"].items())
                + ")"
            )
        elif mode == "auto":
            what = (
                "has no size constants to shrink (module-level integers of at least 32 that set tensor "
                "shapes); as written it"
            )
        elif mode == "pinned":
            what = "at the given --size values"
        else:
            what = "as written" if said in ("none", "auto") else f"at --scale {said}"
        raise TargetError(
            f"the problem {what} {'; '.join(too_big)} ({machine_words(record)}): "
            f"{describe_estimate(answer['chosen'])}",
            hint="run it scaled down: --scale auto (default on a machine without a GPU) or --scale F "
            "(0 < F <= 1, each size constant times F); or raise --memory-limit",
        )
    return record


def _run_sizing(request: dict[str, Any], workdir: Path, settings: KernelSettings, limits: Limits) -> Any:
    answer = run_program(
        "evoforge.verifiers.kernel.sizing", request, workdir, settings, limits, settings.target_timeout_s
    )
    if answer is None:
        raise TargetError(
            f"estimating the problem's size did not finish within {settings.target_timeout_s:.0f} s",
            hint="raise --target-timeout",
        )
    return answer


def run_program(
    module: str,
    request: dict[str, Any],
    workdir: Path,
    settings: KernelSettings,
    limits: Limits,
    timeout_s: float,
) -> dict[str, Any] | None:
    """Run ``python -m module`` sandboxed with ``request`` on stdin; its answer (None: timed out).

    The program answers with one ``EVOFORGE-RESULT <nonce> <json>`` line, as the harness does; a
    program that dies without one raises :class:`TargetError` with the end of its output.
    """
    nonce = secrets.token_hex(16)
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    if settings.cpu_threads:
        env["OMP_NUM_THREADS"] = str(settings.cpu_threads)
    done = run_untrusted(
        [sys.executable, "-m", module],
        workdir=workdir,
        timeout=timeout_s,
        env=env,
        limits=limits,
        stdin_text=json.dumps({**request, "nonce": nonce}),
    )
    prefix = f"{MARKER} {nonce} "
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(prefix):
            return dict(json.loads(line[len(prefix) :]))
    if done.timed_out:
        return None
    raise TargetError(f"{module} died without an answer (exit {done.returncode}):\n{done.output[-2000:]}")


# -- words -----------------------------------------------------------------------------------------


def _bytes(n: float) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.3g} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.3g} MiB"
    return f"{n / 1024:.3g} KiB"


def shapes_text(shapes: list[list[int]] | None) -> str:
    return ", ".join("×".join(str(d) for d in shape) or "scalar" for shape in shapes or []) or "no tensors"


def describe_estimate(row: dict[str, Any]) -> str:
    words = (
        f"inputs {shapes_text(row.get('input_shapes'))} ({_bytes(row.get('input_bytes', 0))}), "
        f"~{_bytes(row.get('footprint_bytes', 0))} per check, "
        f"~{row.get('call_ms', 0):.4g} ms per reference call"
    )
    if row.get("forward_error"):
        words += " (from inputs and parameters only: the forward did not run on the meta device)"
    return words


def machine_words(record: dict[str, Any]) -> str:
    machine = record.get("machine") or {}
    gpu = "a CUDA GPU" if machine.get("cuda") else "no GPU"
    return (
        f"this machine: {gpu}, {machine.get('threads')} threads, "
        f"memory cap {_bytes(record['memory_limit_bytes'])} "
        f"per child ({_bytes(record['memory_budget_bytes'])} for the problem's tensors), "
        f"call budget {record['call_budget_ms']:g} ms"
    )


def scale_note(record: dict[str, Any] | None) -> str:
    """ "timed at 4096×1024, the problem says 4096×393216" — or "" when the problem runs as written."""
    if not record or not record.get("values"):
        return ""
    timed = (record.get("chosen") or {}).get("input_shapes")
    said = (record.get("problem") or {}).get("input_shapes")
    changed = ", ".join(
        f"{n} {c['problem']}→{c['timed']}" for n, c in (record.get("constants") or {}).items()
    )
    return f"timed at {shapes_text(timed)}, the problem says {shapes_text(said)} (scaled: {changed})"


def size_report(record: dict[str, Any] | None) -> str:
    """The size check in words: what the problem needs, what this machine allows, what was done."""
    if not record:
        return ""
    if not record.get("estimated"):
        return f"size not estimated ({record.get('reason')}); running as written"
    lines = [f"as written: {describe_estimate(record['problem'])}"]
    misfit = record.get("problem_misfit") or []
    lines.append(machine_words(record))
    if misfit:
        lines.append("does not fit: " + "; ".join(misfit))
    if record.get("values"):
        lines.append(f"scaled ({record.get('mode')}): {describe_estimate(record['chosen'])}")
        lines.append(scale_note(record))
    else:
        lines.append(f"runs {record.get('mode') or 'as written'}")
    return "\n".join(lines)
