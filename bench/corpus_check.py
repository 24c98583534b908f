"""The independent re-check of a corpus win (``bench/corpus.py``): equivalence and area from scratch.

It shares no code with evoforge's verifier: plain Yosys scripts written here, run with ``subprocess``.

**Equivalence.** Both designs are read and flattened on their own (``prep``, ``memory`` so that case
tables Yosys turns into ROMs reach SAT, ``async2sync`` so that SAT sees asynchronous resets) and
joined in a miter (``miter -equiv -ignore_gold_x``, ``sat -enable_undef``): an x of the original is a
don't-care, an x of the best where the original is defined is a mismatch.

- A combinational design (no state cells) is proven by ABC's ``iprove`` on the miter written as
  AIGER (:func:`prove_with_abc`; SAT sweeping handles rewritten arithmetic that one whole-cone SAT call
  does not) or, when that does not prove it, by one SAT call over all inputs with x semantics.
- A sequential design is judged *from reset*, as an engineer would: its reset inputs are found in the
  original's netlist (:func:`find_resets`), held active in the first ``hold`` cycles, and the outputs
  of those cycles are not compared (``sat -seq hold -set-at``); after them the reset input is free
  again (a reset at any later time is covered) and ``sat -tempinduct`` must prove the outputs equal
  forever (induction up to length ``max_steps``). Registers start at zero in both designs (the same
  power-up value for state no reset reaches), so the states checked are those reachable from "zero,
  then reset". A design with no reset keeps the all-zero start and compares from the first cycle.
- "unproven" when induction does not close within ``max_steps`` or a SAT call times out; "differs"
  when the base case finds a trace from reset on which the outputs differ. Only "equivalent" counts.

**Which input is the reset.** After ``prep; opt_dff`` a flop's asynchronous reset is the ``ARST``
pin of ``$adff``/``$adffe`` cells and a synchronous one the ``SRST`` pin of ``$sdff*`` cells, with
its polarity in ``ARST_POLARITY``/``SRST_POLARITY``. A reset counts when that pin is a one-bit input
port, directly or through one inverter (polarity flipped). Every asynchronous reset input is held; a
design with none uses its synchronous reset that drives the most flop bits. When the netlist shows
none, the reset evoforge reports for the target is used as a hint — the row says which was used
(``method``), so a reader can audit it.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: longest induction tried for a sequential design
MAX_STEPS = 64
#: seconds a single SAT instance may take before the check says "unproven"
SAT_TIMEOUT_S = 120


@dataclass(frozen=True)
class Reset:
    port: str
    active_low: bool
    asynchronous: bool
    found: str  # "netlist" or "evoforge's report"

    def describe(self) -> str:
        kind = "asynchronous" if self.asynchronous else "synchronous"
        return f"{self.port}={0 if self.active_low else 1} ({kind}, from {self.found})"


def yosys(script: str, cwd: Path, name: str = "check", timeout: float = 300) -> tuple[bool, str]:
    (cwd / f"{name}.ys").write_text(script)
    try:
        done = subprocess.run(
            ["yosys", "-q", "-l", f"{name}.log", "-s", f"{name}.ys"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, "timeout"
    log_file = cwd / f"{name}.log"
    log = log_file.read_text() if log_file.exists() else ""
    return done.returncode == 0, log + done.stderr


def _param(value: Any) -> int:
    """A JSON netlist parameter: an int or a string of binary digits."""
    return value if isinstance(value, int) else int(str(value), 2)


def find_resets(design: Path, top: str, cwd: Path) -> tuple[list[Reset], int]:
    """Reset inputs of ``design`` read from its flops' reset pins, and its number of state bits."""
    ok, log = yosys(
        f"read_verilog -sv {design}\nprep -flatten -top {top}\nmemory\nopt_dff\n"
        f"write_json {cwd / 'netlist.json'}\n",
        cwd,
        name="resets",
    )
    if not ok:
        raise RuntimeError(f"yosys could not read {design.name}: {log[-500:]}")
    module = json.loads((cwd / "netlist.json").read_text())["modules"][top]
    inputs: dict[int, str] = {}
    for name, port in module["ports"].items():
        if port["direction"] == "input" and len(port["bits"]) == 1:
            inputs[port["bits"][0]] = name
    inverted: dict[int, int] = {}  # output bit of a one-bit inverter -> its input bit
    for cell in module["cells"].values():
        if cell["type"] in ("$not", "$logic_not", "$_NOT_"):
            a, y = cell["connections"].get("A", []), cell["connections"].get("Y", [])
            if len(a) == 1 and len(y) >= 1:
                inverted[y[0]] = a[0]
    weight: dict[tuple[str, bool, bool], int] = {}
    state_bits = 0
    for cell in module["cells"].values():
        kind = cell["type"]
        if not (kind.startswith("$") and ("ff" in kind or "latch" in kind or kind in ("$sr", "$_SR_"))):
            continue
        width = _param(cell["parameters"].get("WIDTH", 1))
        state_bits += width
        for pin, polarity, asynchronous in (
            ("ARST", "ARST_POLARITY", True),
            ("SRST", "SRST_POLARITY", False),
        ):
            bits = cell["connections"].get(pin)
            if not bits or len(bits) != 1 or not isinstance(bits[0], int):
                continue
            active_high = bool(_param(cell["parameters"].get(polarity, 1)))
            bit = bits[0]
            if bit not in inputs and bit in inverted and inverted[bit] in inputs:
                bit, active_high = inverted[bit], not active_high
            if bit in inputs:
                key = (inputs[bit], not active_high, asynchronous)
                weight[key] = weight.get(key, 0) + width
    async_resets = [Reset(p, low, True, "netlist") for (p, low, a) in weight if a]
    if async_resets:
        return async_resets, state_bits
    synchronous = sorted(((w, k) for k, w in weight.items()), reverse=True)
    if synchronous:
        port, low, _ = synchronous[0][1]
        return [Reset(port, low, False, "netlist")], state_bits
    return [], state_bits


