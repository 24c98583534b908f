"""FSM state minimisation: partition refinement (Moore's algorithm) over outputs and transitions.

Two reachable states are equivalent when, for every input valuation, they give the same
combinational outputs and registered-output loads and move to equivalent states, and their Moore
outputs agree. Start from the partition by that output signature and split blocks whose members
move to different blocks under some valuation, until nothing splits. States not reachable from
the reset code are not in the tables at all (extraction explores from reset), so they are dropped.
The merged machine is cycle-for-cycle identical on every output from reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from evoforge.agents.rtl_rules.fsm_extract import Fsm


@dataclass(frozen=True)
class Partition:
    classes: tuple[tuple[int, ...], ...]  # state codes per class; class 0 holds the reset code
    class_of: dict[int, int]  # state code → class index

    @property
    def size(self) -> int:
        return len(self.classes)

    def representative(self, index: int) -> int:
        return self.classes[index][0]


def signature(fsm: Fsm, code: int) -> tuple[object, ...]:
    """Everything a state shows the outside world in one cycle, for every input valuation."""
    rows = []
    for valuation in fsm.valuations():
        key = (code, valuation)
        rows.append(
            (
                tuple(table[key] for table in fsm.comb.values()),
                tuple(table[key] for table in fsm.registered.values()),
            )
        )
    return (tuple(table[code] for table in fsm.moore.values()), tuple(rows))


def minimise(fsm: Fsm) -> Partition:
    """The coarsest partition of the reachable states into equivalent classes."""
    valuations = fsm.valuations()
    block = _number({code: signature(fsm, code) for code in fsm.codes}, fsm.codes)
    while True:
        keys = {
            code: (block[code], tuple(block[fsm.next_state[(code, v)]] for v in valuations))
            for code in fsm.codes
        }
        refined = _number(keys, fsm.codes)
        if len(set(refined.values())) == len(set(block.values())):
            break
        block = refined
    classes: dict[int, list[int]] = {}
    for code in fsm.codes:  # breadth-first order from reset: class 0 holds the reset code
        classes.setdefault(block[code], []).append(code)
    ordered = tuple(tuple(members) for members in classes.values())
    return Partition(ordered, {code: i for i, members in enumerate(ordered) for code in members})


def identity(fsm: Fsm) -> Partition:
    """Every reachable state its own class (re-encoding without merging)."""
    classes = tuple((code,) for code in fsm.codes)
    return Partition(classes, {code: i for i, code in enumerate(fsm.codes)})


def _number(keys: Mapping[int, object], order: tuple[int, ...]) -> dict[int, int]:
    ids: dict[object, int] = {}
    return {code: ids.setdefault(keys[code], len(ids)) for code in order}
