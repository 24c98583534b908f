"""Exact evaluation of a word-level Yosys netlist (the cells ``proc`` leaves), two-valued with x.

:class:`Evaluator` orders a module's combinational cells and computes every net bit from the values
of the module's inputs and of its registers' outputs (``Q``), following the cell semantics of Yosys's
``simlib.v``: operands are extended to the result width by their signedness (an operation is signed
only when both operands are), results are truncated to ``Y_WIDTH``. A bit is 0, 1 or None (x): an
x/z constant, a ``$pmux`` with several selects set, a division by zero or a ``$shiftx`` out of range
give None, and every operator except the selects makes its whole result None when one of its
operand bits is None. Cells outside this set (memories, ``$pow``, ``$lut``, tristates …) raise
:class:`Unsupported` — rules that need the evaluator then decline the design.

Rules use it to extract FSMs, to bound register values and to test operator hypotheses before they
prove them; the verifier cascade re-checks every proposal on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

REGISTERS = frozenset({"$dff", "$adff", "$dffe", "$adffe", "$sdff", "$sdffe", "$sdffce", "$aldff", "$dffsr"})
IGNORED = frozenset({"$assert", "$assume", "$cover", "$live", "$fair", "$check", "$print", "$scopeinfo"})


class Unsupported(Exception):
    """The netlist has a cell (or a loop) the evaluator does not model."""


Value = int | None  # one bit: 0, 1 or None (x)
Op = Callable[["Cell", int, int, int, int, int], int | None]
Fetch = Callable[[tuple[Bit, ...]], list[Value]]


@dataclass(frozen=True)
class Register:
    cell: Cell
    d: tuple[Bit, ...]
    q: tuple[Bit, ...]
    clock: Bit | None
    reset: Bit | None  # asynchronous reset bit ($adff), if any
    reset_active: int  # 1: active high
    reset_value: int | None  # the value an asynchronous reset loads
    enable: Bit | None
    enable_active: int


def registers(module: ModuleNetlist) -> list[Register]:
    out = []
    for cell in module.cells:
        if cell.type not in REGISTERS:
            continue
        reset = cell.port("ARST")[0] if cell.type in ("$adff", "$adffe") else None
        enable = cell.port("EN")[0] if cell.port("EN") else None
        out.append(
            Register(
                cell=cell,
                d=cell.port("D"),
                q=cell.port("Q"),
                clock=(cell.port("CLK") or (None,))[0],
                reset=reset,
                reset_active=cell.param("ARST_POLARITY") if reset is not None else 1,
                reset_value=cell.param("ARST_VALUE") if reset is not None else None,
                enable=enable,
                enable_active=cell.param("EN_POLARITY") if enable is not None else 1,
            )
        )
    return out


def _int(bits: Iterable[Value]) -> int | None:
    value = 0
    for i, bit in enumerate(bits):
        if bit is None:
            return None
        value |= bit << i
    return value


def _bits(value: int | None, width: int) -> list[Value]:
    if value is None:
        return [None] * width
    return [(value >> i) & 1 for i in range(width)]


def _extend(value: int, width: int, signed: bool, to: int) -> int:
    """``value`` (``width`` bits) extended to ``to`` bits (as an unsigned number)."""
    if signed and width and (value >> (width - 1)) & 1 and to > width:
        value |= ((1 << (to - width)) - 1) << width
    return value & ((1 << to) - 1) if to >= 0 else 0


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if width and (value >> (width - 1)) & 1 else value


class Evaluator:
    """Values of every bit of ``module`` for given input and register-output values."""

    def __init__(self, module: ModuleNetlist) -> None:
        self.module = module
        self.registers = registers(module)
        comb = _roms_as_selects(
            [c for c in module.cells if c.type not in REGISTERS and c.type not in IGNORED]
        )
        for cell in comb:
            if cell.type not in _OPS and cell.type not in ("$mux", "$pmux", "$bmux", "$bwmux", "$shiftx"):
                raise Unsupported(f"{cell.type} cells are not modelled")
        driver: dict[int, Cell] = {}
        for cell in comb:
            for port, bits in cell.connections.items():
                if port in ("Y", "X", "CO"):
                    for bit in bits:
                        if isinstance(bit, int):
                            driver[bit] = cell
        order: list[Cell] = []
        state: dict[str, int] = {}  # 1: visiting, 2: done

        def visit(cell: Cell) -> None:
            stack = [(cell, False)]
            while stack:
                current, expanded = stack.pop()
                mark = state.get(current.name)
                if expanded:
                    state[current.name] = 2
                    order.append(current)
                    continue
                if mark == 2:
                    continue
                if mark == 1:
                    raise Unsupported("the netlist has a combinational loop")
                state[current.name] = 1
                stack.append((current, True))
                for port, bits in current.connections.items():
                    if port in ("Y", "X", "CO"):
                        continue
                    for bit in bits:
                        src = driver.get(bit) if isinstance(bit, int) else None
                        if src is not None and state.get(src.name) != 2:
                            if state.get(src.name) == 1:
                                raise Unsupported("the netlist has a combinational loop")
                            stack.append((src, False))

        for cell in comb:
            visit(cell)
        self.order = tuple(order)

    def run(self, given: Mapping[int, Value]) -> dict[int, Value]:
        """Every bit's value; ``given`` holds the inputs' and the registers' Q bits (others are x)."""
        values: dict[int, Value] = dict(given)

        def get(bits: tuple[Bit, ...]) -> list[Value]:
            out: list[Value] = []
            for bit in bits:
                if isinstance(bit, str):
                    out.append(1 if bit == "1" else 0 if bit == "0" else None)
                else:
                    out.append(values.get(bit))
            return out

        for cell in self.order:
            result = _evaluate(cell, get)
            for bit, value in zip(cell.port("Y"), result, strict=False):
                if isinstance(bit, int):
                    values[bit] = value
        return values

    def word(self, values: Mapping[int, Value], bits: tuple[Bit, ...]) -> int | None:
        out = []
        for bit in bits:
            if isinstance(bit, str):
                out.append(1 if bit == "1" else 0 if bit == "0" else None)
            else:
                out.append(values.get(bit))
        return _int(out)


