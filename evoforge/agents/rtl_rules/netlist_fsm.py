"""State registers on the word-level netlist: registers that only ever hold *codes*.

After ``proc`` an FSM's state register, whatever the coding style (one, two or three processes;
``case`` or ``if``; ``parameter``, ``localparam`` or ``enum`` names; ``always`` or ``always_ff``), is a
register whose next value is *selected*, never computed: its ``D`` input is a tree of ``$mux`` /
``$pmux`` cells whose data words are constants, the register's own output, or other such trees;
and every reader of those words compares the whole word with a constant (``$eq``, ``$ne``; ``!s``
and ``|s`` compare with 0). :func:`code_registers` finds them. Such a register can hold its codes
under any injective renaming π: replace every constant in a code position by π(c) (and the reset
value), and each compare ``s == c`` becomes ``π(s) == π(c)``, which has the same truth value; each
select passes π of what it passed before. By induction from reset (or from any initial value, since π
is extended to a bijection of the code space), the renamed design shows the same outputs in every
cycle. :func:`renamed_equal` checks on the two netlists that a text patch did exactly that renaming
and nothing else. :func:`transitions` enumerates the reachable codes from reset with the exact
evaluator (:mod:`~evoforge.agents.rtl_rules.netlist_eval`), for encodings that follow the graph.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from evoforge.agents.rtl_rules.ast_utils import decline
from evoforge.agents.rtl_rules.netlist_eval import Evaluator, Register, Unsupported, Value, assign, registers
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

Word = tuple[Bit, ...]
MAX_STATE_BITS = 8
MAX_INPUT_BITS = 12
_COMPARES = ("$eq", "$ne", "$eqx", "$nex")
_ZERO_TESTS = ("$logic_not", "$reduce_or", "$reduce_bool")


@dataclass(frozen=True)
class CodeRegister:
    name: str  # the register's net name
    width: int
    register: Register
    words: frozenset[Word]  # every word that carries a code (Q, D, the select trees' outputs)
    muxes: frozenset[str]  # the select cells of the next-state tree
    codes: frozenset[int]  # constants in code positions (reset value included)
    zero_tested: bool  # a reader tests the word against 0 without writing the 0 (``!s``)
    variables: tuple[str, ...]  # named nets carrying codes (the register, the next-state variable …)
    reset_code: int | None = None  # the asynchronous reset's code (sync resets are a select)
    compares: tuple[str, ...] = field(default=(), compare=False)  # reader cells


def _const(word: Word) -> int | None:
    if not word or any(not isinstance(b, str) or b not in "01" for b in word):
        return None
    return sum(1 << i for i, b in enumerate(word) if b == "1")


def _undefined(word: Word) -> bool:
    return bool(word) and all(isinstance(b, str) and b in "xz" for b in word)


def _data_words(cell: Cell) -> list[Word]:
    if cell.type == "$mux":
        return [cell.port("A"), cell.port("B")]
    width = cell.param("WIDTH")
    b = cell.port("B")
    return [cell.port("A"), *(b[i : i + width] for i in range(0, len(b), width))]


def code_registers(module: ModuleNetlist) -> list[CodeRegister]:
    """Every register of ``module`` that only holds codes (see the module docstring)."""
    readers: dict[int, list[tuple[Cell, str]]] = {}
    for cell in module.cells:
        for port, bits in cell.connections.items():
            if port in ("Y", "Q", "X", "CO"):
                continue
            for bit in bits:
                if isinstance(bit, int):
                    readers.setdefault(bit, []).append((cell, port))
    port_bits = {b for name in module.ports for b in module.nets[name].bits if isinstance(b, int)}
    found = []
    for reg in registers(module):
        width = len(reg.q)
        if not 2 <= width <= MAX_STATE_BITS or reg.d == reg.q:
            continue
        net = module.net_with_bits(reg.q)
        if net is None:
            continue
        found_reg = _analyse(module, reg, net.name, readers, port_bits)
        if found_reg is not None:
            found.append(found_reg)
    return found


def _analyse(
    module: ModuleNetlist,
    reg: Register,
    name: str,
    readers: Mapping[int, list[tuple[Cell, str]]],
    port_bits: set[int],
) -> CodeRegister | None:
    width = len(reg.q)
    words: set[Word] = {reg.q, reg.d}
    muxes: dict[str, Cell] = {}
    codes: set[int] = set()
    wide: set[int] = set()  # bits above the code width of wide selects (``in ? B : A`` at 32 bits)
    todo = [reg.d]
    while todo:
        word = todo.pop()
        high = word[width:]
        if word[:width] == reg.q and all(b == "0" for b in high):
            continue
        value = _const(word)
        if value is not None:
            if value >> width:
                decline(f"{name} is loaded with {value}, which does not fit its {width} bits")
                return None
            codes.add(value)
            continue
        if _undefined(word):
            continue
        found = module.driver(word[0])
        if found is None or found[1] != "Y" or found[0].type not in ("$mux", "$pmux"):
            return None  # the next value is computed (a counter, a shift …), not selected
        cell = found[0]
        if cell.port("Y")[: len(word)] != word:
            return None
        if cell.name in muxes:
            continue
        muxes[cell.name] = cell
        words.add(word)
        wide.update(b for b in cell.port("Y")[width:] if isinstance(b, int))
        todo.extend(_data_words(cell))
    if not muxes:
        return None
    for bit in wide:
        for cell, port in readers.get(bit, ()):
            if cell.name not in muxes or port == "S":
                decline(f"the wide selects loading {name} are read beyond its {width} bits")
                return None
    if reg.reset_value is not None:
        codes.add(reg.reset_value)
    bits = {b for w in words for b in w[:width] if isinstance(b, int)}
    if bits & port_bits:
        decline(f"{name} holds codes but its value is visible at a port")
        return None
    zero_tested = False
    compares: list[str] = []
    for bit in bits:
        for cell, port in readers.get(bit, ()):
            if cell.name in muxes and port != "S":
                continue
            if cell is reg.cell and port == "D":
                continue
            word = cell.port(port)
            if cell.type in _COMPARES and word in words and len(word) == width:
                other = cell.port("B" if port == "A" else "A")
                value = _const(other)
                if value is None:
                    decline(f"{name} is compared with a value that is not a constant")
                    return None
                codes.add(value)
                compares.append(cell.name)
                continue
            if cell.type in _ZERO_TESTS and word in words and len(word) == width:
                zero_tested = True
                compares.append(cell.name)
                continue
            decline(f"{name} is read by a {cell.type} (line {cell.line}), not only compared with codes")
            return None
    variables = sorted(
        {n.name for n in module.nets.values() if not n.hidden and n.bits in words},
        key=lambda n: (n != name, n),
    )
    return CodeRegister(
        name=name,
        width=len(reg.q),
        register=reg,
        words=frozenset(words),
        muxes=frozenset(muxes),
        codes=frozenset(codes),
        zero_tested=zero_tested,
        variables=tuple(variables),
        reset_code=reg.reset_value,
        compares=tuple(compares),
    )


# ---------------------------------------------------------------------------------------------
# The transition graph


def transitions(module: ModuleNetlist, reg: CodeRegister, start: int) -> dict[int, set[int]] | None:
    """Codes reachable from ``start`` and their successors, over every valuation of the inputs the
    next state reads (None when there are too many such bits or the netlist cannot be evaluated)."""
    try:
        evaluator = Evaluator(module)
    except Unsupported:
        return None
    support = _support(module, reg.register.d, set(reg.register.q))
    if support is None or len(support) > MAX_INPUT_BITS:
        return None
    graph: dict[int, set[int]] = {}
    queue = deque([start])
    while queue:
        code = queue.popleft()
        if code in graph:
            continue
        graph[code] = set()
        for valuation in range(1 << len(support)):
            given: dict[int, Value] = {b: (valuation >> i) & 1 for i, b in enumerate(support)}
            assign(given, reg.register.q, code)
            nxt = evaluator.word(evaluator.run(given), reg.register.d)
            if nxt is None:
                return None
            graph[code].add(nxt)
            if nxt not in graph:
                queue.append(nxt)
    return graph


def _support(module: ModuleNetlist, word: Word, stop: set[Bit]) -> list[int] | None:
    """The input and register bits ``word`` depends on (``stop`` bits excluded)."""
    out: list[int] = []
    seen: set[int] = set()
    todo = [b for b in word if isinstance(b, int)]
    while todo:
        bit = todo.pop()
        if bit in seen or bit in stop:
            continue
        seen.add(bit)
        found = module.driver(bit)
        if found is None or found[0].type in ("$dff", "$adff", "$dffe", "$adffe", "$sdff", "$aldff"):
            out.append(bit)
            continue
        for port, bits in found[0].connections.items():
            if port not in ("Y", "X", "CO"):
                todo.extend(b for b in bits if isinstance(b, int))
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# The renaming check


def renamed_equal(
    before: ModuleNetlist, after: ModuleNetlist, reg: CodeRegister, mapping: Mapping[int, int]
) -> str | None:
    """Why ``after`` is not ``before`` with the codes of ``reg`` renamed by ``mapping`` (None: it is).

    Cells are matched by name; every connection and parameter must be identical except constants in
    code positions (data words of the next-state selects, the constant side of a compare, the
    asynchronous reset value), which must be the renamed constants.
    """
    if set(before.ports) != set(after.ports):
        return "the ports differ"
    cells = {c.name: c for c in after.cells}
    if len(cells) != len(before.cells):
        return f"{len(before.cells)} cells before, {len(cells)} after"
    compares = set(reg.compares)

    def renamed(word: Word, other: Word, width: int | None = None) -> bool:
        value, new = _const(word), _const(other)
        if value is None or new is None or len(word) != len(other):
            return word == other
        return mapping.get(value, value) == new

    for cell in before.cells:
        twin = cells.get(cell.name)
        if twin is None or twin.type != cell.type:
            return f"cell {cell.name} ({cell.type}) has no counterpart"
        for key, value in cell.params.items():
            if key == "ARST_VALUE" and cell is reg.register.cell:
                if mapping.get(cell.param(key), cell.param(key)) != twin.param(key):
                    return "the reset value is not the renamed code"
            elif twin.params.get(key) != value:
                return f"parameter {key} of {cell.name} changed"
        if set(twin.connections) != set(cell.connections):
            return f"the ports of {cell.name} changed"
        for port, bits in cell.connections.items():
            other = twin.connections[port]
            if bits == other:
                continue
            if cell.name in reg.muxes and port in ("A", "B"):
                olds, news = _split(cell, port, bits), _split(cell, port, other)
                if len(olds) == len(news) and all(renamed(o, n) for o, n in zip(olds, news, strict=True)):
                    continue
            elif (
                cell.name in compares
                and cell.type in _COMPARES
                and port in ("A", "B")
                and renamed(bits, other)
            ):
                continue
            return f"{port} of {cell.name} ({cell.type}, line {cell.line}) changed beyond the renaming"
    return None


def _split(cell: Cell, port: str, bits: Word) -> list[Word]:
    if cell.type == "$pmux" and port == "B":
        width = cell.param("WIDTH")
        return [bits[i : i + width] for i in range(0, len(bits), width)]
    return [bits]


def reset_code(module: ModuleNetlist, reg: CodeRegister) -> int | None:
    """The code the register is reset to: its asynchronous reset value, or the constant its next
    state takes whenever one input bit has one value (a synchronous reset), else None."""
    if reg.reset_code is not None:
        return reg.reset_code
    try:
        evaluator = Evaluator(module)
    except Unsupported:
        return None
    support = _support(module, reg.register.d, set(reg.register.q))
    if support is None or len(support) > MAX_INPUT_BITS:
        return None
    inputs = {b for p, d in module.ports.items() if d == "input" for b in module.nets[p].bits}
    states = sorted(reg.codes)[: 1 << reg.width]
    for bit in support:
        if bit not in inputs:
            continue
        others = [b for b in support if b != bit]
        for level in (1, 0):
            seen: set[int | None] = set()
            for code in states:
                for valuation in range(1 << len(others)):
                    given: dict[int, Value] = {b: (valuation >> i) & 1 for i, b in enumerate(others)}
                    given[bit] = level
                    assign(given, reg.register.q, code)
                    seen.add(evaluator.word(evaluator.run(given), reg.register.d))
                    if len(seen) > 1:
                        break
                if len(seen) > 1:
                    break
            if len(seen) == 1 and None not in seen:
                return seen.pop()
    return None
