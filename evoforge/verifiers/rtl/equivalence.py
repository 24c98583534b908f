"""The ``equivalence`` stage of the RTL cascade: formal equivalence of candidate and original.

``run_equivalence`` returns ``ok=False`` only when the candidate is *disproven* (``detail`` and
``data["counterexample"]`` then hold the inputs per cycle and the differing output) or cannot be
checked because it instantiates an undefined module or a black box (reward hack #19). Otherwise
``ok=True`` with ``data["assurance"]`` = ``proven``, or, when formal gave no proof in time
(:func:`label_without_proof`): ``bounded(N cycles)`` when the bounded check's N reaches the designs'
state horizon, ``simulated(N cycles)`` when the simulate stage's uninterrupted run does, and
``sampled(N cycles)`` when neither does. Every attempt is a
separate yosys/ABC process limited by ``settings.equivalence_timeout_s`` and all of them together by
``settings.equivalence_budget_s``; a timeout is recorded and the next attempt runs while budget is left.

Attempts, stopping at the first decisive one:

1. ``structural`` — ``equiv_make/equiv_simple/equiv_induct`` (fast when registers correspond;
   unproven cells are inconclusive, never a disproof). ``equiv_induct`` alone is a weak equivalence
   (no divergence after N equal cycles), so on a sequential design it proves only together with the
   base case: every matched signal equal for the first N cycles after reset (``sat`` on an
   ``equiv_miter`` of the matched points).
2. combinational designs (no state in either): ``sat`` on the miter, cofactored on the narrowest
   inputs (see :func:`equivalence_scripts.split_cases`), then ``abc`` (``&cec`` on an AIGER miter),
   which only ever *proves*: its two-valued model is not used to refute.
3. sequential designs: ``induction`` (``sat -tempinduct``) with the reset asserted in the first
   cycle, then ``bmc`` to ``settings.bmc_depth`` cycles after reset. A clocked design without a reset
   has an unknown initial state: only induction over all initial states can prove it; otherwise the
   stage falls back to ``simulated`` (a concrete mismatch it finds is still a disproof).
   Between the two, ``pdr``: ABC's property-directed reachability on an AIGER miter whose initial
   state is the state after one reset cycle (``sim -w``; refused when a register is still undefined
   then). It proves rewrites that change the reachable state space (width reduction, FSM
   re-encoding), where k-induction fails on unreachable states; its counterexamples are not trusted
   as disproofs (two-valued). ABC's ``dsec``/``dprove`` are not used: they assume an all-zero initial
   state, which is not the reset semantics of the design.

Clocks: Yosys's formal model updates every flop once per step and ignores what clocks it. That is
the designs only when one edge of one input clocks every flop of both; otherwise (several clock
domains, both edges, a clock from logic, latches: :func:`lockstep_gap`) a proof or a bound is of
another circuit, so the label comes from the simulation alone (``simulated``/``sampled``), while a
difference found in that model is still reported.

X handling: inputs are defined; initial state is undefined (``-set-init-undef``) and the first
(reset) cycle's outputs are not compared. The miter is built with ``-ignore_gold_x``: an undefined
bit of the original is a don't-care, an undefined bit of the candidate where the original is defined
is a mismatch (reward hack #21). Latency changes are therefore mismatches too (reward hack #20).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evoforge.domain import Assurance, StageResult
from evoforge.tools.yosys import Yosys, YosysAbc, YosysRun
from evoforge.verifiers.rtl import equivalence_scripts as scripts
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.counterexample import Counterexample, from_model, parse_sat_model
from evoforge.verifiers.rtl.horizon import horizon_for, single_clock

log = logging.getLogger(__name__)

STAGE = "equivalence"
ORIGINAL, CANDIDATE = "original.v", "candidate.v"
LABELS = {
    "structural": "structural equivalence (equiv_simple/equiv_induct)",
    "sat": "SAT on the miter",
    "abc": "ABC &cec",
    "induction": "SAT induction",
    "bmc": "bounded model check",
    "pdr": "ABC pdr from the reset state",
}


@dataclass(frozen=True)
class Attempt:
    method: str
    outcome: str  # proven | disproven | unknown | timeout | error
    seconds: float
    note: str = ""
    bounded_cycles: int = 0  # cycles after reset checked without a mismatch
    counterexample: Counterexample | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "note": self.note,
        }


def run_equivalence(ctx: RtlContext) -> StageResult:
    """Prove, bound or refute ``ctx.candidate_source`` against the original (see module docstring)."""
    start = time.monotonic()
    workdir = ctx.workdir / "equivalence"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ORIGINAL).write_text(ctx.original_source)
    (workdir / CANDIDATE).write_text(ctx.candidate_source)
    checker = _Checker(ctx, workdir)

    problem = checker.load()
    if problem is not None:
        return problem
    attempts: list[Attempt] = [checker.structural()]
    for step in checker.plan():
        if attempts[-1].outcome in ("proven", "disproven"):
            break
        if checker.spent:
            attempts.append(Attempt(step.__name__, "timeout", 0.0, "the stage's time budget is spent"))
            break
        if step == checker.bmc and max(a.bounded_cycles for a in attempts) >= ctx.settings.bmc_depth:
            continue
        attempts.append(step())
    return _result(ctx, attempts, time.monotonic() - start, checker)


class _Checker:
    """Runs the attempts of one candidate in ``workdir``."""

    def __init__(self, ctx: RtlContext, workdir: Path) -> None:
        self.ctx = ctx
        self.workdir = workdir
        self.yosys = Yosys()
        self.per_attempt = ctx.settings.equivalence_timeout_s
        self.deadline = time.monotonic() + ctx.settings.equivalence_budget_s
        self.top = ctx.top
        self.reset = ctx.interface.reset
        self.active_low = ctx.interface.reset_active_low
        self.clock = ctx.interface.clock
        self.has_state = False
        self.logs: list[str] = []

    @property
    def timeout(self) -> float:
        """This attempt's limit: the per-attempt limit, cut to what is left of the stage's budget."""
        return max(1.0, min(self.per_attempt, self.deadline - time.monotonic()))

    @property
    def spent(self) -> bool:
        return self.deadline - time.monotonic() < 1.0

    def _run(self, script: str, name: str) -> YosysRun:
        run = self.yosys.run_script(script, cwd=self.workdir, timeout=self.timeout, name=name)
        self.logs.append(
            f"== {name}: {'timeout' if run.timed_out else 'ok' if run.ok else 'failed'} ({run.seconds:.1f} s)"
        )
        return run

    def load(self) -> StageResult | None:
        """Load both designs; a rejection or verifier error when that fails, else None."""
        start = time.monotonic()
        run = self._run(scripts.candidate_load_script(CANDIDATE, self.top), "load_candidate")
        if not run.ok and not run.timed_out:
            return self._unloadable(run, start, candidate=True)
        run = self._run(scripts.check_script(ORIGINAL, CANDIDATE, self.top), "load")
        if not run.ok and not run.timed_out:
            return self._unloadable(run, start, candidate=False)
        listing = self.workdir / scripts.FF_LIST_FILE
        cells = listing.read_text().split() if listing.exists() else []
        self.has_state = any("/" in cell for cell in cells) or run.timed_out
        return None

    def plan(self) -> list[Callable[[], Attempt]]:
        """The attempts after the structural one, strongest-per-second first."""
        if not self.has_state:
            return [self.combinational_sat, self.abc]
        steps: list[Callable[[], Attempt]] = [self.induction]
        if self.reset and self.clock:
            steps.append(self.pdr)
        if self.reset:
            steps.append(self.bmc)
        return steps

    def _unloadable(self, run: YosysRun, start: float, *, candidate: bool) -> StageResult:
        error = run.error
        if "is not part of the design" in error:
            why = "it instantiates a module that is not defined (hierarchy -check)"
        elif "selection is not empty" in error:
            why = "it keeps black-box instances after flattening (a module without a body)"
        else:
            why = "yosys could not load it"
        who = "candidate" if candidate else "original"
        detail = f"{who} cannot be checked for equivalence: {why}\n{error}"
        return StageResult(
            name=STAGE,
            ok=False,
            seconds=time.monotonic() - start,
            detail=detail,
            log=run.log,
            error=not candidate,  # an original that does not load is the verifier's problem
            data={"attempts": [Attempt("load", "error", run.seconds, why).to_dict()]},
        )

    def structural(self) -> Attempt:
        seq = self.ctx.settings.induction_depth
        script = scripts.structural_script(
            ORIGINAL, CANDIDATE, self.top, seq, self.has_state, self.reset, self.active_low
        )
        run = self._run(script, "structural")
        if run.timed_out:
            return Attempt("structural", "timeout", run.seconds, f"timed out after {self.timeout:g} s")
        found = re.search(r"Found (\d+) \$equiv cells", run.log)
        proven = "Equivalence successfully proven!" in run.log
        if run.ok and found and int(found.group(1)) > 0 and proven:
            cells = f"{found.group(1)} $equiv cells proven"
            if not self.has_state:
                return Attempt("structural", "proven", run.seconds, cells)
            if "no model found: SUCCESS!" in run.log:
                base = "from reset" if self.reset else "from every initial state"
                note = f"{cells}; base case {base} over {seq} cycles proven"
                return Attempt("structural", "proven", run.seconds, note)
            return Attempt(
                "structural",
                "unknown",
                run.seconds,
                f"{cells}, but only as a weak equivalence (equiv_induct): the matched signals are not "
                f"shown equal for the first {seq} cycles after reset",
            )
        unproven = re.search(r"Of those cells (\d+) are proven and (\d+) are unproven", run.log)
        note = (
            f"{unproven.group(2)} $equiv cells unproven"
            if unproven
            else run.error
            if not run.ok
            else "no verdict"
        )
        return Attempt("structural", "unknown" if run.ok else "error", run.seconds, note)

    def combinational_sat(self) -> Attempt:
        ports = self.ctx.interface.ports
        cases = scripts.split_cases(self.ctx.interface.data_inputs)
        script, wrappers, split = scripts.combinational_sat_script(
            ORIGINAL, CANDIDATE, self.top, ports, cases
        )
        (self.workdir / "cases.v").write_text(wrappers)
        run = self._run(script, "sat")
        split_note = f"{len(split)} cofactors" if len(split) > 1 else "one miter"
        if run.timed_out:
            return Attempt(
                "sat", "timeout", run.seconds, f"sat timed out after {self.timeout:g} s ({split_note})"
            )
        passed = run.log.count("no model found: SUCCESS!")
        if "model found: FAIL!" in run.log and passed < len(split):
            widths = {p.name: p.width for p in ports}
            fixed = {k: f"{widths[k]}'d{v}" for k, v in split[passed].fixed.items()}
            cex = from_model(parse_sat_model(run.log), outputs=self._outputs(), fixed=fixed)
            return Attempt("sat", "disproven", run.seconds, "SAT found a counterexample", counterexample=cex)
        if run.ok and passed == len(split):
            return Attempt("sat", "proven", run.seconds, split_note)
        return Attempt("sat", "error", run.seconds, run.error)

    def abc(self) -> Attempt:
        start = time.monotonic()
        run = self._run(scripts.abc_export_script(ORIGINAL, CANDIDATE, self.top, "miter.aig"), "abc_export")
        if not run.ok:
            outcome = "timeout" if run.timed_out else "error"
            return Attempt("abc", outcome, run.seconds, f"AIGER export: {run.error}")
        left = max(1.0, self.timeout - run.seconds)
        result = YosysAbc().run(["-c", scripts.abc_cec_command("miter.aig")], cwd=self.workdir, timeout=left)
        seconds = time.monotonic() - start
        self.logs.append(f"== abc: {result.output[-2000:]}")
        if result.timed_out:
            return Attempt("abc", "timeout", seconds, f"abc timed out after {self.timeout:g} s")
        if "Networks are equivalent" in result.stdout:
            return Attempt("abc", "proven", seconds, "&cec: equivalent")
        if "NOT EQUIVALENT" in result.stdout.upper():
            # two-valued, with the original's don't-cares fixed to 0: a hint, not a disproof
            return Attempt("abc", "unknown", seconds, "&cec reports a difference under two-valued semantics")
        return Attempt("abc", "error", seconds, result.output.strip()[-300:])

    def _outputs(self) -> list[str]:
        return [p.name for p in self.ctx.interface.outputs]

    def _sequential_cex(self, run: YosysRun) -> Counterexample | None:
        note = "" if self.reset else "no reset: the initial state is undefined"
        skip = tuple(n for n in (self.ctx.interface.clock,) if n)
        model = parse_sat_model(run.log)
        return from_model(
            model, outputs=self._outputs(), skip_inputs=skip, reset_first=bool(self.reset), note=note
        )

    def induction(self) -> Attempt:
        steps = self.ctx.settings.induction_depth
        script = scripts.induction_script(ORIGINAL, CANDIDATE, self.top, self.reset, self.active_low, steps)
        run = self._run(script, "induction")
        if run.timed_out:
            return Attempt("induction", "timeout", run.seconds, f"sat timed out after {self.timeout:g} s")
        if "Induction step proven: SUCCESS!" in run.log:
            return Attempt("induction", "proven", run.seconds, "induction step proven")
        if "model found for base case: FAIL!" in run.log:
            cex = self._sequential_cex(run)
            return Attempt("induction", "disproven", run.seconds, "base case failed", counterexample=cex)
        if "Reached maximum number of time steps" in run.log:
            base = re.findall(r"Base case for induction length (\d+) proven", run.log)
            cycles = max(0, int(base[-1]) - 1) if base and self.reset else 0
            note = f"no inductive proof within {steps} steps"
            if not self.reset:
                note += " (no reset: the initial state is unknown, only induction can prove it)"
            return Attempt("induction", "unknown", run.seconds, note, bounded_cycles=cycles)
        return Attempt("induction", "error", run.seconds, run.error)

    def pdr(self) -> Attempt:
        """ABC's property-directed reachability from the post-reset state: proves, never refutes."""
        assert self.reset is not None and self.clock is not None
        start = time.monotonic()
        script = scripts.pdr_export_script(
            ORIGINAL, CANDIDATE, self.top, self.clock, self.reset, self.active_low, "pdr.aig"
        )
        run = self._run(script, "pdr_export")
        if not run.ok:
            if run.timed_out:
                return Attempt("pdr", "timeout", run.seconds, "AIGER export timed out")
            if "select -assert-none" in run.log and "ERROR" in run.log:
                return Attempt("pdr", "unknown", run.seconds, "some registers are undefined after reset")
            return Attempt("pdr", "error", run.seconds, f"AIGER export: {run.error}")
        left = max(1.0, self.timeout - run.seconds)
        result = YosysAbc().run(["-c", scripts.pdr_command("pdr.aig")], cwd=self.workdir, timeout=left)
        seconds = time.monotonic() - start
        self.logs.append(f"== pdr: {result.output[-2000:]}")
        if result.timed_out:
            return Attempt("pdr", "timeout", seconds, f"pdr timed out after {self.timeout:g} s")
        if "Property proved" in result.stdout:
            return Attempt("pdr", "proven", seconds, "invariant found from the reset state")
        if "was asserted in frame" in result.stdout:
            # two-valued, with the original's undefined constants fixed to 0: a hint, not a disproof
            return Attempt("pdr", "unknown", seconds, "pdr reports a difference under two-valued semantics")
        return Attempt("pdr", "error", seconds, result.output.strip()[-300:])

    def bmc(self) -> Attempt:
        depth = self.ctx.settings.bmc_depth
        script = scripts.bmc_script(ORIGINAL, CANDIDATE, self.top, self.reset, self.active_low, depth + 1)
        run = self._run(script, "bmc")
        if run.timed_out:
            return Attempt("bmc", "timeout", run.seconds, f"bounded check timed out after {self.timeout:g} s")
        if "no model found: SUCCESS!" in run.log:
            return Attempt(
                "bmc", "unknown", run.seconds, f"passed {depth} cycles from reset", bounded_cycles=depth
            )
        if "model found: FAIL!" in run.log:
            cex = self._sequential_cex(run)
            return Attempt("bmc", "disproven", run.seconds, "mismatch within the bound", counterexample=cex)
        return Attempt("bmc", "error", run.seconds, run.error)


