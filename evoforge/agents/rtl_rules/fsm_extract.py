"""FSM extraction: a module's state register with its next-state and output functions as explicit tables.

An FSM is a register ``S`` written by one clocked block ``always @(posedge clk [or edge rst])`` whose
body is ``if (<reset>) <constant assignments> else <body>`` (sync or async reset, active high or
low), the combinational blocks (``always @*``) reading ``S`` (next state, outputs) and the
``assign``s reading ``S`` or the next-state variable. These *owned* items are evaluated exactly
(:mod:`~evoforge.agents.rtl_rules.fsm_eval`) for every state reachable from the reset code and
every valuation of the other signals they read (the FSM's *inputs*, at most
:data:`MAX_INPUT_BITS` bits). The result is a set of tables, so minimisation and re-encoding can
regenerate the owned items while the rest of the module stays as it was.

Anything outside that subset — a state register read elsewhere or exposed as a port, latches, x/z
literals, casez, signed values, partial left-hand sides, a register that holds a value that is not
a function of the state — makes :func:`extract_fsm` return None: no FSM beats a wrong one. A
registered output that always equals a function of the state (``o <= f(next)`` with ``o``'s reset
value equal to ``f(reset state)``) becomes a Moore output of the state.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules.ast_utils import decline, identifiers, replace_at, walk_paths
from evoforge.agents.rtl_rules.fsm_eval import Evaluator, Unsupported, declarations, parameters

log = logging.getLogger(__name__)

MAX_INPUT_BITS = 8
MAX_STATES = 64
HOLD = -1  # a registered output not assigned on this path (it keeps its value)

Valuation = tuple[int, ...]  # one value per input signal, in ``Fsm.inputs`` order
Key = tuple[int, Valuation]  # (state code, input valuation)


@dataclass(frozen=True)
class Reset:
    signal: str
    active_low: bool
    asynchronous: bool


@dataclass(frozen=True)
class Fsm:
    module: str
    state: str  # the state register
    width: int
    next_name: str | None  # the combinational next-state variable, if the design has one
    clock: str
    clock_edge: str  # "posedge" | "negedge"
    reset: Reset
    reset_code: int
    codes: tuple[int, ...]  # reachable state codes, breadth first from the reset code
    names: dict[int, str]  # code → the parameter naming it, where the design names it
    named_codes: int  # distinct state constants the owned logic mentions
    inputs: tuple[tuple[str, int], ...]  # (signal, width) read by the owned logic
    next_state: dict[Key, int]
    comb: dict[str, dict[Key, int]]  # combinational outputs (Mealy in general)
    moore: dict[str, dict[int, int]]  # registered outputs that equal a function of the state
    registered: dict[str, dict[Key, int]]  # other registered outputs: their next value
    reset_values: dict[str, int]  # registered outputs' reset values
    widths: dict[str, int]  # every output's width
    reg_outputs: frozenset[str]  # outputs declared ``reg`` (driven from an always block)
    owned_items: tuple[int, ...]  # indexes into ``ModuleDef.items`` that the FSM regenerates

    def valuations(self) -> list[Valuation]:
        return list(itertools.product(*(range(1 << w) for _, w in self.inputs)))


def extract_fsm(module: vast.ModuleDef) -> Fsm | None:
    """The FSM of ``module`` (the first state register that extracts exactly), or None."""
    try:
        params = parameters(module)
        widths, regs, ports = declarations(module, {k: v for k, (v, _) in params.items()})
    except Unsupported:
        return None
    items = [_blocking_comb(item) for item in module.items or ()]
    for index, item in enumerate(items):
        clocked = _clocked(item)
        if clocked is None:
            continue
        try:
            candidates = _state_candidates(module, item)
        except Unsupported as exc:
            decline(f"the clocked block at line {item.lineno} is not a state register's: {exc}")
            continue
        for state in candidates:
            try:
                return _extract(module, items, index, clocked, state, params, widths, regs, ports)
            except Unsupported as exc:
                log.debug("fsm: %s.%s is not extracted: %s", module.name, state, exc)
                decline(f"state register {state} in module {module.name}: {exc}")
    return None


def _blocking_comb(item: Any) -> Any:
    """A combinational block with its nonblocking assignments made blocking, when that is exact.

    In a level-sensitive block the last assignment on a path gives a variable its value either way;
    the kinds differ only for a read after the write within the block (the nonblocking write is not
    yet visible). So when no variable written nonblockingly is read in the block, the block computes
    the same values with blocking assignments (``next <= IDLE;`` in an ``always @*``).
    """
    if not _is_comb(item):
        return item
    nonblocking = [n for _, n in walk_paths(item.statement) if isinstance(n, vast.NonblockingSubstitution)]
    if not nonblocking:
        return item
    written = {name for n in nonblocking for name in identifiers(n.left)}
    if written & _reads(item):
        return item
    copied = copy.deepcopy(item)
    for path, node in list(walk_paths(copied)):
        if isinstance(node, vast.NonblockingSubstitution):
            replace_at(copied, path, vast.BlockingSubstitution(node.left, node.right, lineno=node.lineno))
    return copied


# ---------------------------------------------------------------------------------------------
# Structure


@dataclass(frozen=True)
class _Clocked:
    clock: str
    edge: str
    reset: Reset
    reset_stmt: Any
    body: Any


def _unwrap(stmt: Any) -> Any:
    while isinstance(stmt, vast.Block) and len(stmt.statements or ()) == 1:
        stmt = stmt.statements[0]
    return stmt


def _reset_test(cond: Any) -> tuple[str, bool] | None:
    """(signal, active_low) when ``cond`` tests one signal: ``r``, ``!r``, ``~r``, ``r == 0`` …"""
    cond = cond.var if isinstance(cond, vast.Rvalue) else cond
    if isinstance(cond, vast.Identifier):
        return cond.name, False
    if isinstance(cond, vast.Ulnot | vast.Unot) and isinstance(cond.right, vast.Identifier):
        return cond.right.name, True
    if (
        isinstance(cond, vast.Eq | vast.NotEq)
        and isinstance(cond.left, vast.Identifier)
        and isinstance(cond.right, vast.IntConst)
    ):
        value = str(cond.right.value).split("'")[-1].lstrip("bdhoBDHO")
        if value in ("0", "1"):
            high = (value == "1") == isinstance(cond, vast.Eq)
            return cond.left.name, not high
    return None


def _clocked(item: Any) -> _Clocked | None:
    if not isinstance(item, vast.Always) or item.sens_list is None:
        return None
    sens = list(item.sens_list.list)
    if not sens or any(s.type not in ("posedge", "negedge") for s in sens) or len(sens) > 2:
        return None
    if any(not isinstance(s.sig, vast.Identifier) for s in sens):
        return None
    body = _unwrap(item.statement)
    if not isinstance(body, vast.IfStatement):
        return None
    test = _reset_test(body.cond)
    if test is None:
        return None
    signal, active_low = test
    names = [s.sig.name for s in sens]
    if len(sens) == 2:
        if signal not in names:
            return None
        rst = sens[names.index(signal)]
        if (rst.type == "negedge") != active_low:
            return None
        clk = sens[1 - names.index(signal)]
        return _Clocked(
            clk.sig.name, clk.type, Reset(signal, active_low, True), body.true_statement, body.false_statement
        )
    if signal == names[0]:
        return None
    return _Clocked(
        names[0], sens[0].type, Reset(signal, active_low, False), body.true_statement, body.false_statement
    )


def _assigned(stmt: Any, kind: type[Any]) -> list[str]:
    names: list[str] = []
    node: Any
    for _, node in walk_paths(stmt) if stmt is not None else ():
        if isinstance(node, vast.Substitution | vast.Assign):
            if not isinstance(node, kind):
                raise Unsupported(f"mixed assignment kinds ({type(node).__name__})")
            names.extend(n for n in identifiers(node.left) if n not in names)
    return names


def _state_candidates(module: vast.ModuleDef, clocked: Any) -> list[str]:
    """Registers of the clocked block that a ``case`` selects on or an ``==`` compares, most used first."""
    assigned = _assigned(clocked.statement, vast.NonblockingSubstitution)
    uses: dict[str, int] = dict.fromkeys(assigned, 0)
    for _, node in walk_paths(module):
        subject = None
        if isinstance(node, vast.CaseStatement):
            subject = node.comp
        elif isinstance(node, vast.Eq | vast.NotEq):
            subject = node.left
        subject = subject.var if isinstance(subject, vast.Rvalue) else subject
        if isinstance(subject, vast.Identifier) and subject.name in uses:
            uses[subject.name] += 1
    return sorted((n for n in assigned if uses[n]), key=lambda n: -uses[n])


def _is_comb(item: Any) -> bool:
    return isinstance(item, vast.Always) and all(s.type in ("all", "level") for s in item.sens_list.list)


def _reads(item: Any) -> set[str]:
    """Signals an item reads (left-hand sides and sensitivity lists excluded)."""
    found: set[str] = set()
    for _, node in walk_paths(item):
        if isinstance(node, vast.Substitution | vast.Assign):
            found.update(_lhs_index_reads(node.left))
            found.update(identifiers(node.right))
        elif isinstance(node, vast.IfStatement):
            found.update(identifiers(node.cond))
        elif isinstance(node, vast.CaseStatement):
            found.update(identifiers(node.comp))
            for case in node.caselist:
                for cond in case.cond or ():
                    found.update(identifiers(cond))
        elif isinstance(node, vast.Instance | vast.Cond | vast.SystemCall):
            found.update(identifiers(node))
    return found


def _lhs_index_reads(lhs: Any) -> set[str]:
    target = lhs.var if isinstance(lhs, vast.Lvalue) else lhs
    if isinstance(target, vast.Identifier):
        return set()
    return set(identifiers(target))  # conservatively: everything in a complex left-hand side


def _next_name(body: Any, state: str) -> str | None:
    """The variable ``S`` is loaded from (``S <= next``), when every load of ``S`` reads one variable."""
    sources = set()
    for _, node in walk_paths(body) if body is not None else ():
        if isinstance(node, vast.NonblockingSubstitution) and identifiers(node.left) == [state]:
            right = node.right.var if isinstance(node.right, vast.Rvalue) else node.right
            sources.add(right.name if isinstance(right, vast.Identifier) else None)
    return sources.pop() if len(sources) == 1 else None


# ---------------------------------------------------------------------------------------------
# Evaluation


def _extract(
    module: vast.ModuleDef,
    items: list[Any],
    index: int,
    clocked: _Clocked,
    state: str,
    params: dict[str, tuple[int, int]],
    widths: dict[str, int],
    regs: set[str],
    ports: set[str],
) -> Fsm:
    if state in ports or state not in widths or state not in regs:
        raise Unsupported("the state register is a port or undeclared")
    evaluator = Evaluator(widths, params)
    registers = _assigned(clocked.body, vast.NonblockingSubstitution)
    reset_values: dict[str, int] = {}
    evaluator.run(clocked.reset_stmt, {}, reset_values, blocking=False)
    if state not in reset_values or any(r not in reset_values for r in registers):
        raise Unsupported("a register of the clocked block has no constant reset value")
    registers = list(dict.fromkeys([state, *registers, *reset_values]))
    next_name = _next_name(clocked.body, state)
    if next_name is not None and (next_name in ports or next_name in params):
        next_name = None
    coded = {state} | ({next_name} if next_name else set())
    # owned combinational blocks: level-sensitive blocks reading a coded variable
    combs = [i for i, it in enumerate(items) if _is_comb(it) and _reads(it) & coded]
    comb_vars: list[str] = []
    for i in combs:
        comb_vars.extend(_assigned(items[i].statement, vast.BlockingSubstitution))
    if next_name is not None and next_name not in comb_vars:
        next_name, coded = None, {state}
    assigns = [
        i for i, it in enumerate(items) if isinstance(it, vast.Assign) and set(identifiers(it.right)) & coded
    ]
    assign_vars = [n for i in assigns for n in identifiers(items[i].left)]
    owned = sorted({index, *combs, *assigns})
    outputs = [n for n in dict.fromkeys([*comb_vars, *assign_vars]) if n != next_name]
    driven = set(registers) | set(comb_vars) | set(assign_vars)
    if state in comb_vars or set(registers) & (set(comb_vars) | set(assign_vars)):
        raise Unsupported("a register is also driven combinationally")
    for i, item in enumerate(items):
        if i in owned:
            continue
        if isinstance(item, vast.Always | vast.Assign | vast.InstanceList | vast.Initial):
            if _reads(item) & coded:
                raise Unsupported("the state is read outside the FSM")
            if isinstance(item, vast.Always | vast.Assign) and set(_writes(item)) & driven:
                raise Unsupported("an FSM signal is driven elsewhere too")
        elif isinstance(item, vast.InstanceList | vast.Initial):
            raise Unsupported("instances or initial blocks")
    if clocked.clock in _all_reads(items, owned) or any(n not in widths for n in driven):
        raise Unsupported("the clock is read as data, or an FSM signal is undeclared")
    inputs = _inputs(items, owned, driven | coded, params, widths, clocked)
    fsm_codes = _evaluate(
        evaluator, items, combs, assigns, clocked, state, inputs, reset_values[state], registers
    )
    codes, next_state, comb, reg_tables = fsm_codes
    moore: dict[str, dict[int, int]] = {}
    registered: dict[str, dict[Key, int]] = {}
    for reg in registers[1:]:
        table = _moore(reg_tables[reg], next_state, reset_values[reg], reset_values[state], codes)
        if table is not None:
            moore[reg] = table
        elif HOLD in reg_tables[reg].values():
            raise Unsupported(f"{reg} holds a value that is not a function of the state")
        else:
            registered[reg] = reg_tables[reg]
    reads = _all_reads(items, owned)
    named = {v: n for n, (v, _) in reversed(params.items()) if v in codes and n in reads}
    mentioned = {v for n, (v, _) in params.items() if v < (1 << widths[state]) and n in reads}
    return Fsm(
        module=module.name,
        state=state,
        width=widths[state],
        next_name=next_name,
        clock=clocked.clock,
        clock_edge=clocked.edge,
        reset=clocked.reset,
        reset_code=reset_values[state],
        codes=tuple(codes),
        names=named,
        named_codes=len(mentioned),
        inputs=tuple(inputs),
        next_state=next_state,
        comb={n: comb[n] for n in outputs},
        moore=moore,
        registered=registered,
        reset_values={r: reset_values[r] for r in registers[1:]},
        widths={n: widths[n] for n in [*outputs, *registers]},
        reg_outputs=frozenset(n for n in outputs if n in regs),
        owned_items=tuple(owned),
    )


def _writes(item: Any) -> list[str]:
    names: list[str] = []
    for _, node in walk_paths(item):
        if isinstance(node, vast.Substitution | vast.Assign):
            names.extend(identifiers(node.left))
    return names


def _all_reads(items: list[Any], which: list[int]) -> set[str]:
    found: set[str] = set()
    for i in which:
        found |= _reads(items[i])
    return found


def _inputs(
    items: list[Any],
    owned: list[int],
    driven: set[str],
    params: dict[str, tuple[int, int]],
    widths: dict[str, int],
    clocked: _Clocked,
) -> list[tuple[str, int]]:
    reads = _all_reads(items, [i for i in owned if not _clocked(items[i])]) | _reads(clocked.body)
    names = sorted(reads - driven - set(params) - {clocked.clock})
    if any(n not in widths for n in names):
        raise Unsupported("an input of the FSM is undeclared, signed or a memory")
    inputs = [(n, widths[n]) for n in names]
    if sum(w for _, w in inputs) > MAX_INPUT_BITS:
        raise Unsupported(f"more than {MAX_INPUT_BITS} input bits")
    return inputs


def _evaluate(
    evaluator: Evaluator,
    items: list[Any],
    combs: list[int],
    assigns: list[int],
    clocked: _Clocked,
    state: str,
    inputs: list[tuple[str, int]],
    reset_code: int,
    registers: list[str],
) -> tuple[list[int], dict[Key, int], dict[str, dict[Key, int]], dict[str, dict[Key, int]]]:
    valuations = list(itertools.product(*(range(1 << w) for _, w in inputs)))
    comb_sets = [set(_assigned(items[i].statement, vast.BlockingSubstitution)) for i in combs]
    codes, queue = [reset_code], deque([reset_code])
    next_state: dict[Key, int] = {}
    comb: dict[str, dict[Key, int]] = {}
    regs: dict[str, dict[Key, int]] = {r: {} for r in registers[1:]}
    while queue:
        code = queue.popleft()
        for valuation in valuations:
            env = {state: code, **{name: v for (name, _), v in zip(inputs, valuation, strict=True)}}
            for i, assigned in zip(combs, comb_sets, strict=True):
                out: dict[str, int] = {}
                evaluator.run(items[i].statement, env, out, blocking=True)
                if set(out) != assigned:
                    raise Unsupported("a combinational variable is not assigned on every path (latch)")
            for i in assigns:
                name, value = evaluator.assign(items[i].left, items[i].right, env)
                env[name] = value
            loads: dict[str, int] = {}
            evaluator.run(clocked.body, env, loads, blocking=False)
            if set(loads) - set(registers):
                raise Unsupported("the clocked block loads a register without a reset value")
            key = (code, valuation)
            target = loads.get(state, code)
            next_state[key] = target
            for name, value in env.items():
                if name != state and name not in dict(inputs):
                    comb.setdefault(name, {})[key] = value
            for reg in registers[1:]:
                regs[reg][key] = loads.get(reg, HOLD)
            if target not in codes:
                if len(codes) >= MAX_STATES:
                    raise Unsupported(f"more than {MAX_STATES} reachable states")
                codes.append(target)
                queue.append(target)
    return codes, next_state, comb, regs


def _moore(
    table: dict[Key, int], next_state: dict[Key, int], reset_value: int, reset_code: int, codes: list[int]
) -> dict[int, int] | None:
    """``g`` with ``reg == g(state)`` in every cycle after reset, or None when there is none."""
    g = {reset_code: reset_value}
    changed = True
    while changed:
        changed = False
        for key, value in table.items():
            target = next_state[key]
            value = g.get(key[0], HOLD) if value == HOLD else value
            if value == HOLD:
                continue
            if target in g and g[target] != value:
                return None
            if target not in g:
                g[target] = value
                changed = True
    if any(c not in g for c in codes):
        return None
    for key, value in table.items():
        expected = g[key[0]] if value == HOLD else value
        if g[next_state[key]] != expected:
            return None
    return {c: g[c] for c in codes}
