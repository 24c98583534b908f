"""Loading an RTL target: read the files, find the top module, its ports, its clock and reset.

The top is ``--top`` when given, else the single module no other module instantiates. The clock and
reset are found by name (``clk``, ``clock``, ``*_clk``; ``rst``, ``reset``, ``rst_n``, ``*_ni`` …) unless
overridden; a reset whose name ends in ``n``/``_n``/``_b``/``_ni`` is taken as active-low unless the
polarity is given. Every failure is a :class:`TargetError` that says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoforge.domain import Port, RtlInterface, SourceFile, Target, TargetKind
from evoforge.errors import TargetError
from evoforge.tools.verilog_ast import ParsedVerilog, parse_verilog, top_candidates

RTL_SUFFIXES = (".v", ".sv", ".vh", ".verilog")
_CLOCK_NAMES = re.compile(r"^(clk|clock|clk_i|i_clk|clk_in|aclk|sys_clk|clock_i)$|(^|_)clk$", re.I)
_RESET_NAMES = re.compile(
    r"^(rst|reset|rst_n|rstn|reset_n|resetn|rst_ni|rst_b|areset|areset_n|aresetn|arst|arst_n|rst_i|i_rst|"
    r"i_rst_n|reset_i|sys_rst|sys_rst_n)$|(^|_)(rst|reset)(_n|n|_ni|_b)?$",
    re.I,
)
_ACTIVE_LOW = re.compile(r"(_n|n|_ni|_b|_l)$", re.I)


@dataclass(frozen=True)
class RtlTargetOptions:
    top: str | None = None
    clock: str | None = None  # a port name, or "none" for a combinational design
    reset: str | None = None  # a port name, or "none"
    reset_active_low: bool | None = None  # None = infer from the name
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
        files.append(SourceFile(name=path.name, text=text))
    return tuple(files)


def choose_top(parsed: ParsedVerilog, requested: str | None, origin: str) -> str:
    if not parsed.modules:
        raise TargetError(
            f"{origin} defines no module", hint="a target needs at least one `module … endmodule`"
        )
    if requested is not None:
        if requested not in parsed.modules:
            raise TargetError(
                f"top module {requested!r} is not defined in {origin}",
                hint=f"modules defined: {', '.join(sorted(parsed.modules))}",
            )
        return requested
    tops = top_candidates(parsed)
    if len(tops) == 1:
        return tops[0]
    raise TargetError(
        f"{origin} has {len(tops)} candidate top modules ({', '.join(sorted(tops))})",
        hint="name the one to optimise with --top MODULE",
    )


_CANONICAL = {
    "clock": ("clk", "clock"),
    "reset": ("rst", "reset", "rst_n", "reset_n", "rstn", "resetn"),
}


def _pick(ports: Sequence[Port], pattern: re.Pattern[str], what: str) -> str | None:
    names = [p.name for p in ports if p.direction == "input" and p.width == 1 and pattern.search(p.name)]
    if len(names) > 1:
        preferred = [n for n in names if n.lower() in _CANONICAL[what]]
        if len(preferred) == 1:
            return preferred[0]
        raise TargetError(
            f"several inputs look like the {what}: {', '.join(names)}",
            hint=f"name it with --{what} PORT (or --{what} none)",
        )
    return names[0] if names else None


def _named_port(ports: Sequence[Port], name: str, what: str) -> str | None:
    if name.lower() == "none":
        return None
    for port in ports:
        if port.name == name:
            if port.direction != "input" or port.width != 1:
                raise TargetError(f"--{what} {name}: must be a 1-bit input", hint="pick a 1-bit input port")
            return name
    raise TargetError(
        f"--{what} {name}: the top module has no such port",
        hint="ports: " + ", ".join(p.name for p in ports),
    )


def build_interface(parsed: ParsedVerilog, options: RtlTargetOptions, origin: str) -> RtlInterface:
    top = choose_top(parsed, options.top, origin)
    ports = parsed.modules[top].ports
    if not any(p.direction == "output" for p in ports):
        raise TargetError(
            f"top module {top!r} has no outputs", hint="there is nothing to compare or optimise"
        )
    if any(p.direction == "inout" for p in ports):
        raise TargetError(
            f"top module {top!r} has inout ports, which evoforge does not optimise",
            hint="wrap the core logic in a module with separate inputs and outputs and pass it as --top",
        )
    clock = (
        _named_port(ports, options.clock, "clock") if options.clock else _pick(ports, _CLOCK_NAMES, "clock")
    )
    reset = (
        _named_port(ports, options.reset, "reset") if options.reset else _pick(ports, _RESET_NAMES, "reset")
    )
    if reset is not None and reset == clock:
        raise TargetError(f"port {reset!r} cannot be both clock and reset", hint="use --clock and --reset")
    active_low = options.reset_active_low
    if active_low is None:
        active_low = bool(reset and _ACTIVE_LOW.search(reset))
    return RtlInterface(top=top, ports=ports, clock=clock, reset=reset, reset_active_low=active_low)


def load_rtl_target(paths: Sequence[Path], options: RtlTargetOptions, *, workdir: Path) -> Target:
    """Read, parse and describe an RTL target; raises ``TargetError`` on anything unusable."""
    sources = read_sources(paths)
    origin = ", ".join(str(p) for p in paths)
    text = "\n".join(s.text for s in sources)
    parsed = parse_verilog(text, workdir=workdir)
    interface = build_interface(parsed, options, origin)
    if options.user_test is not None and not options.user_test.is_file():
        raise TargetError(f"--test {options.user_test}: no such file", hint="pass a cocotb test module (.py)")
    return Target(
        kind=TargetKind.RTL,
        name=interface.top,
        sources=sources,
        rtl=interface,
        user_test=str(options.user_test.resolve()) if options.user_test else None,
    )
