"""Loading an RTL target: read the files, elaborate them, find the top, its ports, clocks and resets.

The text goes through the source policy first (:mod:`evoforge.verifiers.rtl.source_policy`): no
control bytes, includes only from the design's own directory — a target that uses them is stored with
its includes expanded, so that it is self-contained — no pragma that would make synthesis see another
design than simulation, and one preprocessing in the sandbox. The elaborated text is then elaborated
by slang
(:mod:`evoforge.tools.slang`, SystemVerilog 1800-2017 with parameters evaluated). The top is ``--top``
when given, else the single module no other module instantiates. Clocks and resets are read from the
logic (:mod:`evoforge.verifiers.rtl.clocking`: what drives the flops' clock and reset pins after Yosys
``proc``), polarity included; ``--clock``/``--reset`` (a port, a comma-separated list, or ``none``) and
``--reset-active-low/-high`` override what the logic shows. How each was found, and every guess, is
kept in ``RtlInterface.notes``. Every failure is a :class:`TargetError` that says what to do.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.domain import ClockSignal, Port, ResetSignal, RtlInterface, SourceFile, Target, TargetKind
from evoforge.errors import TargetError, ToolError, ToolTimeoutError, VerifierError
from evoforge.tools.slang import Elaboration, Slang
from evoforge.verifiers.rtl.clocking import Clocking, analyse_clocking
from evoforge.verifiers.rtl.source_policy import control_characters, elaborate_target

log = logging.getLogger(__name__)

RTL_SUFFIXES = (".v", ".sv", ".vh", ".verilog")
LOAD_TIMEOUT_S = 120.0
#: a reset named like this is taken as active-low when neither the logic nor a flag says otherwise
_ACTIVE_LOW = re.compile(r"(_n|n|_ni|_b|_l)$", re.I)


@dataclass(frozen=True)
class RtlTargetOptions:
    top: str | None = None
    clock: str | None = None  # None: from the logic; a port, "a,b" for several, or "none" (combinational)
    reset: str | None = None  # None: from the logic; a port, "a,b", or "none"
    reset_active_low: bool | None = None  # None: from the logic (for a reset it does not show: the name)
    reset_polarities: Mapping[str, bool] | None = None  # per reset port: active low? (stored jobs)
    user_test: Path | None = None


def read_sources(paths: Sequence[Path]) -> tuple[SourceFile, ...]:
    """Read design files, with a clear error for a missing, empty or non-Verilog file."""
    if not paths:
        raise TargetError("no design file given", hint="pass a .v or .sv file: evoforge run design.v")
    files = []
    for path in paths:
        if not path.exists():
            raise TargetError(f"{path}: no such file", hint="check the path of the design file")
        if path.is_dir():
            raise TargetError(f"{path} is a directory", hint="pass the Verilog files themselves")
        if path.suffix.lower() not in RTL_SUFFIXES:
            raise TargetError(
                f"{path}: not a Verilog file (expected one of {', '.join(RTL_SUFFIXES)})",
                hint="RTL targets are Verilog files; KernelBench problems are .py files",
            )
        text = path.read_text(errors="replace")
        if not text.strip():
            raise TargetError(f"{path} is empty", hint="pass a file that defines the design's modules")
        control = control_characters(text, path.name)
        if control:
            raise TargetError(
                "; ".join(control),
                hint="remove the control characters (a NUL byte often means a binary file)",
            )
        files.append(SourceFile(name=path.name, text=text))
    return tuple(files)


def choose_top(design: Elaboration, requested: str | None, origin: str) -> str:
    if not design.definitions:
        raise TargetError(
            f"{origin} defines no module", hint="a target needs at least one `module … endmodule`"
        )
    if requested is not None:
        if requested not in design.definitions:
            raise TargetError(
                f"top module {requested!r} is not defined in {origin}",
                hint=f"modules defined: {', '.join(sorted(design.definitions))}",
            )
        return requested
    if len(design.tops) == 1:
        return design.tops[0]
    if not design.tops:
        raise TargetError(
            f"{origin}: no module can be the top (each is instantiated by another, or has parameters "
            "without defaults)",
            hint="name the one to optimise with --top MODULE",
        )
    raise TargetError(
        f"{origin} has {len(design.tops)} candidate top modules ({', '.join(sorted(design.tops))})",
        hint="name the one to optimise with --top MODULE",
    )


def _refuse_errors(design: Elaboration, origin: str) -> None:
    if design.errors:
        more = f" (and {len(design.errors) - 1} more)" if len(design.errors) > 1 else ""
        raise TargetError(
            f"{origin}: {design.first_error}{more}",
            hint="evoforge accepts the Verilog-2005 / SystemVerilog that Icarus -g2012, Verilator and "
            "Yosys -sv all accept; fix this line or pass the right --top",
        )


def _named_port(ports: Sequence[Port], name: str, what: str) -> str:
    for port in ports:
        if port.name == name:
            if port.direction != "input" or port.width != 1:
                raise TargetError(f"--{what} {name}: must be a 1-bit input", hint="pick a 1-bit input port")
            return name
    raise TargetError(
        f"--{what} {name}: the top module has no such port",
        hint="ports: " + ", ".join(p.name for p in ports),
    )


def _names(option: str) -> list[str]:
    return [n.strip() for n in option.split(",") if n.strip()]


def _clocks(
    ports: Sequence[Port], found: Clocking, option: str | None, notes: list[str]
) -> list[ClockSignal]:
    if option is None:
        return list(found.clocks)
    if option.strip().lower() == "none":
        if found.clocks:
            notes.append(f"--clock none: {', '.join(c.port for c in found.clocks)} driven as data")
        return []
    names = [_named_port(ports, name, "clock") for name in _names(option)]
    seen = {c.port: c for c in found.clocks}
    for name in names:
        if name not in seen:
            notes.append(f"--clock {name}: the logic shows no flop clocked by it (driven on rising edges)")
    for clock in found.clocks:
        if clock.port not in names:
            notes.append(f"{clock.port} clocks {clock.flop_bits} flop bit(s) but --clock does not list it: "
                         "driven as data")  # fmt: skip
    return [seen.get(name) or ClockSignal(name) for name in names]


def _polarity(reset: ResetSignal, active_low: bool | None, notes: list[str]) -> ResetSignal:
    if active_low is None or active_low == reset.active_low:
        return reset
    if reset.asynchronous is not None:
        notes.append(f"--reset-active-{'low' if active_low else 'high'} overrides the logic, which resets "
                     f"on {reset.port} {'low' if reset.active_low else 'high'}")  # fmt: skip
    return ResetSignal(reset.port, active_low, reset.asynchronous, reset.clock, reset.flop_bits)


def _resets(
    ports: Sequence[Port], found: Clocking, options: RtlTargetOptions, clocks: set[str], notes: list[str]
) -> list[ResetSignal]:
    if options.reset is not None and options.reset.strip().lower() == "none":
        return []
    polarities = dict(options.reset_polarities or {})
    if options.reset is None:
        resets = [r for r in found.resets if r.port not in clocks]
    else:
        seen = {r.port: r for r in found.resets}
        resets = []
        for name in _names(options.reset):
            _named_port(ports, name, "reset")
            given = polarities.get(name, options.reset_active_low)
            if name in seen:
                resets.append(seen[name])
            elif given is None:
                low = bool(_ACTIVE_LOW.search(name))
                notes.append(f"guess: --reset {name} resets no flop in the logic; active "
                             f"{'low' if low else 'high'} by its name")  # fmt: skip
                resets.append(ResetSignal(name, low))
            else:
                resets.append(ResetSignal(name, given))
    resets = [_polarity(r, polarities.get(r.port, options.reset_active_low), notes) for r in resets]
    for reset in resets:
        if reset.port in clocks:
            raise TargetError(
                f"port {reset.port!r} cannot be both clock and reset", hint="use --clock and --reset"
            )
    return resets


def _describe(clocks: Sequence[ClockSignal], resets: Sequence[ResetSignal]) -> str:
    if not clocks:
        return "combinational: no input clocks a flop"
    parts = [
        f"clock {c.port} ({'/'.join(c.edges)}, {c.flop_bits} flop bits)" if c.flop_bits else f"clock {c.port}"
        for c in clocks
    ]
    for r in resets:
        kind = {True: "asynchronous", False: "synchronous", None: "given"}[r.asynchronous]
        parts.append(f"reset {r.port} ({kind}, active {'low' if r.active_low else 'high'})")
    return "; ".join(parts)


def check_ports(design: Elaboration, top: str) -> tuple[Port, ...]:
    """The top's ports, when a bench can drive and compare them bit by bit; else a TargetError."""
    summary = design.modules[top]
    if summary.unsupported_ports:
        raise TargetError(
            f"top module {top!r} has ports a test bench cannot drive bit by bit: "
            + "; ".join(summary.unsupported_ports),
            hint="wrap the design in a module whose ports are packed bit vectors and pass it as --top",
        )
    ports = summary.ports
    if not any(p.direction == "output" for p in ports):
        raise TargetError(
            f"top module {top!r} has no outputs", hint="there is nothing to compare or optimise"
        )
    if any(p.direction == "inout" for p in ports):
        raise TargetError(
            f"top module {top!r} has inout ports, which evoforge does not optimise",
            hint="wrap the core logic in a module with separate inputs and outputs and pass it as --top",
        )
    return ports


