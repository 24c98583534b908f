"""The RTL cascade, declared once as data, and the verifier object that runs it.

``RTL_CASCADE`` lists the stages in order (names are the contract of DESIGN.md). ``RtlVerifier``
holds what is computed once per target (the liberty, the original's probe trace and metrics) and
runs the cascade on a candidate, stopping at the first failure. It reports each stage as it ends
(``on_stage``) so the caller can store it, and reuses synthesis-dependent results for an
implementation hash it has seen (``implementation_cache``). A draft whose quick check passed keeps
its front results (parse, lint, interface: the same stage functions on the same text, with this
verifier's settings) and what they left for later stages, so ``verify`` of that exact source does
not run them a second time; they are reported as reused (``cached``, 0 s, "from the quick check").
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evoforge.config import RtlSettings
from evoforge.domain import Assurance, StageResult, Target, Verdict, VerdictContext
from evoforge.errors import TargetError, VerifierError
from evoforge.tools.liberty import Liberty
from evoforge.verifiers.rtl.context import RtlContext
from evoforge.verifiers.rtl.equivalence import run_equivalence
from evoforge.verifiers.rtl.front import run_interface, run_lint, run_parse
from evoforge.verifiers.rtl.simulate import reference_probe, run_simulate
from evoforge.verifiers.rtl.synthesis import run_synthesis
from evoforge.verifiers.rtl.timing import run_timing
from evoforge.verifiers.runner import merged_metrics, remember_stages, reused_stage, run_stage
from evoforge.verifiers.verdict_context import rtl_verdict_context

log = logging.getLogger(__name__)

StageFn = Callable[[RtlContext], StageResult]
StageCallback = Callable[[StageResult], None]

RTL_CASCADE: tuple[tuple[str, StageFn], ...] = (
    ("parse", run_parse),
    ("lint", run_lint),
    ("interface", run_interface),
    ("simulate", run_simulate),
    ("equivalence", run_equivalence),
    ("synthesis", run_synthesis),
    ("timing", run_timing),
)
#: stages whose result depends only on the synthesised implementation (reusable by its hash)
IMPLEMENTATION_STAGES = ("timing",)
#: the cheap front stages an agent may run on a draft before handing it over (``quick_check``)
QUICK_STAGES = ("parse", "lint", "interface")
#: the stages that measure the original (its own simulation and equivalence are trivially exact)
BASELINE_STAGES = ("parse", "lint", "synthesis", "timing")
#: passed quick checks kept for ``verify`` (most recent first out); drafts are verified soon after
FRONT_CACHE_SIZE = 64


@dataclass(frozen=True)
class _Front:
    """A passed quick check: its stage results and what they left for the later stages."""

    results: tuple[StageResult, ...]
    elaborated_text: str
    artifacts: dict[str, Any]


@dataclass
class RtlVerifier:
    target: Target
    settings: RtlSettings
    liberty: Liberty
    work_root: Path
    keep_workdirs: bool = False
    reference: dict[str, Any] = field(default_factory=dict)
    implementation_cache: dict[str, dict[str, StageResult]] = field(default_factory=dict)
    implementation_stages: tuple[str, ...] = IMPLEMENTATION_STAGES
    shared_dir: Path | None = None  # tool artefacts built once for every job (Verilator's runtime)
    front_cache: OrderedDict[str, _Front] = field(default_factory=OrderedDict)  # by exact text
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verdict_context(self) -> VerdictContext:
        """Every setting a cached verdict depends on (tools, liberty, clock/reset, every knob, the
        required assurance, the user's test by content); see :mod:`evoforge.verifiers.verdict_context`."""
        return rtl_verdict_context(self.target, self.settings, self.liberty.content_hash)

    def _context(self, source: str, workdir: Path) -> RtlContext:
        return RtlContext(
            target=self.target,
            candidate_source=source,
            workdir=workdir,
            settings=self.settings,
            liberty_path=self.liberty.path,
            reference=self.reference,
            cache_dir=self.shared_dir or self.work_root / "shared",
        )

    def _workdir(self, label: str) -> Path:
        self.work_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.work_root))

    def baseline(self) -> Verdict:
        """Measure the original. A target that fails its own parse/lint/synthesis is bad input."""
        workdir = self._workdir("original")
        ctx = self._context(self.target.source, workdir)
        results: list[StageResult] = []
        try:
            for name, fn in RTL_CASCADE:
                if name not in BASELINE_STAGES:
                    continue
                result = run_stage(name, fn, ctx)
                results.append(result)
                if not result.ok and result.error:  # a missing or crashing tool: not the design's fault
                    raise VerifierError(
                        f"the verifier failed on the original design at its {name} stage: {result.detail}",
                        hint="check the tool named above (installed, runnable), then try again",
                    )
                if not result.ok:
                    raise TargetError(
                        f"the original design fails its own {name} stage: {result.detail}",
                        hint="fix the design (or pass the right --top / --clock / --reset) and try again",
                    )
            if self.target.rtl is not None and self.target.rtl.outputs:
                try:  # the probe every candidate is compared with; a trace that shows nothing is refused
                    reference_probe(ctx)
                except VerifierError as exc:
                    raise TargetError(
                        exc.message,
                        hint=exc.hint
                        or "pass the right --clock / --reset / --reset-active-low and try again",
                    ) from exc
        finally:
            self._cleanup(workdir)
        metrics = merged_metrics(results)
        return Verdict(
            accepted=True,
            stage=results[-1].name,
            reason="original design",
            metrics=metrics,
            stages=tuple(results),
            assurance=Assurance.proven(),
            implementation_hash=ctx.artifacts.get("implementation_hash"),
        )

    def verify(self, source: str, *, on_stage: StageCallback | None = None, label: str = "cand") -> Verdict:
        """Run the cascade on ``source``; never raises for a bad candidate (that is a rejection)."""
        workdir = self._workdir(label)
        ctx = self._context(source, workdir)
        results: list[StageResult] = []
        front = self._front(source, ctx)
        try:
            for name, fn in RTL_CASCADE:
                result = front.get(name) or self._cached_stage(name, ctx) or run_stage(name, fn, ctx)
                results.append(result)
                if on_stage is not None:
                    on_stage(result)
                if not result.ok:
                    break
        finally:
            self._cleanup(workdir)
        verdict = self._verdict(results, ctx)
        impl = verdict.implementation_hash
        if verdict.accepted:
            remember_stages(self.implementation_cache, self._lock, impl, results, self.implementation_stages)
        return verdict

    def quick_check(self, source: str) -> StageResult:
        """Only the cheap front stages (parse, lint, interface); the last one run, failed or ok.

        What the LLM agents use to repair a draft before the search loop spends the full cascade on it.
        """
        workdir = self._workdir("quick")
        ctx = self._context(source, workdir)
        result = StageResult("parse", False, 0.0, detail="no stage ran", error=True)
        results: list[StageResult] = []
        try:
            for name, fn in RTL_CASCADE:
                if name in QUICK_STAGES:
                    result = run_stage(name, fn, ctx)
                    results.append(result)
                    if not result.ok:
                        break
        finally:
            self._cleanup(workdir)
        if len(results) == len(QUICK_STAGES) and all(r.ok and not r.error for r in results):
            front = _Front(tuple(results), ctx.candidate_source, dict(ctx.artifacts))
            with self._lock:
                self.front_cache[_exact_hash(source)] = front
                while len(self.front_cache) > FRONT_CACHE_SIZE:
                    self.front_cache.popitem(last=False)
        return result

    def _front(self, source: str, ctx: RtlContext) -> dict[str, StageResult]:
        """The passed quick check of exactly ``source`` by this verifier, put in place in ``ctx``
        (the elaborated text and the front's artifacts) and marked as reused; {} when there is none."""
        with self._lock:
            front = self.front_cache.pop(_exact_hash(source), None)
        if front is None:
            return {}
        ctx.candidate_source = front.elaborated_text
        ctx.artifacts.update(front.artifacts)
        return {
            r.name: replace(r, seconds=0.0, cached=True, detail=f"{r.detail} (from the quick check, reused)")
            for r in front.results
        }

    def _cached_stage(self, name: str, ctx: RtlContext) -> StageResult | None:
        if name not in self.implementation_stages:
            return None
        return reused_stage(
            self.implementation_cache, self._lock, ctx.artifacts.get("implementation_hash"), name
        )

    def _verdict(self, results: list[StageResult], ctx: RtlContext) -> Verdict:
        last = results[-1]
        functional = ctx.artifacts.get("functional_hash")
        impl = ctx.artifacts.get("implementation_hash")
        metrics = merged_metrics(results)
        if last.error:
            return Verdict(
                False,
                last.name,
                f"verifier error in {last.name}: {last.detail}",
                metrics,
                tuple(results),
                None,
                functional,
                impl,
                error=True,
            )
        if not last.ok:
            return Verdict(False, last.name, last.detail, metrics, tuple(results), None, functional, impl)
        assurance = _assurance_of(results)
        minimum = self.settings.minimum_assurance
        if not assurance.satisfies(minimum):
            reason = f"assurance {assurance} is below the required {minimum}"
            equivalence = next((r for r in results if r.name == "equivalence"), None)
            if equivalence is not None and equivalence.data.get("assurance_why"):
                reason += f" ({equivalence.data['assurance_why']})"
            if assurance.level == "sampled":
                reason += "; --assurance sampled accepts such candidates"
            return Verdict(False, "equivalence", reason, metrics, tuple(results), assurance, functional, impl)
        reason = f"accepted ({assurance})"
        return Verdict(True, last.name, reason, metrics, tuple(results), assurance, functional, impl)

    def _cleanup(self, workdir: Path) -> None:
        if not self.keep_workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


def _assurance_of(results: list[StageResult]) -> Assurance:
    for result in results:
        if result.name == "equivalence" and "assurance" in result.data:
            return Assurance.parse(str(result.data["assurance"]))
    return Assurance.sampled()


def _exact_hash(source: str) -> str:
    """sha256 of the text exactly as given (no normalisation: the front results are of this text)."""
    return hashlib.sha256(source.encode()).hexdigest()
