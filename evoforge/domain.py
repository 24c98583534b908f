"""Plain, frozen data types that every room of evoforge shares (stdlib only).

``Target`` is what the user hands in, ``Candidate`` a proposed rewrite, ``StageResult`` one verifier
stage's outcome, ``Verdict`` the outcome of a whole cascade, ``Metrics`` the measured costs (units in
the names; ``None`` means not measured, never a sentinel number) and ``Objective`` what the search
minimises. ``Assurance`` says how strongly an accepted RTL candidate was shown equal to the original;
``VerdictContext`` lists every setting a verdict depends on (part of every cache key).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tokenize
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal


class TargetKind(StrEnum):
    RTL = "rtl"
    KERNEL = "kernel"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CandidateStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERROR = "error"  # the verifier failed; never counted as a rejection of the candidate


RTL_STAGES: tuple[str, ...] = (
    "parse",
    "lint",
    "interface",
    "simulate",
    "equivalence",
    "synthesis",
    "timing",
)
KERNEL_STAGES: tuple[str, ...] = ("static", "compile", "correctness", "resources", "benchmark")


# ---------------------------------------------------------------------------------------------
# Metrics and objectives


@dataclass(frozen=True)
class Metrics:
    """Measured costs. ``None`` = not measured (or not measurable here)."""

    area_um2: float | None = None
    cells: int | None = None
    depth: int | None = None
    delay_ns: float | None = None
    runtime_ms: float | None = None
    speedup: float | None = None
    registers: int | None = None
    spills: int | None = None
    shared_bytes: int | None = None

    def to_dict(self) -> dict[str, float | int]:
        """Only the measured values, by metric name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Metrics:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known and v is not None})

    def merged(self, other: Metrics) -> Metrics:
        """``self`` with every value that ``other`` measured replaced by ``other``'s."""
        updates: dict[str, Any] = dict(other.to_dict())
        return replace(self, **updates)


class Objective(StrEnum):
    """A cost the search minimises (``speedup`` is maximised; see ``minimise``)."""

    AREA = "area_um2"
    DELAY = "delay_ns"
    CELLS = "cells"
    DEPTH = "depth"
    RUNTIME = "runtime_ms"

    @property
    def minimise(self) -> bool:
        return True

    @classmethod
    def named(cls, name: str) -> Objective | None:
        """The objective a user means by ``name``: a short alias (``area``) or the metric (``area_um2``)."""
        short = {o.value.split("_")[0]: o for o in cls}
        return short.get(name) or next((o for o in cls if o.value == name), None)

    def value_of(self, metrics: Metrics) -> float | None:
        """The cost to minimise. Kernel runtime is relative: the candidate's time over torch eager's
        measured in the same run on the same device (1 / speedup) — never milliseconds from two runs."""
        if self is Objective.RUNTIME and (metrics.speedup is not None or metrics.runtime_ms is not None):
            return None if not metrics.speedup else 1.0 / float(metrics.speedup)
        value = getattr(metrics, self.value)
        return None if value is None else float(value)


DEFAULT_RTL_OBJECTIVES: tuple[Objective, ...] = (Objective.AREA, Objective.DELAY)
DEFAULT_KERNEL_OBJECTIVES: tuple[Objective, ...] = (Objective.RUNTIME,)

#: metrics where smaller is better; ``improvement`` = original / candidate for these.
COST_METRICS: tuple[str, ...] = ("area_um2", "cells", "depth", "delay_ns", "runtime_ms")


def improvement(baseline: Metrics, candidate: Metrics) -> dict[str, float]:
    """original/candidate for each cost both measured (2.0 = half the cost); bigger is better.

    Kernel runtime is the exception: times from two processes (or a CPU and a GPU) are never
    divided. Its improvement is the ratio of the two same-run speed-ups over torch eager (the
    original's is 1.0), and it is absent when either was not measured.
    """
    out: dict[str, float] = {}
    for name in COST_METRICS:
        base, cand = getattr(baseline, name), getattr(candidate, name)
        if name == "runtime_ms" and (baseline.speedup is not None or candidate.speedup is not None):
            if baseline.speedup and candidate.speedup:
                out[name] = round(float(candidate.speedup) / float(baseline.speedup), 6)
            continue
        if base is None or cand is None:
            continue
        if cand > 0:
            out[name] = round(float(base) / float(cand), 6)
    if candidate.speedup is not None:
        out["speedup"] = candidate.speedup
    return out


