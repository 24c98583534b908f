"""FSM re-encoding and code generation: state codes for a partition, and the regenerated module.

Encodings (the reset class always gets the code the reset loads):

* ``keep`` — each class keeps its first reachable member's original code and the original width;
* ``binary`` — class ``i`` (breadth first from reset) gets ``i``; ``gray`` — the Gray code of ``i``
  (both XOR-ed with the original reset code when it fits, so the reset value is unchanged);
* ``onehot`` — one flip-flop per class, decoded by single bits;
* ``output`` — every 1-bit Moore output becomes a state bit (decoded as a wire), plus the fewest
  bits that tell apart the classes showing the same outputs.

:func:`render` rebuilds the module: the owned items (clocked block, combinational blocks and
assigns of the FSM) and the declarations of the state and next-state variables are replaced by
generated ones computed from the tables (input functions as Shannon decision trees); every other
item, the ports and the parameters stay. Unused localparams are dropped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules.ast_utils import identifiers, walk_paths
from evoforge.agents.rtl_rules.fsm_extract import Fsm, Key, Valuation
from evoforge.agents.rtl_rules.fsm_minimise import Partition
from evoforge.tools.verilog_ast import parse_preprocessed

ENCODINGS = ("binary", "gray", "onehot", "output")


@dataclass(frozen=True)
class Encoding:
    kind: str
    width: int
    codes: tuple[int, ...]  # code per class
    bits: dict[str, tuple[int, bool]]  # 1-bit outputs that are a state bit: (bit, inverted)


def _bits_for(count: int) -> int:
    return max(1, (count - 1).bit_length())


def encode(fsm: Fsm, partition: Partition, kind: str) -> Encoding | None:
    """The encoding ``kind`` of ``partition``'s classes, or None when it does not apply."""
    n = partition.size
    if kind == "keep":
        codes = tuple(partition.representative(i) for i in range(n))
        return _with_bits(fsm, partition, Encoding(kind, fsm.width, codes, {}))
    if kind in ("binary", "gray"):
        width = _bits_for(n)
        flip = fsm.reset_code if fsm.reset_code < (1 << width) else 0
        codes = tuple((i ^ (i >> 1) if kind == "gray" else i) ^ flip for i in range(n))
        return _with_bits(fsm, partition, Encoding(kind, width, codes, {}))
    if kind == "onehot":
        return _with_bits(fsm, partition, Encoding(kind, n, tuple(1 << i for i in range(n)), {}))
    if kind == "output":
        return _output_encoding(fsm, partition)
    raise ValueError(f"unknown FSM encoding {kind}")


def _with_bits(fsm: Fsm, partition: Partition, enc: Encoding) -> Encoding:
    """Note the 1-bit Moore outputs that equal a state bit (or its inverse) in every class."""
    bits: dict[str, tuple[int, bool]] = {}
    for name, table in fsm.moore.items():
        if fsm.widths[name] != 1:
            continue
        column = [table[partition.representative(i)] for i in range(partition.size)]
        for bit in range(enc.width):
            state_bits = [(code >> bit) & 1 for code in enc.codes]
            if state_bits == column or [1 - b for b in state_bits] == column:
                bits[name] = (bit, state_bits != column)
                break
    return Encoding(enc.kind, enc.width, enc.codes, bits)


def _output_encoding(fsm: Fsm, partition: Partition) -> Encoding | None:
    columns: list[tuple[int, ...]] = []
    for name, table in fsm.moore.items():
        column = tuple(table[partition.representative(i)] for i in range(partition.size))
        if fsm.widths[name] == 1 and len(set(column)) > 1 and column not in columns:
            columns.append(column)
    if not columns:
        return None
    groups: dict[tuple[int, ...], int] = {}
    low: list[int] = []
    for i in range(partition.size):
        vector = tuple(column[i] for column in columns)
        low.append(groups.get(vector, 0))
        groups[vector] = low[-1] + 1
    extra = 0 if max(groups.values()) == 1 else _bits_for(max(groups.values()))
    codes = []
    for i in range(partition.size):
        high = 0
        for column in columns:
            high = (high << 1) | column[i]
        codes.append((high << extra) | low[i])
    return _with_bits(fsm, partition, Encoding("output", extra + len(columns), tuple(codes), {}))


# ---------------------------------------------------------------------------------------------
# Code generation


def _literal(width: int, value: int) -> str:
    return f"{width}'b{value:0{width}b}"


def _tree(fsm: Fsm, function: dict[Valuation, int], width: int) -> str:
    """A nested ``?:`` over single input bits computing ``function`` (Shannon expansion)."""
    bits = [(i, b) for i, (_, w) in enumerate(fsm.inputs) for b in reversed(range(w))]

    def build(rows: dict[Valuation, int], remaining: list[tuple[int, int]]) -> str:
        values = set(rows.values())
        if len(values) == 1:
            return _literal(width, values.pop())
        for k, (i, b) in enumerate(remaining):
            ones = {v: x for v, x in rows.items() if (v[i] >> b) & 1}
            zeros = {v: x for v, x in rows.items() if not (v[i] >> b) & 1}
            if any(ones.get(_flip(v, i, b)) != x for v, x in zeros.items()):
                name, size = fsm.inputs[i]
                select = name if size == 1 else f"{name}[{b}]"
                rest = remaining[k + 1 :]
                return f"({select} ? {build(ones, rest)} : {build(zeros, rest)})"
        raise AssertionError("a non-constant function depends on no input bit")

    return build(function, bits)


