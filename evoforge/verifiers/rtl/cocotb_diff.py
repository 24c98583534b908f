"""The cocotb differential test and user-test runs: the job files, the sandboxed child, its result.

The parent side (:func:`run_differential`, :func:`run_user_test`) writes a job directory — the
original with modules prefixed ``gold_``, the candidate prefixed ``gate_``, a wrapper that puts both on
one stimulus bus (:func:`diff_wrapper`), ``spec.json`` — and starts
``python -m evoforge.verifiers.rtl.cocotb_diff spec.json`` through the sandbox. The child (``main``)
builds with ``cocotb_tools.runner`` for Icarus, runs the cocotb test module
(:mod:`evoforge.verifiers.rtl.cocotb_bench`, or the user's module against the candidate alone) and
writes ``result.json``; the parent reads it into a frozen :class:`SimOutcome`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.domain import RtlInterface
from evoforge.tools.base import write_text
from evoforge.tools.iverilog import LANGUAGE_FLAG
from evoforge.verifiers.rtl.rename import prefix_modules
from evoforge.verifiers.sandbox import run_untrusted

log = logging.getLogger(__name__)

WRAPPER = "evoforge_diff_top"
BENCH_MODULE = "evoforge.verifiers.rtl.cocotb_bench"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class SimOutcome:
    passed: bool
    cycles_run: int
    seconds: float
    mismatch: dict[str, Any] | None = None  # seed, cycle, signal, expected, got, inputs
    error: str | None = None  # build failure, early end, test failure message, …
    timed_out: bool = False
    log: str = ""


# ---------------------------------------------------------------------------------------------
# Parent side


def _packed(ports: Any) -> dict[str, str]:
    total = sum(p.width for p in ports)
    out, hi = {}, total - 1
    for port in ports:
        out[port.name] = f"[{hi}:{hi - port.width + 1}]"
        hi -= port.width
    return out


def diff_wrapper(interface: RtlInterface) -> str:
    """Gold and gate on shared inputs; ``bad`` flags a gate bit that differs where gold is 0/1.

    The designs are clocked by ``clk`` delayed 1 ns, so the ``posedge clk`` latches (``*_pre``) hold
    the outputs just before the designs' own edge, free of races with their always blocks.
    """
    from evoforge.verifiers.rtl.probe import clock_drive, instance_text, stimulus_ports

    ins, outs = stimulus_ports(interface), interface.outputs
    in_slices, out_slices = _packed(ins), _packed(outs)
    stim = {name: f"stim{sl}" for name, sl in in_slices.items()}  # each input's bits of the stimulus
    clock_decls, clocks = clock_drive(interface, "dclk", stim, enable_delay_ns=2)
    width_in = max(1, sum(p.width for p in ins))
    width_out = sum(p.width for p in outs)

    def instance(prefix: str) -> str:
        return instance_text(interface, prefix, clocks=clocks, inputs=stim, outputs=out_slices) + "\n"

    return (
        "`timescale 1ns/1ps\n"
        f"module {WRAPPER} (input clk, input [{width_in - 1}:0] stim,\n"
        f"  output [{width_out - 1}:0] gold_out, output [{width_out - 1}:0] gate_out, output bad,\n"
        f"  output reg bad_pre, output reg [{width_out - 1}:0] gold_pre,\n"
        f"  output reg [{width_out - 1}:0] gate_pre);\n"
        "  wire dclk;\n"
        "  assign #1 dclk = clk;\n"
        f"{clock_decls}"
        f"{instance('gold')}{instance('gate')}"
        f"  wire [{width_out - 1}:0] bit_bad;\n"
        "  genvar i;\n"
        f"  generate for (i = 0; i < {width_out}; i = i + 1) begin : cmp\n"
        "    assign bit_bad[i] = (gold_out[i] === 1'b0 && gate_out[i] !== 1'b0)\n"
        "                     || (gold_out[i] === 1'b1 && gate_out[i] !== 1'b1);\n"
        "  end endgenerate\n"
        "  assign bad = |bit_bad;\n"
        "  initial bad_pre = 1'b0;\n"
        "  always @(posedge clk) begin\n"
        "    bad_pre <= bad;\n"
        "    gold_pre <= gold_out;\n"
        "    gate_pre <= gate_out;\n"
        "  end\n"
        "endmodule\n"
    )


def _interface_json(interface: RtlInterface) -> dict[str, Any]:
    return interface.to_dict()


def _child_env() -> dict[str, str]:
    package_root = str(Path(__file__).resolve().parents[3])
    return {
        "PYTHONPATH": package_root,
        "COCOTB_REWRITE_ASSERTION_FILES": "",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _run_child(
    workdir: Path, spec: dict[str, Any], timeout: float, reads: tuple[Path, ...] = ()
) -> SimOutcome:
    spec_path = write_text(workdir / "spec.json", json.dumps(spec, indent=1))
    (workdir / RESULT_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "evoforge.verifiers.rtl.cocotb_diff", spec_path.name]
    result = run_untrusted(argv, workdir=workdir, timeout=timeout, env=_child_env(), reads=reads)
    if result.timed_out:
        return SimOutcome(False, 0, result.seconds, error=f"simulation did not finish within {timeout:g} s "
                          "(infinite loop or no progress?)", timed_out=True, log=result.output)  # fmt: skip
    if result.limit_exceeded is not None:
        return SimOutcome(False, 0, result.seconds, error=f"the simulation was stopped at "
                          f"{result.limit_exceeded} of its sandbox", log=result.output[-20000:])  # fmt: skip
    path = workdir / RESULT_FILE
    if not path.exists():
        tail = "\n".join(result.output.strip().splitlines()[-8:])
        return SimOutcome(False, 0, result.seconds, error=f"the simulation child wrote no result: {tail}",
                          log=result.output)  # fmt: skip
    data = json.loads(path.read_text())
    return SimOutcome(
        passed=bool(data.get("passed")),
        cycles_run=int(data.get("cycles_run", 0)),
        seconds=result.seconds,
        mismatch=data.get("mismatch"),
        error=data.get("error"),
        log=f"{data.get('log', '')}\n{result.output}".strip(),
    )


def run_differential(
    original: str,
    candidate: str,
    interface: RtlInterface,
    workdir: Path,
    *,
    cycles: int,
    reset_cycles: int,
    seeds: list[int],
    timeout: float,
) -> SimOutcome:
    """Simulate the original and the candidate side by side in a sandboxed cocotb run.

    The caller vets the candidate's system calls first (``run_simulate`` does, through the probe).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sources = [
        write_text(workdir / "wrapper.v", diff_wrapper(interface)),
        write_text(workdir / "gold.v", prefix_modules(original, "gold_")),
        write_text(workdir / "gate.v", prefix_modules(candidate, "gate_")),
    ]
    spec = {
        "mode": "diff",
        "toplevel": WRAPPER,
        "sources": [str(s) for s in sources],
        "test_module": BENCH_MODULE,
        "interface": _interface_json(interface),
        "cycles": cycles,
        "reset_cycles": reset_cycles,
        "seeds": seeds,
    }
    return _run_child(workdir, spec, timeout)