def _roms_as_selects(cells: list[Cell]) -> list[Cell]:
    """``cells`` with each read-only memory (``proc_rom``'s case tables) as an equivalent ``$bmux``.

    A memory qualifies when it has no write port, every initialisation is constant and each read is
    asynchronous and always enabled; its read then is the table word at the address (x where the
    table has no word). Other memory cells stay (and the evaluator refuses them).
    """
    inits: dict[str, list[Cell]] = {}
    written: set[str] = set()
    for cell in cells:
        memid = str(cell.params.get("MEMID", ""))
        if cell.type in ("$meminit", "$meminit_v2"):
            inits.setdefault(memid, []).append(cell)
        elif cell.type in ("$memwr", "$memwr_v2", "$mem", "$mem_v2"):
            written.add(memid)
    out: list[Cell] = []
    for cell in cells:
        memid = str(cell.params.get("MEMID", ""))
        if cell.type in ("$meminit", "$meminit_v2") and memid not in written:
            continue
        if cell.type not in ("$memrd", "$memrd_v2") or memid in written or memid not in inits:
            out.append(cell)
            continue
        table = _rom_table(cell, inits[memid])
        if table is None:
            out.append(cell)
            continue
        width = cell.param("WIDTH")
        out.append(
            Cell(
                cell.name,
                "$bmux",
                {"WIDTH": width, "S_WIDTH": len(cell.port("ADDR"))},
                {"A": table, "S": cell.port("ADDR"), "Y": cell.port("DATA")},
                cell.src,
            )
        )
    return out


def _rom_table(read: Cell, inits: list[Cell]) -> tuple[Bit, ...] | None:
    if read.param("CLK_ENABLE") or read.port("EN") != ("1",):
        return None
    width = read.param("WIDTH")
    depth = 1 << len(read.port("ADDR"))
    table: list[Bit] = ["x"] * (depth * width)
    for init in sorted(inits, key=lambda c: c.param("PRIORITY")):
        address = _int([1 if b == "1" else 0 if b == "0" else None for b in init.port("ADDR")])
        data = init.port("DATA")
        if address is None or any(b not in ("0", "1", "x") for b in data) or init.param("WIDTH") != width:
            return None
        if init.port("EN") and any(b != "1" for b in init.port("EN")):
            return None
        start = address * width
        for k, bit in enumerate(data):
            if start + k < len(table):
                table[start + k] = bit
    return tuple(table)


def assign(values: dict[int, Value], bits: tuple[Bit, ...], value: int) -> None:
    """Set ``bits`` (the non-constant ones) to ``value``."""
    for i, bit in enumerate(bits):
        if isinstance(bit, int):
            values[bit] = (value >> i) & 1