def _result(ctx: RtlContext, attempts: list[Attempt], seconds: float, checker: _Checker) -> StageResult:
    data: dict[str, Any] = {"attempts": [a.to_dict() for a in attempts]}
    last = attempts[-1]
    log_text = "\n".join(checker.logs)
    if last.outcome == "disproven":
        data["method"] = last.method
        cex = last.counterexample
        data["counterexample"] = cex.to_dict() if cex else None
        text = cex.describe() if cex else "(no counterexample could be read from the log)"
        detail = f"disproven by {LABELS[last.method]} ({last.seconds:.1f} s): {text}"
        return StageResult(name=STAGE, ok=False, seconds=seconds, detail=detail, log=log_text, data=data)
    unmodelled = lockstep_gap(ctx) if last.outcome == "proven" else None
    if unmodelled is not None:  # a proof of a model that is not the designs: evidence as without one
        assurance, why = label_without_proof(ctx, 0)
        data.update(assurance=str(assurance), assurance_why=why, method=None, unmodelled=unmodelled)
        detail = (
            f"{LABELS[last.method]} proved it stepping every flop together, which models neither design "
            f"({unmodelled}); not a proof → {assurance} ({why})"
        )
        return StageResult(name=STAGE, ok=True, seconds=seconds, detail=detail, log=log_text, data=data)
    if last.outcome == "proven":
        data.update(assurance="proven", method=last.method)
        detail = f"proven by {LABELS[last.method]} ({last.seconds:.1f} s)"
        return StageResult(name=STAGE, ok=True, seconds=seconds, detail=detail, log=log_text, data=data)
    notes = "; ".join(
        f"{a.method}: {a.outcome} ({a.note})" if a.note else f"{a.method}: {a.outcome}" for a in attempts
    )
    # a bounded check shares the formal model: it says nothing when that model is not the designs'
    bounded = max(a.bounded_cycles for a in attempts) if lockstep_gap(ctx) is None else 0
    assurance, why = label_without_proof(ctx, bounded)
    best = max(attempts, key=lambda a: a.bounded_cycles)
    data.update(
        assurance=str(assurance), assurance_why=why, method=best.method if best.bounded_cycles else None
    )
    detail = f"inconclusive: {notes} → {assurance} ({why})"
    log.info("equivalence of %s: %s", ctx.top, data["assurance"])
    return StageResult(name=STAGE, ok=True, seconds=seconds, detail=detail, log=log_text, data=data)


