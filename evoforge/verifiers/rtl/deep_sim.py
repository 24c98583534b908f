"""The deep run: the original and the candidate side by side for as long as the state horizon asks.

Icarus runs a few thousand cycles a second through cocotb; a difference at cycle 100,000 needs a
compiled simulator. :func:`run_deep` builds the wrapper and testbench of :mod:`deep_tb` with Verilator
(``--cc --exe``, then ``make``), all of it in the sandbox (the candidate's text reaches Verilator and
the C++ compiler), and runs the binary there: each seed from reset for ``cycles`` cycles without
another reset, within a wall-clock budget.

Both designs reach Verilator as Icarus preprocessed them (``iverilog -E``) with comments removed, so
Verilator's own ``VERILATOR`` macro, its ``/*verilator ...*/`` comment pragmas and its C++-injecting
directives cannot make the deep run see another design than Icarus and Yosys; text that still holds a
``$c`` call or a directive outside :data:`ALLOWED_DIRECTIVES` is not built.

Verilator is two-valued. A mismatch it reports is replayed in Icarus (the testbench writes the seed's
stimulus up to that cycle; :func:`evoforge.verifiers.rtl.probe.probe_trace` runs it) and counts only
when Icarus shows it too, with X on the original's side a don't-care as everywhere else; a mismatch
later than :data:`REPLAY_LIMIT` cycles is reported as Verilator saw it.

Verilator's runtime library (``verilated.o``, ``verilated_threads.o``: most of the compile time) is
built once per ``cache_dir`` from Verilator's own sources, never from a design, and copied into each
build.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoforge.domain import Port, RtlInterface
from evoforge.errors import EvoforgeError
from evoforge.tools import process
from evoforge.tools.base import write_text
from evoforge.tools.iverilog import Iverilog, Vvp
from evoforge.tools.verilator import Verilator
from evoforge.verifiers.rtl import deep_tb
from evoforge.verifiers.rtl.deep_tb import REPLAY_STIM, REPLAY_TB, TOP
from evoforge.verifiers.rtl.probe import Mismatch, bits_mismatch, format_inputs, stimulus_ports
from evoforge.verifiers.rtl.rename import prefix_modules
from evoforge.verifiers.sandbox import run_untrusted

log = logging.getLogger(__name__)

#: compiler directives that may remain after preprocessing (none of them injects code)
ALLOWED_DIRECTIVES = frozenset(
    (
        "timescale",
        "default_nettype",
        "line",
        "celldefine",
        "endcelldefine",
        "resetall",
        "unconnected_drive",
        "nounconnected_drive",
    )
)
#: a mismatch at a later cycle is not replayed in Icarus (the replay would take too long)
REPLAY_LIMIT = 1 << 20
RUNTIME_OBJECTS = ("verilated.o", "verilated_threads.o")
VERILATOR_FLAGS = ("--cc", "--exe", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast")
MAKE_FLAGS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")
_LINE = re.compile(r"^seed (\d+) cycles (-?\d+) changes (\d+)( budget)?$")
_MISMATCH = re.compile(r"^mismatch seed (\d+) cycle (\d+) gold ([0-9a-f]+) gate ([0-9a-f]+)$")
_runtime_lock = threading.Lock()


@dataclass(frozen=True)
class DeepRun:
    """What the deep run showed. ``covered`` is the least number of cycles after reset any seed ran."""

    seeds: tuple[int, ...]
    cycles_after_reset: tuple[int, ...]  # per seed that finished or ran out of budget
    output_changes: int  # changes of the original's outputs after reset, all seeds together
    seconds: float
    build_seconds: float = 0.0
    mismatch: Mismatch | None = None
    mismatch_seed: int | None = None
    replayed: bool = False  # the mismatch was confirmed by Icarus
    out_of_budget: bool = False
    error: str | None = None  # could not build or run (not a verdict on the candidate)
    log: str = ""
    unconfirmed: list[str] = field(default_factory=list)

    @property
    def covered(self) -> int:
        if self.error or not self.cycles_after_reset or len(self.cycles_after_reset) < len(self.seeds):
            return 0
        return max(0, min(self.cycles_after_reset))


def compiler_version() -> str:
    """The C++ compiler Verilator's makefiles use (part of the verdict context)."""
    gxx = shutil.which("g++")
    if gxx is None:
        return "absent"
    try:
        done = process.run([gxx, "--version"], timeout=30)
    except OSError:
        return "unknown"
    return (done.stdout.splitlines() or ["unknown"])[0].strip()