def _evaluate(cell: Cell, fetch: Fetch) -> list[Value]:
    kind = cell.type
    y_width = len(cell.port("Y"))
    if kind == "$mux":
        select = fetch(cell.port("S"))[0]
        if select is None:
            left, right = fetch(cell.port("A")), fetch(cell.port("B"))
            return [x if x == y else None for x, y in zip(left, right, strict=True)]
        return list(fetch(cell.port("B") if select else cell.port("A")))
    if kind == "$pmux":
        width = cell.param("WIDTH")
        selects = fetch(cell.port("S"))
        if any(x is None for x in selects):
            return [None] * width
        chosen = [i for i, x in enumerate(selects) if x]
        if not chosen:
            return list(fetch(cell.port("A")))
        if len(chosen) > 1:
            return [None] * width
        words = cell.port("B")
        return list(fetch(words[chosen[0] * width : (chosen[0] + 1) * width]))
    if kind == "$bmux":
        width = cell.param("WIDTH")
        index = _int(fetch(cell.port("S")))
        if index is None:
            return [None] * width
        return list(fetch(cell.port("A")[index * width : (index + 1) * width]))
    if kind == "$bwmux":
        left, right, mask = (fetch(cell.port(p)) for p in ("A", "B", "S"))
        return [
            None if si is None else (bi if si else ai) for ai, bi, si in zip(left, right, mask, strict=True)
        ]
    if kind == "$shiftx":
        data = fetch(cell.port("A"))
        amount_bits = fetch(cell.port("B"))
        shift = _int(amount_bits)
        if shift is None:
            return [None] * y_width
        if cell.param("B_SIGNED"):
            shift = _signed(shift, len(amount_bits))
        return [data[i + shift] if 0 <= i + shift < len(data) else None for i in range(y_width)]
    a_bits = fetch(cell.port("A")) if cell.port("A") else []
    b_bits = fetch(cell.port("B")) if cell.port("B") else []
    a, b = _int(a_bits), _int(b_bits)
    if a is None or (cell.port("B") and b is None):
        return [None] * y_width
    value = _OPS[kind](cell, a, b or 0, len(a_bits), len(b_bits), y_width)
    return _bits(value, y_width)


def _arith_signed(cell: Cell) -> bool:
    return bool(cell.param("A_SIGNED")) and bool(cell.param("B_SIGNED"))


def _ab(cell: Cell, a: int, b: int, aw: int, bw: int, to: int) -> tuple[int, int]:
    signed = _arith_signed(cell)
    return _extend(a, aw, signed, to), _extend(b, bw, signed, to)


def _binary(op: str) -> Op:
    def run(cell: Cell, a: int, b: int, aw: int, bw: int, yw: int) -> int | None:
        x, y = _ab(cell, a, b, aw, bw, yw)
        mask = (1 << yw) - 1
        if op == "and":
            return x & y
        if op == "or":
            return x | y
        if op == "xor":
            return x ^ y
        if op == "xnor":
            return ~(x ^ y) & mask
        if op == "add":
            return (x + y) & mask
        if op == "sub":
            return (x - y) & mask
        if op == "mul":
            return (x * y) & mask
        raise AssertionError(op)

    return run