def _load(original: Path, candidate: Path, top: str) -> str:
    return (
        f"read_verilog -sv {original}\nprep -flatten -top {top}\nmemory\nasync2sync\n"
        f"rename {top} gold\ndesign -stash gold\n"
        f"read_verilog -sv {candidate}\nprep -flatten -top {top}\nmemory\nasync2sync\n"
        f"rename {top} gate\ndesign -stash gate\n"
        "design -copy-from gold -as gold gold\ndesign -copy-from gate -as gate gate\n"
        "miter -equiv -ignore_gold_x -flatten -make_assert gold gate miter\nhierarchy -top miter\n"
    )


def prove(
    original: Path,
    candidate: Path,
    top: str,
    cwd: Path,
    resets: list[Reset],
    sequential: bool,
    hold: int = 1,
    max_steps: int = MAX_STEPS,
) -> dict[str, Any]:
    """Prove the miter; return ``equivalent``, ``outcome`` and the ``method`` used."""
    flags = "-verify -prove-asserts -set-def-inputs -enable_undef -tempinduct -set-init-zero"
    if not sequential:
        # ABC first: fast on rewritten arithmetic; its two-valued miter is the stricter contract, so
        # only its "equivalent" is final and anything else goes to the SAT miter with x semantics
        abc = prove_with_abc(original, candidate, top, cwd)
        if abc == "equivalent":
            return {
                "equivalent": True,
                "outcome": abc,
                "method": "combinational: ABC iprove on the AIGER miter",
            }
        method = f"combinational: ABC iprove ({abc}), then SAT over all inputs with x semantics"
    elif resets:
        sets = " ".join(
            f"-set-at {step} in_{r.port} {0 if r.active_low else 1}"
            for r in resets
            for step in range(1, hold + 1)
        )
        flags += f" -seq {hold} {sets}"
        method = (
            f"induction from reset {', '.join(r.describe() for r in resets)} held {hold} cycle(s), "
            "outputs compared after it"
        )
    else:
        method = "induction from the all-zero state (no reset found)"
    if sequential:
        flags += f" -maxsteps {max_steps}"
    ok, log = yosys(
        _load(original, candidate, top) + f"sat {flags} -timeout {SAT_TIMEOUT_S} miter\n",
        cwd,
        name="prove",
        timeout=SAT_TIMEOUT_S * 4 + 60,
    )
    lengths = re.findall(r"Trying induction with length (\d+)", log)
    k = int(lengths[-1]) if lengths else None
    if ok and "SUCCESS" in log:
        outcome = "equivalent"
    elif "model found for base case" in log or "model found: FAIL" in log:
        outcome = "differs"
    elif log == "timeout" or "timeout reached" in log.lower() or "timed out" in log.lower():
        outcome = "unproven: SAT timeout"
    elif "Reached maximum number of time steps" in log:
        outcome = f"unproven: induction did not close by length {max_steps}"
    else:
        outcome = "unproven: " + (log.strip().splitlines() or ["?"])[-1][:160]
    if sequential and k is not None:
        method += f", k={k}"
    return {"equivalent": outcome == "equivalent", "outcome": outcome, "method": method}