# ---------------------------------------------------------------------------------------------
# Assurance


@dataclass(frozen=True, order=True)
class Assurance:
    """How strongly an accepted RTL candidate was shown equal to its original.

    Ordered: ``sampled(N)`` < ``simulated(N)`` < ``bounded(N)`` (larger N stronger) < ``proven``.

    - ``proven``: a formal proof over every state reachable from reset (or every state).
    - ``bounded(N cycles)``: no input sequence makes the outputs differ within N cycles of reset
      (bounded model check), and N reaches the design's state horizon (see
      :mod:`evoforge.verifiers.rtl.horizon`); nothing stronger in time.
    - ``simulated(N cycles)``: formal gave no such result; every seed of the simulation ran N cycles
      after reset without another reset, and N reaches the design's state horizon.
    - ``sampled(N cycles)``: neither reaches the horizon (N is the longest uninterrupted simulation);
      what a longer run would show is unknown. Not enough for the default requirement (``simulated``).

    ``cycles`` is 0 when a label is written without a count (``simulated`` as a requirement means
    any count that reaches the horizon).
    """

    rank: int
    cycles: int = 0

    SAMPLED_RANK = 0
    SIMULATED_RANK = 1
    BOUNDED_RANK = 2
    PROVEN_RANK = 3
    LEVELS = ("sampled", "simulated", "bounded", "proven")

    @classmethod
    def sampled(cls, cycles: int = 0) -> Assurance:
        return cls(cls.SAMPLED_RANK, cycles)

    @classmethod
    def simulated(cls, cycles: int = 0) -> Assurance:
        return cls(cls.SIMULATED_RANK, cycles)

    @classmethod
    def bounded(cls, cycles: int) -> Assurance:
        return cls(cls.BOUNDED_RANK, cycles)

    @classmethod
    def proven(cls) -> Assurance:
        return cls(cls.PROVEN_RANK)

    @property
    def level(self) -> Literal["sampled", "simulated", "bounded", "proven"]:
        levels: tuple[Literal["sampled", "simulated", "bounded", "proven"], ...] = (
            "sampled",
            "simulated",
            "bounded",
            "proven",
        )
        return levels[self.rank]

    def __str__(self) -> str:
        if self.rank == self.PROVEN_RANK or (self.cycles == 0 and self.rank != self.BOUNDED_RANK):
            return self.level
        return f"{self.level}({self.cycles} cycles)"

    def satisfies(self, minimum: Assurance) -> bool:
        """True when this level is at least ``minimum`` (same level: compares cycle counts)."""
        return self >= minimum

    @classmethod
    def parse(cls, text: str) -> Assurance:
        """Parse ``proven``, ``bounded(20)``, ``simulated``, ``sampled(4096 cycles)`` and the like."""
        text = text.strip().lower()
        if text == "proven":
            return cls.proven()
        match = re.fullmatch(r"(sampled|simulated|bounded)(?:\((\d+)(?:\s*cycles?)?\))?", text)
        if match:
            rank = cls.LEVELS.index(match.group(1))
            default = 1 if rank == cls.BOUNDED_RANK else 0
            return cls(rank, int(match.group(2) or default))
        raise ValueError(f"unknown assurance level {text!r}: use sampled, simulated, bounded(N) or proven")


# ---------------------------------------------------------------------------------------------
# Verdict context


