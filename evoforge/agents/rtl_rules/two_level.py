"""Two-level logic minimisation of one Boolean function given by its table of ones.

Pure functions, no netlist: prime implicants by Quine–McCluskey, a cover (essential primes first,
then greedy), parity detection, and the shortest Verilog text among the sum of products, the negated
sum of products of the complement and an XOR/XNOR. A cube is ``(mask, value)``: the leaves it fixes
and their values; a cover is exact because every implicant holds only ones and every one is covered.

*Don't-cares* (rows where the function may take either value) may join implicants: primes are grown
over the ones and the don't-cares together, and the cover need only cover the ones — so each cube
holds no zero, every one is covered, and the result agrees with the function on every row that is
not a don't-care (and is some 0 or 1 on the others). The complement's cover is built the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

Cube = tuple[int, int]  # (mask of the leaves it fixes, their values)


def primes(ones: list[int], n: int) -> list[Cube]:
    """Prime implicants of the function whose ones are ``ones`` (Quine–McCluskey)."""
    full = (1 << n) - 1
    current = {(full, m) for m in ones}
    found: set[Cube] = set()
    while current:
        merged: set[Cube] = set()
        used: set[Cube] = set()
        items = sorted(current)
        for (m1, v1), (m2, v2) in itertools.combinations(items, 2):
            if m1 != m2:
                continue
            diff = v1 ^ v2
            if diff and diff & (diff - 1) == 0:
                merged.add((m1 & ~diff, v1 & ~diff))
                used.update({(m1, v1), (m2, v2)})
        found.update(current - used)
        current = merged
    return sorted(found, key=lambda c: (bin(c[0]).count("1"), c))


def cover(ones: list[int], n: int, dont_cares: Sequence[int] = ()) -> list[Cube]:
    """Implicants whose union holds every one and no zero (rows outside ``ones`` and
    ``dont_cares``): essential primes first, then greedy."""
    if not ones:
        return []
    candidates = primes(sorted({*ones, *dont_cares}), n)
    left = set(ones)
    chosen: list[Cube] = []

    def covers(cube: Cube, m: int) -> bool:
        return m & cube[0] == cube[1]

    for m in ones:
        having = [p for p in candidates if covers(p, m)]
        if len(having) == 1 and having[0] not in chosen:
            chosen.append(having[0])
    for p in chosen:
        left -= {m for m in left if covers(p, m)}
    while left:
        best = max(candidates, key=lambda p: (sum(covers(p, m) for m in left), -bin(p[0]).count("1")))
        chosen.append(best)
        left -= {m for m in left if covers(best, m)}
    return chosen


def parity(ones: set[int], n: int) -> tuple[int, int] | None:
    """(mask, flip) when the function is ``flip ^ parity(x & mask)`` on all 2^n rows."""
    flip = int(0 in ones)
    mask = sum(1 << i for i in range(n) if ((1 << i) in ones) != bool(flip))
    if bin(mask).count("1") < 2 and flip == 0:
        return None  # a single literal: the sum of products prints it as well
    for row in range(1 << n):
        if (row in ones) != bool(flip ^ (bin(row & mask).count("1") & 1)):
            return None
    return mask, flip


def sum_of_products(cubes: list[Cube], names: list[str]) -> tuple[str, int]:
    """The sum of products in Verilog and its literal count."""
    terms = []
    literals = 0
    for mask, value in cubes:
        factors = []
        for i, name in enumerate(names):
            if mask >> i & 1:
                factors.append(name if value >> i & 1 else f"~{name}")
        literals += len(factors)
        terms.append(" & ".join(factors) if len(factors) <= 1 else "(" + " & ".join(factors) + ")")
    return " | ".join(terms), literals


def function_text(
    ones: list[int], n: int, names: list[str], max_terms: int, dont_cares: Sequence[int] = ()
) -> str | None:
    """The smaller of the SOP of the function and the negated SOP of its complement (``dont_cares``:
    rows whose value is free; see the module docstring)."""
    free = set(dont_cares)
    zeros = sorted(set(range(1 << n)) - set(ones) - free)
    if not ones or not zeros:
        return "1'b0" if not ones else "1'b1"
    odd = parity(set(ones), n) if not free else None
    if odd is not None:
        mask, flip = odd
        text = " ^ ".join(name for i, name in enumerate(names) if mask >> i & 1)
        if bin(mask).count("1") == 1:
            return f"~{text}" if flip else text
        return f"~({text})" if flip else f"({text})"
    direct = cover(ones, n, sorted(free))
    inverse = cover(zeros, n, sorted(free))
    if min(len(direct), len(inverse)) > max_terms:
        return None
    text, lits = sum_of_products(direct, names)
    neg, neg_lits = sum_of_products(inverse, names)
    if neg_lits < lits:
        return f"~({neg})"
    return f"({text})" if "|" in text else text