def build_interface(
    design: Elaboration, found: Clocking | None, options: RtlTargetOptions, top: str
) -> RtlInterface:
    """The interface of ``top``: its ports, and its clocks/resets from the logic or the options."""
    ports = check_ports(design, top)
    found = found or Clocking((), (), (), 0)
    notes = list(found.notes)
    clocks = _clocks(ports, found, options.clock, notes)
    resets = _resets(ports, found, options, {c.port for c in clocks}, notes) if clocks else []
    if not clocks and found.resets and options.reset is None:
        notes.append("no clock: resets are driven as data")
    notes.insert(0, _describe(clocks, resets))
    return RtlInterface(top=top, ports=ports, clocks=tuple(clocks), resets=tuple(resets), notes=tuple(notes))


def elaborate(text: str, *, workdir: Path, top: str | None, origin: str) -> tuple[str, Elaboration]:
    """Elaborate ``text`` (already through the source policy, so preprocessed): (the text, slang's
    summary); refusals name the line."""
    workdir.mkdir(parents=True, exist_ok=True)
    pre = text
    design = Slang().elaborate(pre, cwd=workdir, top=top, timeout=LOAD_TIMEOUT_S)
    if top is not None and top not in design.definitions:
        choose_top(design, top, origin)  # raises with the modules that are defined
    _refuse_errors(design, origin)
    return pre, design