@dataclass(frozen=True)
class VerdictContext:
    """Every setting that can change a verdict or a metric, as one frozen value.

    Cache entries are keyed by ``digest()`` (with the target fingerprint and a hash), so a verdict
    reached under other tools, liberty, clock/reset, simulation lengths, formal budgets, requirement,
    user test or (for timings) machine is never reused. ``settings`` holds every knob of the
    verifier's settings (a new knob joins the key by itself); ``requirement`` is what an accepted
    verdict must meet (RTL: the minimum assurance); ``user_test_sha256`` is the content of the user's
    own test; ``machine`` identifies where timings were taken (``None``: no metric depends on it).
    """

    kind: TargetKind
    tools: tuple[tuple[str, str], ...]
    settings: tuple[tuple[str, str], ...]
    requirement: str = ""
    user_test_sha256: str | None = None
    machine: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "tools": dict(self.tools),
            "settings": dict(self.settings),
            "requirement": self.requirement,
            "user_test_sha256": self.user_test_sha256,
            "machine": self.machine,
        }

    def digest(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict` (equal contexts, equal digests)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def setting(self, name: str) -> str | None:
        return dict(self.settings).get(name)


# ---------------------------------------------------------------------------------------------
# Targets and candidates


@dataclass(frozen=True)
class SourceFile:
    name: str
    text: str


@dataclass(frozen=True)
class Port:
    name: str
    direction: Literal["input", "output", "inout"]
    width: int
    signed: bool = False


@dataclass(frozen=True)
class ClockSignal:
    """A top-level input that clocks flops, and the edges the flops use."""

    port: str
    edges: tuple[Literal["posedge", "negedge"], ...] = ("posedge",)
    flop_bits: int = 0  # flop (and memory) bits it clocks; 0 when given by the user and not seen


@dataclass(frozen=True)
class ResetSignal:
    """A top-level input that forces flops to their reset state, with its active level."""

    port: str
    active_low: bool = False
    asynchronous: bool | None = None  # None: not seen in the logic (named by the user only)
    clock: str | None = None  # the clock domain of most of the flops it resets
    flop_bits: int = 0


@dataclass(frozen=True)
class RtlInterface:
    """What a candidate must keep: the top's ports, and which are clocks and resets.

    ``clocks``/``resets`` list every clock and reset (the first is the main one); ``clock``, ``reset``
    and ``reset_active_low`` are the main ones, kept for callers that know one domain. Either form may
    be given; ``__post_init__`` fills in the other. ``notes`` say how they were found (from the logic,
    from a flag, or guessed from a name).
    """

    top: str
    ports: tuple[Port, ...]
    clock: str | None = None
    reset: str | None = None
    reset_active_low: bool = False
    clocks: tuple[ClockSignal, ...] = ()
    resets: tuple[ResetSignal, ...] = ()
    # how clocks/resets were found: shown to people, not part of the identity (nor of fingerprints)
    notes: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.clocks:
            if self.clock is None:
                object.__setattr__(self, "clock", self.clocks[0].port)
            elif self.clock != self.clocks[0].port:
                raise ValueError(f"clock {self.clock!r} is not the first of clocks {self.clock_ports}")
        elif self.clock is not None:
            object.__setattr__(self, "clocks", (ClockSignal(self.clock),))
        if self.resets:
            first = self.resets[0]
            if self.reset is None:
                object.__setattr__(self, "reset", first.port)
                object.__setattr__(self, "reset_active_low", first.active_low)
            elif self.reset != first.port or self.reset_active_low != first.active_low:
                raise ValueError(f"reset {self.reset!r} is not the first of resets {self.reset_ports}")
        elif self.reset is not None:
            object.__setattr__(self, "resets", (ResetSignal(self.reset, self.reset_active_low),))

    @property
    def inputs(self) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.direction == "input")

    @property
    def outputs(self) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.direction == "output")

    @property
    def clock_ports(self) -> tuple[str, ...]:
        return tuple(c.port for c in self.clocks)

    @property
    def reset_ports(self) -> tuple[str, ...]:
        return tuple(r.port for r in self.resets)

    @property
    def data_inputs(self) -> tuple[Port, ...]:
        """Inputs other than the clocks and resets."""
        special = set(self.clock_ports) | set(self.reset_ports)
        return tuple(p for p in self.inputs if p.name not in special)

    @property
    def sequential(self) -> bool:
        return self.clock is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (:meth:`from_dict` reads it back)."""
        return {
            "top": self.top,
            "ports": [
                {"name": p.name, "direction": p.direction, "width": p.width, "signed": p.signed}
                for p in self.ports
            ],
            "clocks": [
                {"port": c.port, "edges": list(c.edges), "flop_bits": c.flop_bits} for c in self.clocks
            ],
            "resets": [
                {
                    "port": r.port,
                    "active_low": r.active_low,
                    "asynchronous": r.asynchronous,
                    "clock": r.clock,
                    "flop_bits": r.flop_bits,
                }
                for r in self.resets
            ],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RtlInterface:
        ports = tuple(
            Port(p["name"], p["direction"], int(p["width"]), bool(p.get("signed", False)))
            for p in data["ports"]
        )
        if "clocks" not in data:  # the older single-domain form
            return cls(
                data["top"], ports, data.get("clock"), data.get("reset"), bool(data.get("reset_active_low"))
            )
        clocks = tuple(
            ClockSignal(c["port"], tuple(c.get("edges") or ("posedge",)), int(c.get("flop_bits", 0)))
            for c in data["clocks"]
        )
        resets = tuple(
            ResetSignal(
                r["port"],
                bool(r.get("active_low")),
                r.get("asynchronous"),
                r.get("clock"),
                int(r.get("flop_bits", 0)),
            )
            for r in data["resets"]
        )
        return cls(data["top"], ports, clocks=clocks, resets=resets, notes=tuple(data.get("notes", ())))


@dataclass(frozen=True)
class Target:
    """What the user hands in: the original design or problem."""

    kind: TargetKind
    name: str
    sources: tuple[SourceFile, ...]
    rtl: RtlInterface | None = None
    user_test: str | None = None  # path of an optional user cocotb test module (RTL)
    kernel_summary: dict[str, Any] | None = None  # kernels: the traced reference (fx_summary.summarise)

    @property
    def source(self) -> str:
        """All sources concatenated (the form a candidate replaces)."""
        return "\n".join(s.text for s in self.sources)

    @property
    def fingerprint(self) -> str:
        """Identity of the target for cross-job caching: its normalised source and interface."""
        digest = hashlib.sha256(source_hash(self.source, self.kind).encode())
        if self.rtl is not None:
            digest.update(repr(self.rtl).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Candidate:
    """A proposed rewrite of a target (the whole design or problem solution)."""

    source: str
    origin: str  # "original", "offline:<rule>", "llm:<model>", "user"
    parent_id: int | None = None
    note: str = ""  # what the proposer did, in a sentence


# ---------------------------------------------------------------------------------------------
# Verifier outcomes


@dataclass(frozen=True)
class StageResult:
    """One stage's outcome. ``ok`` False stops the cascade; ``error`` marks a verifier failure."""

    name: str
    ok: bool
    seconds: float
    metrics: Metrics = field(default_factory=Metrics)
    detail: str = ""
    log: str = ""
    error: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # stage-specific extras (critical path, …)
    cached: bool = False


@dataclass(frozen=True)
class Verdict:
    """The outcome of a cascade on one candidate."""

    accepted: bool
    stage: str  # the last stage run (where it stopped, or the final stage)
    reason: str
    metrics: Metrics
    stages: tuple[StageResult, ...]
    assurance: Assurance | None = None
    functional_hash: str | None = None
    implementation_hash: str | None = None
    error: bool = False

    @property
    def status(self) -> CandidateStatus:
        if self.error:
            return CandidateStatus.ERROR
        return CandidateStatus.ACCEPTED if self.accepted else CandidateStatus.REJECTED


# ---------------------------------------------------------------------------------------------
# Hashes


_LINE_COMMENT = r"//[^\n]*"
_BLOCK_COMMENT = r"/\*.*?\*/"


def normalise_source(text: str, kind: TargetKind = TargetKind.RTL) -> str:
    """Comments and whitespace runs removed, so that formatting changes hash equal.

    Python (kernel) sources lose only their ``#`` comments, found with the tokenizer (a ``#`` inside a
    string, such as an embedded C kernel's ``#pragma omp``, is code and stays), trailing spaces and
    blank lines; indentation is meaning in Python, so it is kept.
    """
    if kind is TargetKind.KERNEL:
        lines = (line.rstrip() for line in _strip_python_comments(text).splitlines())
        return "\n".join(line for line in lines if line)
    text = re.sub(_BLOCK_COMMENT, " ", text, flags=re.S)
    text = re.sub(_LINE_COMMENT, " ", text)
    return " ".join(text.split())


def _strip_python_comments(text: str) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text  # not valid Python: hash it with its comments (whitespace still normalised)
    lines = text.splitlines(keepends=True)
    for token in reversed([t for t in tokens if t.type == tokenize.COMMENT]):
        row, col = token.start
        line = lines[row - 1]
        lines[row - 1] = line[:col] + line[col + len(token.string) :]
    return "".join(lines)


def source_hash(text: str, kind: TargetKind = TargetKind.RTL) -> str:
    """The source hash of DESIGN.md: sha256 of the normalised text."""
    return hashlib.sha256(normalise_source(text, kind).encode()).hexdigest()