def tool_neutral(text: str, workdir: Path, *, timeout: float) -> tuple[str, str | None]:
    """(``text`` preprocessed by Icarus without comments, None) or ("", why it may not be built)."""
    try:
        expanded = Iverilog().preprocess(text, cwd=workdir, timeout=timeout)
    except EvoforgeError as exc:
        return "", f"preprocessing failed: {exc.message}"
    out: list[str] = []
    for match in _TOKENS.finditer(expanded):
        kind, token = match.lastgroup, match.group()
        if kind == "comment":
            out.append(" " if "\n" not in token else "\n" * token.count("\n"))
            continue
        if kind == "directive" and token[1:] not in ALLOWED_DIRECTIVES:
            return "", f"compiler directive {token} is not allowed in the deep run"
        if kind == "system" and re.fullmatch(r"\$c\d*", token):
            return "", f"{token} (C++ injection) is not allowed"
        out.append(token)
    return "".join(out), None


_TOKENS = re.compile(
    r"""
      (?P<comment>//[^\n]*|/\*.*?\*/)
    | (?P<string>"(?:\\.|[^"\\\n])*")
    | (?P<system>\$[A-Za-z0-9_$]+)
    | (?P<directive>`[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<other>[A-Za-z0-9_]+|\s+|.)
    """,
    re.S | re.X,
)


def _ensure_runtime(cache_dir: Path, timeout: float) -> Path | None:
    """Verilator's runtime objects, built once into ``cache_dir`` from a design of our own."""
    version = str(Verilator().version()).replace(" ", "_")
    home = cache_dir / f"verilator-runtime-{re.sub(r'[^A-Za-z0-9._-]', '', version)}"
    if all((home / name).exists() for name in RUNTIME_OBJECTS):
        return home
    with _runtime_lock:
        if all((home / name).exists() for name in RUNTIME_OBJECTS):
            return home
        build = cache_dir / f"runtime-build-{threading.get_ident()}"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        write_text(build / "rt.v", f"module {TOP}(input clk, output q); assign q = clk; endmodule\n")
        write_text(build / "main.cpp", "int main() { return 0; }\n")
        verilate = [
            Verilator().path(),
            *VERILATOR_FLAGS,
            "--top-module",
            TOP,
            "-Mdir",
            "obj",
            "rt.v",
            "main.cpp",
        ]
        done = run_untrusted(verilate, workdir=build, timeout=timeout)
        if done.ok:
            done = run_untrusted(
                ["make", "-C", "obj", "-f", f"V{TOP}.mk", *MAKE_FLAGS, *RUNTIME_OBJECTS],
                workdir=build,
                timeout=timeout,
            )
        if not done.ok:
            log.warning("could not prebuild Verilator's runtime: %s", done.output[-500:])
            return None
        home.mkdir(parents=True, exist_ok=True)
        for name in RUNTIME_OBJECTS:
            tmp = home / f".{name}.tmp"
            shutil.copyfile(build / "obj" / name, tmp)
            tmp.replace(home / name)
        shutil.rmtree(build, ignore_errors=True)
        return home


def _failed(seeds: list[int], start: float, error: str, log_text: str = "", build: float = 0.0) -> DeepRun:
    return DeepRun(tuple(seeds), (), 0, time.monotonic() - start, build, error=error, log=log_text[-20_000:])


