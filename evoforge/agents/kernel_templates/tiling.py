"""Tile sizes for the GEMM and convolution C templates, chosen from the problem's shape and this machine.

The templates (``gemm_epilogue.c``, ``conv2d_epilogue.c``) run a register-tiled micro-kernel: an
``MR × NR`` tile of the output (``NR = NV`` vectors of the machine's width) in vector registers over a
K block of at most ``KC`` steps, the packed W (or image-column) block of ``KC × NCT`` in L2, an
``MR × KC`` panel of the other operand in L1. This module picks those sizes so that the first
instance the proposer offers is the good one, and lists a few next-best alternatives:

- ``MR`` and ``NV``: the tile must fit the register file with the ``NV`` loaded vectors and one
  broadcast (``MR·NV + NV + 1`` registers of 32 with AVX-512, of 16 with AVX2); ``NR = 32`` with
  AVX-512 (``NV = 2``) and ``MR`` the fitting height that wastes the fewest padded rows of M.
- ``KC``: K is cut into equal blocks (the template does that) of at most ~384 steps, fewer passes
  over the output than smaller blocks and a ``MR × KC`` panel that stays in L1.
- ``NCT``: the ``KC × NCT`` block fills about half of L2.

The strided reduction template (``strided_reduction.c``) walks ``CHUNK`` columns of the dimensions
after the reduced one down the reduced dimension: ``strided_chunks`` makes a chunk cover whole rows
(one contiguous slab per job: measured 1.3–1.9× faster than chunks that cut rows, on a Zen 4 core at
4 shapes) unless the op reads its block twice (RMSNorm, softmax) and the block would outgrow half
of L2.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

#: the micro-kernel heights the templates offer
HEIGHTS = (4, 6, 8, 12, 14)
#: L2 bytes assumed when the machine does not say
DEFAULT_L2_BYTES = 1 << 20


@lru_cache(maxsize=1)
def vector_floats() -> int:
    """Floats per vector register the C templates compile for: 16 with AVX-512, else 8."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 8
    return 16 if " avx512f" in text else 8


def registers() -> int:
    return 32 if vector_floats() == 16 else 16


@lru_cache(maxsize=1)
def l2_bytes() -> int:
    """This core's L2 size (sysconf, then sysfs), or 1 MiB when neither says."""
    try:
        value = int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))
        if value > 0:
            return value
    except (ValueError, OSError, AttributeError):
        pass
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip().upper()
        return int(text.rstrip("K")) * 1024 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return DEFAULT_L2_BYTES


def fits(mr: int, nv: int) -> bool:
    """The ``mr × nv`` accumulator tile, ``nv`` loaded vectors and a broadcast fit the registers."""
    return mr * nv + nv + 1 <= registers()


def _nearest(values: tuple[Any, ...], want: int, *, below: bool) -> Any:
    """The largest value <= want (below) or the smallest >= want, else the nearest end."""
    ints = sorted(int(v) for v in values)
    if below:
        fitting = [v for v in ints if v <= want]
        return fitting[-1] if fitting else ints[0]
    fitting = [v for v in ints if v >= want]
    return fitting[0] if fitting else ints[-1]


def _k_block(k: int, values: tuple[Any, ...]) -> tuple[int, int]:
    """(KC parameter, the block depth the template will use) for K steps: blocks of at most ~384."""
    blocks = max(1, math.ceil(k / 384))
    depth = math.ceil(k / blocks)
    kc = _nearest(values, depth, below=False)
    blocks = max(1, math.ceil(k / kc))
    return kc, math.ceil(k / blocks)


def _heights(m: int, nv: int) -> list[int]:
    """Fitting tile heights: those padding at most 1/16 of ``m`` first, in the order measured best
    (8, 6, 12, 14, 4 on a Zen 4 core), then the others by padded rows."""
    order = (8, 6, 12, 14, 4)
    fitting = [h for h in order if h in HEIGHTS and fits(h, nv)]

    def padding(h: int) -> int:
        return math.ceil(m / h) * h - m

    return sorted(fitting, key=lambda h: (16 * padding(h) > m, padding(h) if 16 * padding(h) > m else 0))


def gemm_params(m: int, n: int, k: int, space: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Parameter sets for an ``m × k`` by ``k × n`` product, best first (every value in ``space``)."""
    nv = 2 if vector_floats() == 16 else 1
    nr = nv * vector_floats()
    kc, depth = _k_block(max(k, 1), space["KC"])
    nct = _nearest(space["NCT"], max(nr, (l2_bytes() // 2) // (4 * max(depth, 1)) // nr * nr), below=True)
    out = []
    for mr in _heights(m, nv)[:3]:
        mcp = _nearest(space["MCP"], 8, below=True)
        out.append({"MR": mr, "NV": nv, "KC": kc, "MCP": mcp, "NCT": nct})
    return out


def conv_params(
    out_channels: int, pixels: int, k: int, space: dict[str, tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """Parameter sets for a convolution as an implicit GEMM (``M`` = out channels, ``N`` = output
    pixels of one image, ``K`` = in channels × kernel area), best first."""
    nv = 2 if vector_floats() == 16 else 1
    nr = nv * vector_floats()
    kc, depth = _k_block(max(k, 1), space["KC"])
    want = max(nr, (l2_bytes() // 2) // (4 * max(depth, 1)) // nr * nr)
    nct = _nearest(space["NCT"], min(want, max(nr, math.ceil(pixels / nr) * nr)), below=True)
    return [{"MR": mr, "NV": nv, "KC": kc, "NCT": nct} for mr in _heights(out_channels, nv)[:3]]


def strided_chunks(inner: int, reduced: int, rereads: bool, values: tuple[Any, ...]) -> list[int]:
    """``CHUNK`` values for a reduction over ``reduced`` rows of ``inner`` contiguous floats, best
    first: the smallest chunk that holds a whole row (the largest value when none does), for an op
    that re-reads its block no larger than half of L2 allows; then the next larger value."""
    ints = sorted(int(v) for v in values)
    best = _nearest(values, max(inner, 1), below=False)
    if rereads:
        best = min(best, _nearest(values, (l2_bytes() // 2) // (4 * max(reduced, 1)), below=True))
    larger = [v for v in ints if v > best]
    return [best, *larger[:1]]