def run_user_test(candidate: str, top: str, test_path: Path, workdir: Path, *, timeout: float) -> SimOutcome:
    """Run the user's cocotb test module (``test_path``) against the candidate alone."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = write_text(workdir / "candidate_user.v", candidate)
    spec = {
        "mode": "user",
        "toplevel": top,
        "sources": [str(source)],
        "test_module": test_path.stem,
        "test_dir": str(test_path.resolve().parent),
    }
    # the box shows the child the test module alone, not the rest of its directory
    return _run_child(workdir, spec, timeout, reads=(test_path.resolve(),))


# ---------------------------------------------------------------------------------------------
# Child side (runs inside the sandbox)


def _failures(results_xml: Path) -> tuple[int, list[str]]:
    """(number of tests, failure messages) from cocotb's xUnit results."""
    root = ElementTree.parse(results_xml).getroot()
    tests, messages = 0, []
    for case in root.iter("testcase"):
        tests += 1
        for bad in [*case.findall("failure"), *case.findall("error")]:
            text = (bad.get("message") or bad.text or "failed").strip()
            messages.append(f"{case.get('name', '?')}: {text}")
    return tests, messages


def _tail(path: Path, lines: int = 12) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def _child(spec_path: Path) -> dict[str, Any]:
    from cocotb_tools.runner import get_runner

    spec = json.loads(spec_path.read_text())
    workdir = spec_path.parent
    if spec["mode"] == "user":
        sys.path.insert(0, spec["test_dir"])  # the runner passes sys.path on as PYTHONPATH
    runner = get_runner("icarus")
    build_log = workdir / "build.log"
    try:
        runner.build(
            sources=spec["sources"],
            hdl_toplevel=spec["toplevel"],
            build_dir=workdir / "sim_build",
            build_args=[LANGUAGE_FLAG],  # as lint and probe: SystemVerilog
            timescale=("1ns", "1ps"),
            always=True,
            log_file=build_log,
        )
    except (RuntimeError, SystemExit) as exc:
        return _failed(f"the simulation build failed ({exc})", _tail(build_log))
    sim_log = workdir / "sim.log"
    (workdir / "bench.json").unlink(missing_ok=True)
    results_xml = workdir / "results.xml"
    try:
        runner.test(
            test_module=spec["test_module"],
            hdl_toplevel=spec["toplevel"],
            build_dir=workdir / "sim_build",
            test_dir=workdir,
            plusargs=[f"+evoforge_spec={spec_path}"],
            results_xml=str(results_xml),
            log_file=sim_log,
        )
    except (RuntimeError, SystemExit) as exc:
        log.warning("the simulator exited abnormally: %s", exc)
    tail = _tail(sim_log, 40)
    if spec["mode"] == "diff":
        bench = workdir / "bench.json"
        if not bench.exists():
            when = re.findall(r"^\s*([\d.]+)ns\s+\w+\s+cocotb\.regression\s+\S+ failed", tail, flags=re.M)
            at = f" at {float(when[-1]):g} ns of simulated time" if when else ""
            return _failed(
                f"the simulation ended before the test finished{at} ($finish in the design?)", tail
            )
        return {**json.loads(bench.read_text()), "log": tail}
    if not results_xml.exists():
        return _failed("the user test did not complete", tail)
    tests, failures = _failures(results_xml)
    if tests == 0:
        return _failed("the user test module ran no tests", tail)
    return {"passed": not failures, "cycles_run": 0, "error": "; ".join(failures) or None, "log": tail}


def _failed(error: str, log_text: str = "") -> dict[str, Any]:
    return {"passed": False, "cycles_run": 0, "mismatch": None, "error": error, "log": log_text}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec_path = Path(argv[0]).resolve()
    try:
        result = _child(spec_path)
    except Exception as exc:  # any failure becomes a result the parent can report
        log.exception("the simulation child failed")
        result = _failed(f"{type(exc).__name__}: {exc}")
    (spec_path.parent / RESULT_FILE).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
