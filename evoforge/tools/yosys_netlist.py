"""Yosys's word-level netlist of a design: the representation where coding style is gone.

:func:`word_netlist` runs ``read_verilog -sv; proc; opt_merge; opt_clean; write_json`` (``opt_merge``
so that one expression written twice is one cell) and returns typed cells (``$gt``, ``$mux``,
``$pmux``, ``$add``, ``$dff`` …) with their parameters, their connections as bit lists and their
``src`` locations, plus the named nets. However a designer spelled a compare-select chain —
continuous assigns with ternaries, ``if`` chains in an ``always`` block, a ``for`` loop — it becomes
the same cells here, which is what the RTL rules match on; :meth:`ModuleNetlist.text_of` maps bits
back to the source's own names (a whole signal, a slice of one, or a constant).

A bit is an ``int`` (a net bit id) or a one-character string for a constant (``"0"``, ``"1"``,
``"x"``, ``"z"``). Results are cached per source text (rules ask several times per design).
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from evoforge.errors import ToolError
from evoforge.tools.yosys import Yosys

Bit = int | str

NETLIST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Cell:
    name: str
    type: str  # "$gt", "$mux", …
    params: dict[str, int | str]
    connections: dict[str, tuple[Bit, ...]]
    src: str  # "file:line.col-line.col" ("" when Yosys gave none)

    def port(self, name: str) -> tuple[Bit, ...]:
        return self.connections.get(name, ())

    def param(self, name: str) -> int:
        value = self.params.get(name, 0)
        return int(value, 2) if isinstance(value, str) else int(value)

    @property
    def line(self) -> int | None:
        """The first source line of the cell (from ``src``), if known."""
        try:
            return int(self.src.rsplit(":", 1)[1].split(".", 1)[0])
        except (IndexError, ValueError):
            return None


@dataclass(frozen=True)
class Net:
    name: str
    bits: tuple[Bit, ...]
    src: str
    hidden: bool  # an internal name Yosys made up ($…)
    offset: int  # HDL index of bits[0] (for [7:0]: 0; for [8:1]: 1)
    upto: bool  # declared ascending ([0:7])
    signed: bool
    init: str = ""  # the ``init`` attribute (an initial value as a bit string), "" when none


@dataclass(frozen=True)
class ModuleNetlist:
    name: str
    cells: tuple[Cell, ...]
    nets: dict[str, Net]
    ports: dict[str, str]  # name → "input" / "output" / "inout"
    _driver: dict[int, tuple[Cell, str]] = field(default_factory=dict, repr=False, compare=False)
    _named: dict[int, tuple[Net, int]] = field(default_factory=dict, repr=False, compare=False)
    _readers: dict[int, list[Cell]] = field(default_factory=dict, repr=False, compare=False)

    def driver(self, bit: Bit) -> tuple[Cell, str] | None:
        """The cell and output port driving ``bit`` (None for inputs, constants and undriven bits)."""
        return self._driver.get(bit) if isinstance(bit, int) else None

    def readers(self, bit: Bit) -> list[Cell]:
        """The cells reading ``bit`` on an input port, once per connection (a cell reading it on
        two ports is listed twice); the module's output ports are not cells and are not listed."""
        return self._readers.get(bit, []) if isinstance(bit, int) else []

    def cells_of(self, *types: str) -> list[Cell]:
        return [c for c in self.cells if c.type in types]

    def net_with_bits(self, bits: tuple[Bit, ...]) -> Net | None:
        """A user-named net whose bits are exactly ``bits`` (ports first)."""
        found = [n for n in self.nets.values() if not n.hidden and n.bits == bits]
        found.sort(key=lambda n: (n.name not in self.ports, n.name))
        return found[0] if found else None

    def text_of(self, bits: Iterable[Bit]) -> str | None:
        """Verilog for ``bits`` in the source's own names: a signal, a slice, a constant, or None."""
        bits = tuple(bits)
        if not bits:
            return None
        if all(isinstance(b, str) for b in bits):
            if any(str(b) not in ("0", "1") for b in bits):
                return None
            return f"{len(bits)}'b" + "".join(str(b) for b in reversed(bits))
        whole = self.net_with_bits(bits)
        if whole is not None:
            return _escape(whole.name)
        first = self._named.get(bits[0]) if isinstance(bits[0], int) else None
        if first is None:
            return None
        net, start = first
        if net.bits[start : start + len(bits)] != bits:
            return None
        if net.upto:
            return None  # ascending ranges: keep it simple and exact
        lo = net.offset + start
        hi = lo + len(bits) - 1
        name = _escape(net.name)
        return f"{name}[{lo}]" if hi == lo else f"{name}[{hi}:{lo}]"

    def expr_of(self, bits: Iterable[Bit]) -> str | None:
        """Like :meth:`text_of`, also for a concatenation of named slices and 0/1 constants."""
        bits = tuple(bits)
        whole = self.text_of(bits)
        if whole is not None or not bits:
            return whole
        pieces: list[str] = []
        i = 0
        while i < len(bits):
            j = i + 1
            if isinstance(bits[i], str):
                while j < len(bits) and isinstance(bits[j], str):
                    j += 1
            else:
                first = self._named.get(bits[i])  # type: ignore[arg-type]
                if first is None:
                    return None
                net, start = first
                while j < len(bits) and start + j - i < len(net.bits) and net.bits[start + j - i] == bits[j]:
                    j += 1
            text = self.text_of(bits[i:j])
            if text is None:
                return None
            pieces.append(text)
            i = j
        return "{" + ", ".join(reversed(pieces)) + "}"