def _flip(valuation: Valuation, i: int, bit: int) -> Valuation:
    return tuple(v ^ (1 << bit) if j == i else v for j, v in enumerate(valuation))


def _mux(fsm: Fsm, partition: Partition, enc: Encoding, state: str, per_class: list[str]) -> str:
    """``state``-selected choice among per-class expressions; the largest group is the default."""
    groups: dict[str, list[int]] = {}
    for i, expr in enumerate(per_class):
        groups.setdefault(expr, []).append(i)
    default = max(groups, key=lambda e: len(groups[e]))
    text = default
    for expr, members in reversed([(e, m) for e, m in groups.items() if e != default]):
        tests = [
            f"{state}[{enc.codes[i].bit_length() - 1}]"
            if enc.kind == "onehot"
            else f"({state} == {_literal(enc.width, enc.codes[i])})"
            for i in members
        ]
        text = f"(({' || '.join(tests)}) ? {expr} : {text})"
    return text


def render(module: vast.ModuleDef, fsm: Fsm, partition: Partition, enc: Encoding) -> vast.ModuleDef:
    """``module`` with its FSM regenerated for ``partition`` under ``enc``."""
    taken = set(identifiers(module))
    state = fsm.state
    nxt = fsm.next_name or _fresh(f"{state}_next", taken)
    loads = {r: _fresh(f"{r}_next", taken) for r in fsm.registered}
    valuations = fsm.valuations()
    reps = [partition.representative(i) for i in range(partition.size)]

    def per_class(table: dict[Key, int], width: int, mapping: dict[int, int] | None = None) -> list[str]:
        rows = []
        for rep in reps:
            function = {v: table[(rep, v)] for v in valuations}
            if mapping is not None:
                function = {v: mapping[x] for v, x in function.items()}
            rows.append(_tree(fsm, function, width))
        return rows

    new_code = {code: enc.codes[partition.class_of[code]] for code in fsm.codes}
    decl = f"[{enc.width - 1}:0] " if enc.width > 1 else ""
    lines = [f"reg {decl}{state};", f"reg {decl}{nxt};"]
    lines += [f"reg [{fsm.widths[r] - 1}:0] {loads[r]};" for r in fsm.registered]
    comb = [f"{nxt} = {_mux(fsm, partition, enc, state, per_class(fsm.next_state, enc.width, new_code))};"]
    comb += [
        f"{loads[r]} = {_mux(fsm, partition, enc, state, per_class(t, fsm.widths[r]))};"
        for r, t in fsm.registered.items()
    ]
    outputs: dict[str, str] = {}
    for name, table in fsm.comb.items():
        outputs[name] = _mux(fsm, partition, enc, state, per_class(table, fsm.widths[name]))
    for name, moore in fsm.moore.items():
        if name in enc.bits:
            bit, inverted = enc.bits[name]
            outputs[name] = ("~" if inverted else "") + (f"{state}[{bit}]" if enc.width > 1 else state)
        else:
            rows = [_literal(fsm.widths[name], moore[rep]) for rep in reps]
            outputs[name] = _mux(fsm, partition, enc, state, rows)
    regs = fsm.reg_outputs | set(fsm.moore)
    comb += [f"{n} = {e};" for n, e in outputs.items() if n in regs]
    lines.append("always @* begin\n  " + "\n  ".join(comb) + "\nend")
    lines += [f"assign {n} = {e};" for n, e in outputs.items() if n not in regs]
    edge = f"{fsm.clock_edge} {fsm.clock}"
    if fsm.reset.asynchronous:
        edge += f" or {'negedge' if fsm.reset.active_low else 'posedge'} {fsm.reset.signal}"
    test = f"!{fsm.reset.signal}" if fsm.reset.active_low else fsm.reset.signal
    on_reset = [f"{state} <= {_literal(enc.width, enc.codes[0])};"]
    on_reset += [f"{r} <= {_literal(fsm.widths[r], fsm.reset_values[r])};" for r in fsm.registered]
    on_clock = [f"{state} <= {nxt};", *(f"{r} <= {loads[r]};" for r in fsm.registered)]
    lines.append(
        f"always @({edge}) begin\n  if ({test}) begin\n    "
        + "\n    ".join(on_reset)
        + "\n  end else begin\n    "
        + "\n    ".join(on_clock)
        + "\n  end\nend"
    )
    generated = parse_preprocessed("module __evoforge_fsm;\n" + "\n".join(lines) + "\nendmodule\n")
    new_items = list(generated.ast.description.definitions[0].items)
    result = copy.deepcopy(module)
    removed = {state, *([fsm.next_name] if fsm.next_name else [])}
    kept: list[object] = []
    for index, item in enumerate(result.items):
        if index == fsm.owned_items[0]:
            kept.extend(new_items)
        if index in fsm.owned_items:
            continue
        if isinstance(item, vast.Decl):
            names = [v for v in item.list if not (isinstance(v, vast.Reg) and v.name in removed)]
            if not names:
                continue
            item.list = tuple(names)
        kept.append(item)
    result.items = tuple(_drop_unused_localparams(kept))
    return result


def _fresh(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def _drop_unused_localparams(items: list[object]) -> list[object]:
    used: set[str] = set()
    for item in items:
        for _, node in walk_paths(item):
            if isinstance(node, vast.Identifier):
                used.add(node.name)
    result: list[object] = []
    for item in items:
        if isinstance(item, vast.Decl) and all(isinstance(v, vast.Localparam) for v in item.list):
            live = [v for v in item.list if v.name in used]
            if not live:
                continue
            item.list = tuple(live)
        result.append(item)
    return result