def load_rtl_target(paths: Sequence[Path], options: RtlTargetOptions, *, workdir: Path) -> Target:
    """Read, elaborate and describe an RTL target; raises ``TargetError`` on anything unusable."""
    sources = read_sources(paths)
    origin = ", ".join(str(p) for p in paths)
    text = "\n".join(s.text for s in sources)
    include_dirs = sorted({p.resolve().parent for p in paths})
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        scratch = Path(tempfile.mkdtemp(prefix="policy-", dir=workdir))
        try:
            policy = elaborate_target(text, workdir=scratch, include_dirs=include_dirs, origin=origin)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if policy.includes:  # a self-contained target: candidates may not include anything
            log.info("%s: includes %s, stored expanded", origin, ", ".join(policy.includes))
            sources = (SourceFile(name=paths[0].name, text=policy.preprocessed),)
        text = policy.text
        pre, design = elaborate(text, workdir=workdir / "elaborate", top=options.top, origin=origin)
        top = choose_top(design, options.top, origin)
        if top not in design.modules:  # slang picked other tops: elaborate the chosen one on its own
            pre, design = elaborate(text, workdir=workdir / "elaborate", top=top, origin=origin)
        ports = check_ports(design, top)
        found = analyse_clocking(pre, top, ports, workdir / "clocking", LOAD_TIMEOUT_S)
    except ToolTimeoutError as exc:  # a design too large to elaborate is the input's problem
        raise TargetError(f"{origin}: {exc.message}", hint=exc.hint) from exc
    except ToolError as exc:  # a missing or crashing tool: the verifier's failure, not the design's
        raise VerifierError(
            f"the verifier failed while loading the target: {exc.message}",
            hint=exc.hint or "check the tool named above (installed, runnable), then try again",
        ) from exc
    interface = build_interface(design, found, options, top)
    if options.user_test is not None and not options.user_test.is_file():
        raise TargetError(f"--test {options.user_test}: no such file", hint="pass a cocotb test module (.py)")
    return Target(
        kind=TargetKind.RTL,
        name=interface.top,
        sources=sources,
        rtl=interface,
        user_test=str(options.user_test.resolve()) if options.user_test else None,
    )