def run_deep(
    original: str,
    candidate: str,
    interface: RtlInterface,
    workdir: Path,
    *,
    cycles: int,
    reset_cycles: int,
    seeds: list[int],
    budget_s: float,
    timeout: float,
    cache_dir: Path | None = None,
) -> DeepRun:
    """Build and run the deep run (see the module docstring); never raises for a candidate's fault."""
    start = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    stimulus = stimulus_ports(interface)
    sources: dict[str, str] = {}
    for role, text in (("gold", original), ("gate", candidate)):
        neutral, why = tool_neutral(text, workdir, timeout=timeout)
        if why is not None:
            return _failed(seeds, start, f"{'original' if role == 'gold' else 'candidate'}: {why}")
        sources[role] = prefix_modules(neutral, f"{role}_")
    files = [
        write_text(workdir / "deep_top.v", deep_tb.deep_wrapper(interface, stimulus)),
        write_text(workdir / "gold.v", sources["gold"]),
        write_text(workdir / "gate.v", sources["gate"]),
        write_text(workdir / "deep_tb.cpp", deep_tb.deep_testbench(interface, stimulus)),
    ]
    obj = workdir / "obj"
    verilate = [
        Verilator().path(),
        *VERILATOR_FLAGS,
        "--top-module",
        TOP,
        "-Mdir",
        "obj",
        *(f.name for f in files),
    ]
    done = run_untrusted(verilate, workdir=workdir, timeout=timeout)
    if not done.ok:
        return _failed(
            seeds, start, "Verilator could not build the designs: " + _tail(done.output), done.output
        )
    runtime = _ensure_runtime(cache_dir, timeout) if cache_dir is not None else None
    if runtime is not None:
        for name in RUNTIME_OBJECTS:
            shutil.copyfile(runtime / name, obj / name)
    done = run_untrusted(
        ["make", "-C", "obj", "-f", f"V{TOP}.mk", *MAKE_FLAGS], workdir=workdir, timeout=timeout
    )
    build_seconds = time.monotonic() - start
    if not done.ok:
        return _failed(
            seeds, start, "the C++ build failed: " + _tail(done.output), done.output, build_seconds
        )
    binary = obj / f"V{TOP}"
    argv = [str(binary), str(cycles + reset_cycles), str(reset_cycles), f"{budget_s:.3f}", *map(str, seeds)]
    ran = run_untrusted(argv, workdir=workdir, timeout=max(timeout, budget_s + 30))
    if ran.timed_out:
        return _failed(
            seeds, start, f"the deep run did not finish within {timeout:g} s", ran.output, build_seconds
        )
    return _outcome(
        ran.stdout,
        ran.output,
        seeds,
        start,
        build_seconds,
        interface,
        workdir,
        reset_cycles,
        timeout,
    )


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _outcome(
    stdout: str,
    output: str,
    seeds: list[int],
    start: float,
    build_seconds: float,
    interface: RtlInterface,
    workdir: Path,
    reset_cycles: int,
    timeout: float,
) -> DeepRun:
    per_seed: list[int] = []
    changes = 0
    budget = False
    for line in stdout.splitlines():
        found = _LINE.match(line.strip())
        if found:
            per_seed.append(int(found.group(2)))
            changes += int(found.group(3))
            budget = budget or bool(found.group(4))
            continue
        hit = _MISMATCH.match(line.strip())
        if hit:
            seed, cycle = int(hit.group(1)), int(hit.group(2))
            mismatch, replayed, note = _confirm(workdir, interface, seed, cycle, reset_cycles, timeout)
            if mismatch is None and replayed:
                # two-valued only: the original is X there. What ran before that cycle still counts.
                per_seed.append(cycle - reset_cycles)
                return DeepRun(
                    tuple(seeds),
                    tuple(per_seed),
                    changes,
                    time.monotonic() - start,
                    build_seconds,
                    out_of_budget=True,
                    log=output[-20_000:],
                    unconfirmed=[note],
                )
            if mismatch is None:
                mismatch = Mismatch(cycle, "(outputs)", hit.group(3), hit.group(4), "(not replayed)")
            return DeepRun(
                tuple(seeds),
                tuple(per_seed),
                changes,
                time.monotonic() - start,
                build_seconds,
                mismatch=mismatch,
                mismatch_seed=seed,
                replayed=replayed,
                log=output[-20_000:],
            )
    if len(per_seed) < len(seeds):
        return _failed(seeds, start, "the deep run ended early: " + _tail(output), output, build_seconds)
    return DeepRun(
        tuple(seeds),
        tuple(per_seed),
        changes,
        time.monotonic() - start,
        build_seconds,
        out_of_budget=budget,
        log=output[-20_000:],
    )