@dataclass(frozen=True)
class Netlist:
    modules: dict[str, ModuleNetlist]


def _escape(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\[\d+\])?", name):
        return name  # a plain name, or an element of an array of nets (``m[0]`` from ``wire [7:0] m [0:4]``)
    return f"\\{name} "


def parse_json(text: str) -> Netlist:
    """The netlist of Yosys's ``write_json`` output."""
    data = json.loads(text)
    modules: dict[str, ModuleNetlist] = {}
    for name, body in (data.get("modules") or {}).items():
        cells = tuple(
            Cell(
                name=cell_name,
                type=str(cell.get("type", "")),
                params={k: v for k, v in (cell.get("parameters") or {}).items()},
                connections={k: tuple(v) for k, v in (cell.get("connections") or {}).items()},
                src=str((cell.get("attributes") or {}).get("src", "")),
            )
            for cell_name, cell in (body.get("cells") or {}).items()
        )
        nets: dict[str, Net] = {}
        for net_name, net in (body.get("netnames") or {}).items():
            attributes = net.get("attributes") or {}
            nets[net_name] = Net(
                name=net_name,
                bits=tuple(net.get("bits") or ()),
                src=str(attributes.get("src", "")),
                hidden=bool(net.get("hide_name")),
                offset=int(net.get("offset", 0)),
                upto=bool(net.get("upto", 0)),
                signed=bool(net.get("signed", 0)),
                init=str(attributes.get("init", "")),
            )
        ports = {p: str(v.get("direction", "")) for p, v in (body.get("ports") or {}).items()}
        module = ModuleNetlist(name, cells, nets, ports)
        for cell in cells:
            for port_name, bits in cell.connections.items():
                output = _is_output(cell.type, port_name)
                for bit in bits:
                    if not isinstance(bit, int):
                        continue
                    if output:
                        module._driver[bit] = (cell, port_name)
                    else:
                        module._readers.setdefault(bit, []).append(cell)
        for net in sorted(nets.values(), key=lambda n: (n.hidden, n.name not in ports, n.name)):
            if net.hidden:
                continue
            for index, bit in enumerate(net.bits):
                if isinstance(bit, int):
                    module._named.setdefault(bit, (net, index))
        modules[name] = module
    return Netlist(modules)


def _is_output(cell_type: str, port: str) -> bool:
    if cell_type in ("$dff", "$adff", "$sdff", "$dffe", "$adffe", "$sdffe", "$sdffce", "$dlatch", "$aldff"):
        return port == "Q"
    return port == "Y" or (cell_type in ("$alu", "$fa", "$lcu") and port in ("X", "CO"))