def lockstep_gap(ctx: RtlContext) -> str | None:
    """Why Yosys's formal model (each flop updates once per step, clocks ignored) is not the designs':
    several clocks, both edges of one, a clock from logic, latches — or None when one edge of one
    input clocks every flop of both (or there is no state)."""
    if not ctx.interface.sequential:
        return None
    horizon = horizon_for(ctx)
    return single_clock(horizon.original, horizon.candidate)


def label_without_proof(ctx: RtlContext, bounded_cycles: int) -> tuple[Assurance, str]:
    """The assurance of a candidate that formal did not prove or refute, and why.

    A bounded check of N cycles is ``bounded(N)`` only when N reaches the state horizon of the two
    designs (:mod:`evoforge.verifiers.rtl.horizon`); else the simulate stage's uninterrupted cycles
    (``ctx.artifacts["simulated_cycles"]``) make it ``simulated(N)`` when they reach the horizon, and
    ``sampled(N)`` when nothing does.
    """
    horizon = horizon_for(ctx) if ctx.interface.sequential else None
    simulated = int(ctx.artifacts.get("simulated_cycles", 0))
    if horizon is None:  # combinational: no state, nothing hides in time
        if bounded_cycles > 0:
            return Assurance.bounded(bounded_cycles), "no state"
        return Assurance.simulated(simulated), "combinational: no state for a difference to hide in"
    reach = f"state horizon {horizon.describe()}"
    if bounded_cycles > 0 and horizon.covered_by(bounded_cycles):
        return Assurance.bounded(bounded_cycles), f"the bounded check reaches the {reach}"
    if horizon.covered_by(simulated):
        return Assurance.simulated(simulated), f"the simulation reaches the {reach}"
    shown = f"bounded check {bounded_cycles} cycles, " if bounded_cycles else ""
    return (
        Assurance.sampled(simulated),
        f"{shown}simulation {simulated} cycles: neither reaches the {reach}; a longer run could differ",
    )