def prove_with_abc(original: Path, candidate: Path, top: str, cwd: Path, timeout_s: float = 300) -> str:
    """Combinational miter proven by ABC's ``iprove`` (SAT sweeping finds the equal inner nodes that
    make a rewritten arithmetic cone tractable where one whole-cone SAT call is not).

    AIGER is two-valued: an x of the original becomes 0 (one legal choice of its don't-care, so this is
    stricter than the SAT miter) and an x of the best a free input (every choice must match).
    Returns "equivalent", "differs" or "unproven: …".
    """
    load = (
        _load(original, candidate, top)
        .replace(" -make_assert", "")
        .replace("miter -equiv -ignore_gold_x", "miter -equiv")
    )
    load = load.replace(
        "design -copy-from gold -as gold gold\n",
        "design -copy-from gold -as gold gold\nsetundef -undriven -zero gold\nsetundef -zero gold\n",
    ).replace(
        "design -copy-from gate -as gate gate\n",
        "design -copy-from gate -as gate gate\nsetundef -undriven -anyseq gate\nsetundef -anyseq gate\n",
    )
    aiger = cwd / "miter.aig"
    ok, _ = yosys(
        load + f"select -assert-none t:$*ff t:$*dff* t:$*latch* t:$mem*\nflatten\ntechmap\nopt -fast\n"
        f"aigmap\nopt_clean\nselect -assert-count 1 miter/o:*\nwrite_aiger -zinit {aiger}\n",
        cwd,
        name="abc_export",
    )
    if not ok:
        return "unproven: could not export the miter to AIGER"
    try:
        done = subprocess.run(
            ["yosys-abc", "-c", f"read_aiger {aiger}; strash; iprove"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return "unproven: ABC timeout"
    (cwd / "abc.log").write_text(done.stdout + done.stderr)
    verdict = re.findall(r"^(UNSATISFIABLE|SATISFIABLE|UNDECIDED)", done.stdout, re.M)
    if verdict == ["UNSATISFIABLE"]:  # the miter output (a mismatch) can never be 1
        return "equivalent"
    if verdict == ["SATISFIABLE"]:
        return "differs"
    return "unproven: ABC iprove undecided"


def measure_area(design: Path, top: str, liberty: Path, cwd: Path) -> float | None:
    done, log = yosys(
        f"read_verilog -sv {design}\nsynth -flatten -top {top}\ndfflibmap -liberty {liberty}\n"
        f"abc -liberty {liberty}\nopt_clean\nstat -liberty {liberty}\n",
        cwd,
        name="area",
    )
    found = re.findall(r"Chip area for module .*?: ([\d.]+)", log)
    return float(found[-1]) if done and found else None


def independent_check(
    original: Path,
    best: str,
    top: str,
    liberty: Path | None,
    cwd: Path,
    hint: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Equivalence (from reset for sequential designs) and area of the best, from scratch.

    ``hint`` is the reset list of evoforge's report (``interface.resets``), used only when the
    original's netlist shows no reset; the row's ``method`` says which reset was held.
    """
    original, cwd = original.resolve(), cwd.resolve()
    cwd.mkdir(parents=True, exist_ok=True)
    candidate = cwd / f"best{original.suffix}"
    candidate.write_text(best)
    try:
        resets, state_bits = find_resets(original, top, cwd)
    except RuntimeError as exc:  # the original is the corpus's file: record it, never crash the run
        return {"equivalent": False, "outcome": f"unproven: {exc}"[:300], "method": "none", "area_gain": None}
    if not resets and state_bits:
        resets = [
            Reset(str(h["port"]), bool(h.get("active_low")), bool(h.get("asynchronous")), "evoforge's report")
            for h in hint or ()
            if h.get("port")
        ]
    row = prove(original, candidate, top, cwd, resets, sequential=state_bits > 0)
    if liberty is not None:
        areas = [measure_area(design, top, liberty, cwd) for design in (original, candidate)]
        row["area_gain"] = areas[0] / areas[1] if areas[0] and areas[1] else None
    return row
