"""Value ranges of registers on the word-level netlist (interval analysis with branch conditions).

:func:`register_bound` proves an upper bound M on an unsigned register's value in every state
reachable after reset. It iterates ``I ← I ∪ range(D | R ∈ I)`` from the reset value until nothing
changes; ``range`` evaluates the next-state cone over intervals. A select refines the register's
interval on each side with its condition when the condition compares the register with a constant
(``R == K``, ``R != K``, ``R < K`` …, negations, ``&&`` on the true side, ``||`` on the false side),
so ``cnt == 99 ? 0 : cnt + 1`` stays within [0, 99]. Arithmetic that may wrap or go below zero gives
the whole range of its width. Every other register and every input is unconstrained.

Why the bound holds: the reset loads a value in I₀; if the register is in the final I before a
clock edge, every path through the next-state cone — the interval of each cell covers every value
the cell can produce for operands in their intervals, and a branch's refinement only removes values
its condition excludes — yields a value in I. By induction over cycles the register stays in I.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from evoforge.agents.rtl_rules.netlist_eval import Register
from evoforge.tools.yosys_netlist import Bit, Cell, ModuleNetlist

Word = tuple[Bit, ...]
MAX_ITERATIONS = 512
MAX_DEPTH = 200


@dataclass(frozen=True)
class Interval:
    lo: int
    hi: int

    def union(self, other: Interval) -> Interval:
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    def meet(self, other: Interval) -> Interval | None:
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return Interval(lo, hi) if lo <= hi else None


def _full(width: int) -> Interval:
    return Interval(0, (1 << width) - 1)


Env = Mapping[Word, Interval]


class _Ranges:
    def __init__(self, module: ModuleNetlist, reg: Register) -> None:
        self.module = module
        self.reg = reg
        self.q = reg.q
        self.thresholds: set[int] = set()  # constants the register is compared with

    # -- words as pieces of cell outputs ---------------------------------------------------------

    def word(self, word: Word, env: Env, depth: int = 0) -> Interval:
        """The interval of the unsigned value of ``word``."""
        width = len(word)
        if depth > MAX_DEPTH:
            return _full(width)
        if word == self.q:
            return env.get(self.q, _full(width))
        if all(isinstance(b, str) for b in word):
            if any(b not in ("0", "1") for b in word):
                return _full(width)
            value = sum(1 << i for i, b in enumerate(word) if b == "1")
            return Interval(value, value)
        # strip constant-zero high bits
        top = width
        while top > 0 and word[top - 1] == "0":
            top -= 1
        if top < width:
            return self.word(word[:top], env, depth + 1) if top else Interval(0, 0)
        found = self.module.driver(word[0])
        if found is not None and found[1] == "Y":
            cell = found[0]
            out = cell.port("Y")
            if out[: len(word)] == word:  # the low bits of a cell's output
                full = self.cell(cell, env, depth)
                if full.hi < (1 << width):
                    return full
                return _full(width)
        if word[: len(self.q)] == self.q and len(word) > len(self.q):
            return _full(width)
        return _full(width)

    def cell(self, cell: Cell, env: Env, depth: int) -> Interval:
        kind = cell.type
        y_width = len(cell.port("Y"))
        full = _full(y_width)
        signed = bool(cell.param("A_SIGNED")) and bool(cell.param("B_SIGNED"))
        if kind == "$mux":
            out: Interval | None = None
            for side, branch_env in (
                (cell.port("A"), self.refine(cell.port("S"), env, False, depth)),
                (cell.port("B"), self.refine(cell.port("S"), env, True, depth)),
            ):
                if branch_env is None:
                    continue
                got = self.word(side, branch_env, depth + 1)
                out = got if out is None else out.union(got)
            return out if out is not None else full
        if kind == "$pmux":
            width = cell.param("WIDTH")
            selects = cell.port("S")
            words = cell.port("B")
            result: Interval | None = None
            default_env: Env | None = env
            for i, s in enumerate(selects):
                branch = self.refine((s,), env, True, depth)
                if branch is not None:
                    got = self.word(words[i * width : (i + 1) * width], branch, depth + 1)
                    result = got if result is None else result.union(got)
                if default_env is not None:
                    default_env = self.refine((s,), default_env, False, depth)
            if default_env is not None:
                got = self.word(cell.port("A"), default_env, depth + 1)
                result = got if result is None else result.union(got)
            return result if result is not None else full
        if signed:
            return full
        if kind in ("$add", "$sub", "$mul", "$and", "$or", "$shl", "$shr", "$pos"):
            a = self.word(cell.port("A"), env, depth + 1)
            if kind == "$pos":
                return a if a.hi <= full.hi else full
            b = self.word(cell.port("B"), env, depth + 1)
            if kind == "$add":
                r = Interval(a.lo + b.lo, a.hi + b.hi)
            elif kind == "$sub":
                r = Interval(a.lo - b.hi, a.hi - b.lo)
            elif kind == "$mul":
                r = Interval(a.lo * b.lo, a.hi * b.hi)
            elif kind == "$and":
                r = Interval(0, min(a.hi, b.hi))
            elif kind == "$or":
                r = Interval(max(a.lo, b.lo), (1 << max(a.hi, b.hi).bit_length()) - 1)
            elif kind == "$shl":
                if b.lo != b.hi or b.lo > y_width:
                    return full
                r = Interval(a.lo << b.lo, a.hi << b.lo)
            else:  # $shr
                r = Interval(a.lo >> b.hi, a.hi >> b.lo)
            return r if r.lo >= 0 and r.hi <= full.hi else full
        if kind in (
            "$eq",
            "$ne",
            "$lt",
            "$le",
            "$gt",
            "$ge",
            "$logic_not",
            "$logic_and",
            "$logic_or",
            "$reduce_or",
            "$reduce_and",
            "$reduce_bool",
            "$reduce_xor",
            "$reduce_xnor",
        ):
            return Interval(0, 1)
        return full

    # -- branch conditions -------------------------------------------------------------------------

    def refine(self, select: Word, env: Env, value: bool, depth: int) -> Env | None:
        """``env`` with the register's interval narrowed by ``select == value`` (None: impossible)."""
        if len(select) != 1 or depth > MAX_DEPTH:
            return env
        bit = select[0]
        if isinstance(bit, str):
            if bit in ("0", "1") and (bit == "1") != value:
                return None
            return env
        found = self.module.driver(bit)
        if found is None or found[1] != "Y":
            return env
        cell = found[0]
        kind = cell.type
        if kind in ("$not", "$logic_not") and len(cell.port("A")) == 1:
            return self.refine(cell.port("A"), env, not value, depth + 1)
        if kind == "$logic_not" and cell.port("A") == self.q:
            return self._bound(env, "eq" if value else "ne", 0)
        if kind in ("$reduce_or", "$reduce_bool") and cell.port("A") == self.q:
            return self._bound(env, "ne" if value else "eq", 0)
        if kind in ("$logic_and", "$and") and len(cell.port("A")) == 1 and len(cell.port("B")) == 1:
            if value:
                first = self.refine(cell.port("A"), env, True, depth + 1)
                return None if first is None else self.refine(cell.port("B"), first, True, depth + 1)
            return env
        if kind in ("$logic_or", "$or") and len(cell.port("A")) == 1 and len(cell.port("B")) == 1:
            if not value:
                first = self.refine(cell.port("A"), env, False, depth + 1)
                return None if first is None else self.refine(cell.port("B"), first, False, depth + 1)
            return env
        if kind in ("$eq", "$ne", "$lt", "$le", "$gt", "$ge") and not (
            cell.param("A_SIGNED") and cell.param("B_SIGNED")
        ):
            a, b = cell.port("A"), cell.port("B")
            op = kind[1:]
            if self._is_q(b) and not self._is_q(a):
                a, b = b, a
                op = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}.get(op, op)
            if not self._is_q(a):
                return env
            k = self.word(b, env, depth + 1)
            if k.lo != k.hi:
                return env
            if not value:
                op = {"eq": "ne", "ne": "eq", "lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}[op]
            return self._bound(env, op, k.lo)
        return env

    def _is_q(self, word: Word) -> bool:
        top = len(word)
        while top > len(self.q) and word[top - 1] == "0":
            top -= 1
        return word[:top] == self.q

    def _bound(self, env: Env, op: str, k: int) -> Env | None:
        self.thresholds.update((k, k + 1))
        current = env.get(self.q, _full(len(self.q)))
        if op == "eq":
            new = current.meet(Interval(k, k))
        elif op == "ne":
            new = current
            if current.lo == current.hi == k:
                return None
            if current.lo == k:
                new = Interval(k + 1, current.hi)
            elif current.hi == k:
                new = Interval(current.lo, k - 1)
        elif op == "lt":
            new = current.meet(Interval(0, k - 1)) if k > 0 else None
        elif op == "le":
            new = current.meet(Interval(0, k))
        elif op == "gt":
            new = current.meet(Interval(k + 1, current.hi))
        else:  # ge
            new = current.meet(Interval(k, current.hi))
        if new is None:
            return None
        return {**env, self.q: new}


def register_bound(module: ModuleNetlist, reg: Register, start: int) -> int | None:
    """The largest value ``reg`` can hold after a reset that loads ``start`` (None: not bounded
    below its full width).

    The iteration jumps ahead while the interval grows by a constant step (to the next constant the
    register is compared with): the jump only makes the interval larger, and the result is whatever
    interval the last round proves closed, so the bound stays sound.
    """
    ranges = _Ranges(module, reg)
    width = len(reg.q)
    top = (1 << width) - 1
    current = Interval(start, start)
    steps: list[int] = []
    for _ in range(MAX_ITERATIONS):
        nxt = ranges.word(reg.d, {reg.q: current})
        merged = current.union(nxt)
        if merged == current:
            return current.hi if current.hi < top else None
        if merged.hi >= top:
            return None
        steps.append(merged.hi - current.hi)
        if len(steps) >= 3 and steps[-1] == steps[-2] == steps[-3] > 0:
            step = steps[-1]
            ahead = sorted(t for t in ranges.thresholds if t > merged.hi)
            limit = (ahead[0] if ahead else top) - merged.hi
            if limit > step:
                merged = Interval(merged.lo, merged.hi + step * (limit // step))
                steps.clear()
        current = merged
    return None