def _compare(op: str) -> Op:
    def run(cell: Cell, a: int, b: int, aw: int, bw: int, yw: int) -> int | None:
        width = max(aw, bw, 1)
        signed = _arith_signed(cell)
        x, y = _extend(a, aw, signed, width), _extend(b, bw, signed, width)
        if signed:
            x, y = _signed(x, width), _signed(y, width)
        return int({"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y, "ne": x != y}[op])

    return run


def _divmod(op: str) -> Op:
    def run(cell: Cell, a: int, b: int, aw: int, bw: int, yw: int) -> int | None:
        width = max(aw, bw, yw)
        signed = _arith_signed(cell)
        x, y = _extend(a, aw, signed, width), _extend(b, bw, signed, width)
        if signed:
            x, y = _signed(x, width), _signed(y, width)
        if y == 0:
            return None
        quotient = abs(x) // abs(y)
        if (x < 0) != (y < 0):
            quotient = -quotient
        value = quotient if op == "div" else x - quotient * y
        return value & ((1 << yw) - 1)

    return run


def _shift(op: str) -> Op:
    def run(cell: Cell, a: int, b: int, aw: int, bw: int, yw: int) -> int | None:
        a_signed = bool(cell.param("A_SIGNED"))
        width = max(aw, yw)
        x = _extend(a, aw, a_signed, width)
        amount = b
        if op in ("shift",) and cell.param("B_SIGNED"):
            amount = _signed(b, bw)
        mask = (1 << yw) - 1
        if op in ("shl", "sshl") or (op == "shift" and amount < 0):
            return (x << (-amount if op == "shift" else amount)) & mask
        if op == "sshr" and a_signed:
            return (_signed(x, width) >> amount) & mask
        return (x >> amount) & mask

    return run


def _unary(op: str) -> Op:
    def run(cell: Cell, a: int, b: int, aw: int, bw: int, yw: int) -> int | None:
        signed = bool(cell.param("A_SIGNED"))
        mask = (1 << yw) - 1
        if op == "not":
            return ~_extend(a, aw, signed, yw) & mask
        if op == "neg":
            return (-_extend(a, aw, signed, yw)) & mask
        if op == "pos":
            return _extend(a, aw, signed, yw)
        if op == "reduce_and":
            return int(aw > 0 and a == (1 << aw) - 1)
        if op in ("reduce_or", "reduce_bool"):
            return int(a != 0)
        if op == "reduce_xor":
            return bin(a).count("1") & 1
        if op == "reduce_xnor":
            return 1 - (bin(a).count("1") & 1)
        if op == "logic_not":
            return int(a == 0)
        raise AssertionError(op)

    return run


def _logic(op: str) -> Op:
    def run(cell: Cell, a: int, b: int, aw: int, bw: int, yw: int) -> int | None:
        return int((a != 0 and b != 0) if op == "and" else (a != 0 or b != 0))

    return run


_OPS: dict[str, Op] = {
    "$and": _binary("and"),
    "$or": _binary("or"),
    "$xor": _binary("xor"),
    "$xnor": _binary("xnor"),
    "$add": _binary("add"),
    "$sub": _binary("sub"),
    "$mul": _binary("mul"),
    "$div": _divmod("div"),
    "$mod": _divmod("mod"),
    "$lt": _compare("lt"),
    "$le": _compare("le"),
    "$gt": _compare("gt"),
    "$ge": _compare("ge"),
    "$eq": _compare("eq"),
    "$ne": _compare("ne"),
    "$eqx": _compare("eq"),
    "$nex": _compare("ne"),
    "$shl": _shift("shl"),
    "$sshl": _shift("sshl"),
    "$shr": _shift("shr"),
    "$sshr": _shift("sshr"),
    "$shift": _shift("shift"),
    "$not": _unary("not"),
    "$neg": _unary("neg"),
    "$pos": _unary("pos"),
    "$reduce_and": _unary("reduce_and"),
    "$reduce_or": _unary("reduce_or"),
    "$reduce_bool": _unary("reduce_bool"),
    "$reduce_xor": _unary("reduce_xor"),
    "$reduce_xnor": _unary("reduce_xnor"),
    "$logic_not": _unary("logic_not"),
    "$logic_and": _logic("and"),
    "$logic_or": _logic("or"),
}


def cone(
    driver: Mapping[int, Cell],
    bits: Iterable[Bit],
    *,
    inputs_of: Callable[[Cell, int], Iterable[Bit]] | None = None,
    max_leaves: int | None = None,
) -> tuple[list[int], set[str]] | None:
    """Leaf bits (module inputs, register outputs, undriven bits) and cell names of the combinational
    cone of ``bits``; ``driver`` maps a net bit to the cell whose ``Y`` drives it. ``inputs_of(cell,
    index)`` narrows the inputs output bit ``index`` depends on (default: every input port's bits).
    None when the cone has more than ``max_leaves`` leaves."""
    leaves: list[int] = []
    cells: set[str] = set()
    seen: set[int] = set()
    stack = [b for b in bits if isinstance(b, int)]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        cell = driver.get(current)
        if cell is None:
            leaves.append(current)
            if max_leaves is not None and len(leaves) > max_leaves:
                return None
            continue
        cells.add(cell.name)
        if inputs_of is None:
            feeding: Iterable[Bit] = (b for port, bs in cell.connections.items() if port != "Y" for b in bs)
        else:
            feeding = inputs_of(cell, cell.port("Y").index(current))
        stack.extend(b for b in feeding if isinstance(b, int))
    return sorted(leaves), cells
