"""Counterexamples of the ``equivalence`` stage: parsed from yosys ``sat -show-inputs -show-outputs``.

yosys prints the model as a table (``Time Signal Name Dec Hex Bin``; the time column is absent for
combinational problems). :func:`parse_sat_model` reads the last table of a log into per-step values
of the miter's ``in_*``, ``gold_*``, ``gate_*`` and ``trigger`` signals and :func:`from_model` turns
it into a :class:`Counterexample`: the inputs per cycle from reset, the first differing output and
its value in the original (gold) and the candidate (gate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_ROW = re.compile(r"^\s*(?:(init|\d+)\s+)?\\(\S+)\s+(\S+)\s+(\S+)\s+([01xz]+)\s*$")
_HEADER = re.compile(r"^\s*(?:Time\s+)?Signal Name\s+Dec\s+Hex\s+Bin\s*$", re.M)

#: one time step of a model: signal name -> bits, most significant first ('x' = undefined)
Model = dict[int, dict[str, str]]


def parse_sat_model(log: str) -> Model:
    """Values of the last model table in ``log`` by step (0 for combinational problems)."""
    headers = list(_HEADER.finditer(log))
    if not headers:
        return {}
    model: Model = {}
    for line in log[headers[-1].end() :].splitlines():
        if not line.strip() or line.strip().startswith("-"):
            continue
        match = _ROW.match(line)
        if match is None:
            break
        step, name, bits = match.group(1), match.group(2), match.group(5)
        if step == "init":
            continue
        model.setdefault(int(step) if step else 0, {})[name] = bits
    return model


def format_bits(bits: str) -> str:
    """Verilog-style literal: ``8'd41``, or binary when a bit is undefined (``4'b1x00``)."""
    if set(bits) <= {"0", "1"}:
        return f"{len(bits)}'d{int(bits, 2)}"
    return f"{len(bits)}'b{bits}"


@dataclass(frozen=True)
class Counterexample:
    """Input values per cycle and the output where original and candidate differ."""

    inputs: tuple[dict[str, str], ...]  # one dict per cycle (step 1 = the reset cycle), port -> literal
    output: str
    gold: str
    gate: str
    cycle: int | None  # 1-based step of the difference; None for combinational designs
    sequential: bool
    reset_first: bool = False  # reset was asserted in cycle 1
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequential": self.sequential,
            "cycles": [{"cycle": i + 1, "inputs": dict(step)} for i, step in enumerate(self.inputs)],
            "output": self.output,
            "cycle": self.cycle,
            "gold": self.gold,
            "gate": self.gate,
            "note": self.note,
        }

    def describe(self) -> str:
        where = f" in cycle {self.cycle}" if self.cycle is not None else ""
        head = f"output '{self.output}' differs{where}: original {self.gold}, candidate {self.gate}"
        if not self.sequential:
            values = ", ".join(f"{k}={v}" for k, v in self.inputs[0].items()) if self.inputs else "(none)"
            text = f"{head}\ninputs: {values}"
        else:
            rows = []
            for i, step in enumerate(self.inputs):
                values = ", ".join(f"{k}={v}" for k, v in step.items()) or "(no inputs)"
                rows.append(f"  cycle {i + 1}{' (reset)' if i == 0 and self.reset_first else ''}: {values}")
            text = f"{head}\ninputs per cycle:\n" + "\n".join(rows)
        return f"{text}\n{self.note}" if self.note else text


def _differs(gold: str, gate: str) -> bool:
    """The miter's rule (``-ignore_gold_x``): an undefined original bit matches anything."""
    return any(g not in "xz" and g != c for g, c in zip(gold, gate, strict=False))


def from_model(
    model: Model,
    *,
    outputs: list[str],
    skip_inputs: tuple[str, ...] = (),
    fixed: dict[str, str] | None = None,
    reset_first: bool = False,
    note: str = "",
) -> Counterexample | None:
    """The first failing step of ``model`` as a counterexample (None when none is recognisable)."""
    if not model:
        return None
    steps = sorted(model)
    sequential = steps != [0]
    failing = next((s for s in steps if model[s].get("trigger", "0") not in ("0",)), steps[-1])
    values = model[failing]
    output, gold, gate = "?", "?", "?"
    for name in outputs:
        g, c = values.get(f"gold_{name}"), values.get(f"gate_{name}")
        if g is not None and c is not None and _differs(g, c):
            output, gold, gate = name, format_bits(g), format_bits(c)
            break
    inputs: list[dict[str, str]] = []
    for step in steps:
        if step > failing:
            break
        row = dict(fixed or {})
        for name, bits in model[step].items():
            if name.startswith("in_") and name[3:] not in skip_inputs:
                row[name[3:]] = format_bits(bits)
        inputs.append(dict(sorted(row.items())))
    return Counterexample(
        inputs=tuple(inputs),
        output=output,
        gold=gold,
        gate=gate,
        cycle=failing if sequential else None,
        sequential=sequential,
        reset_first=reset_first,
        note=note,
    )