def _confirm(
    workdir: Path,
    interface: RtlInterface,
    seed: int,
    cycle: int,
    reset_cycles: int,
    timeout: float,
) -> tuple[Mismatch | None, bool, str]:
    """Replay a Verilator mismatch in Icarus: (the mismatch as Icarus sees it, replayed?, note)."""
    if cycle + 1 > REPLAY_LIMIT:
        return None, False, f"cycle {cycle} is past the replay limit"
    binary = workdir / "obj" / f"V{TOP}"
    argv = [str(binary), "--replay", str(seed), str(cycle + 1), str(reset_cycles), REPLAY_STIM]
    dump = run_untrusted(argv, workdir=workdir, timeout=timeout)
    if not dump.ok or not (workdir / REPLAY_STIM).exists():
        return None, False, "the stimulus could not be written for the replay"
    stimulus = stimulus_ports(interface)
    token = "@ef" + secrets.token_hex(6)
    text = deep_tb.replay_testbench(interface, stimulus, cycle + 1, reset_cycles, token)
    tb = write_text(workdir / "replay_tb.v", text)
    sources = [tb, workdir / "gold.v", workdir / "gate.v"]
    try:
        compiled = Iverilog().compile(sources, output=workdir / "replay.vvp", top=REPLAY_TB, cwd=workdir)
    except EvoforgeError as exc:
        return None, False, f"the Icarus replay did not compile: {exc.message}"
    if not compiled.ok:
        return None, False, f"the Icarus replay did not compile: {compiled.first_error}"
    ran = run_untrusted([Vvp().path(), "-n", "replay.vvp"], workdir=workdir, timeout=timeout)
    for line in ran.stdout.splitlines():
        if not line.startswith(token + " "):
            continue
        words = line.split()
        if words[1] == "done":
            return None, True, f"Verilator's mismatch at cycle {cycle} is X in the original under Icarus"
        if words[1] == "mismatch" and len(words) == 5:
            return _described(int(words[2]), words[3], words[4], interface, workdir), True, ""
    return None, False, "the Icarus replay gave no verdict: " + _tail(ran.output, 3)


def _described(cycle: int, gold: str, gate: str, interface: RtlInterface, workdir: Path) -> Mismatch:
    """The first output whose 0/1 bits of the original the candidate does not reproduce."""
    stimulus = stimulus_ports(interface)
    rows = (workdir / REPLAY_STIM).read_text().split()
    inputs = format_inputs(stimulus, _unpack(int(rows[cycle], 16), stimulus)) if cycle < len(rows) else ""
    position = 0
    for port in interface.outputs:
        expected, got = gold[position : position + port.width], gate[position : position + port.width]
        position += port.width
        if bits_mismatch(expected, got):
            return Mismatch(cycle, port.name, expected, got, inputs)
    return Mismatch(cycle, "(outputs)", gold, gate, inputs)


def _unpack(word: int, ports: tuple[Port, ...]) -> tuple[int, ...]:
    values: list[int] = []
    shift = sum(p.width for p in ports)
    for port in ports:
        shift -= port.width
        values.append((word >> shift) & ((1 << port.width) - 1))
    return tuple(values)


def describe(run: DeepRun) -> dict[str, Any]:
    """The run's facts for the stage data."""
    return {
        "deep_seconds": round(run.seconds, 3),
        "deep_build_seconds": round(run.build_seconds, 3),
        "deep_cycles": list(run.cycles_after_reset),
        "deep_output_changes": run.output_changes,
        "deep_out_of_budget": run.out_of_budget,
        **({"deep_error": run.error} if run.error else {}),
        **({"deep_unconfirmed": run.unconfirmed} if run.unconfirmed else {}),
    }