@functools.lru_cache(maxsize=32)
def word_netlist(text: str, timeout_s: float = NETLIST_TIMEOUT_S) -> Netlist:
    """The word-level netlist of every module in ``text`` (Verilog or SystemVerilog).

    Raises :class:`~evoforge.errors.ToolError` when Yosys cannot read the design.
    """
    with tempfile.TemporaryDirectory(prefix="evoforge-netlist-") as tmp:
        cwd = Path(tmp)
        (cwd / "design.sv").write_text(text)
        script = "read_verilog -sv design.sv\nproc\nopt_merge\nopt_clean\nwrite_json netlist.json\n"
        run = Yosys(timeout=timeout_s).run_script(script, cwd=cwd, name="netlist")
        out = cwd / "netlist.json"
        if not run.ok or not out.exists():
            raise ToolError(f"yosys could not build the word-level netlist: {run.error}")
        return parse_json(out.read_text())


_FOUND = re.compile(r"^Found FSM state register (\S+?)\.(\S+?)\.$", re.M)
_NOT = re.compile(r"^Not marking (\S+?)\.(\S+) as FSM state register:\s*\n\s*(.+)$", re.M)


@functools.lru_cache(maxsize=32)
def fsm_registers(text: str, timeout_s: float = NETLIST_TIMEOUT_S) -> dict[tuple[str, str], str]:
    """What Yosys's ``fsm_detect`` says of each candidate state register: "" (it re-encodes it) or why not.

    Keys are (module, register name). Synthesis (``synth``) re-encodes the registers marked "" on its
    own (one-hot unless an ``fsm_encoding`` attribute says otherwise); the others keep their codes.
    """
    with tempfile.TemporaryDirectory(prefix="evoforge-fsm-") as tmp:
        cwd = Path(tmp)
        (cwd / "design.sv").write_text(text)
        script = "read_verilog -sv design.sv\nproc\nopt_expr\nopt_clean\nopt -nodffe -nosdff\nfsm_detect\n"
        run = Yosys(timeout=timeout_s).run_script(script, cwd=cwd, name="fsm")
        if not run.ok:
            raise ToolError(f"yosys could not look for FSMs: {run.error}")
        out: dict[tuple[str, str], str] = {}
        for module, wire in _FOUND.findall(run.log):
            out[(module.lstrip("\\"), wire.lstrip("\\"))] = ""
        for module, wire, reason in _NOT.findall(run.log):
            out[(module.lstrip("\\"), wire.lstrip("\\"))] = reason.strip()
        return out


@functools.lru_cache(maxsize=32)
def flat_netlist(text: str, top: str, timeout_s: float = NETLIST_TIMEOUT_S) -> ModuleNetlist:
    """The word-level netlist of ``top`` with its submodules flattened into it."""
    with tempfile.TemporaryDirectory(prefix="evoforge-flat-") as tmp:
        cwd = Path(tmp)
        (cwd / "design.sv").write_text(text)
        script = (
            f"read_verilog -sv design.sv\nhierarchy -top {top}\nproc\nflatten\nopt_merge\nopt_clean\n"
            "write_json netlist.json\n"
        )
        run = Yosys(timeout=timeout_s).run_script(script, cwd=cwd, name="flat")
        out = cwd / "netlist.json"
        if not run.ok or not out.exists():
            raise ToolError(f"yosys could not flatten {top}: {run.error}")
        modules = parse_json(out.read_text()).modules
        if top not in modules:
            raise ToolError(f"yosys did not keep module {top}")
        return modules[top]


def prove(text: str, check: str, top: str, timeout_s: float = 60.0) -> bool | None:
    """Whether output ``ok`` of module ``top`` (in ``check``, which may instantiate modules of
    ``text``) is 1 for every input: True (proven), False (a counterexample), None (no answer in time)."""
    with tempfile.TemporaryDirectory(prefix="evoforge-prove-") as tmp:
        cwd = Path(tmp)
        (cwd / "design.sv").write_text(text)
        (cwd / "check.sv").write_text(check)
        script = (
            f"read_verilog -sv design.sv\nread_verilog -sv check.sv\nhierarchy -top {top}\nproc\nflatten\n"
            "opt_clean\nsat -prove ok 1 -verify\n"
        )
        run = Yosys(timeout=timeout_s).run_script(script, cwd=cwd, name="prove")
        if run.ok:
            return True
        if "SAT proof finished - model found: FAIL!" in run.log or "Proof failed" in run.log:
            return False
        return None
