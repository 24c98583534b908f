"""The FSM rules: ``fsm_minimise`` (merge equivalent states, drop unreachable ones, fold registered
Moore outputs into the state) and ``fsm_reencode`` (binary, Gray, one-hot and output encodings of
the minimised machine).

Each site rewrites a whole module: its transform re-extracts the FSM from the module it is given (so
it composes with other rules' edits inside the module) and regenerates the FSM part; when the FSM
no longer extracts, it returns the module unchanged. Proposals only — the search loop verifies.
"""

from __future__ import annotations

import functools
import random

from pyverilog.vparser import ast as vast

from evoforge.agents.rtl_rules.ast_utils import Path, Rewrite
from evoforge.agents.rtl_rules.fsm_encode import ENCODINGS, encode, render
from evoforge.agents.rtl_rules.fsm_extract import Fsm, extract_fsm
from evoforge.agents.rtl_rules.fsm_minimise import minimise
from evoforge.tools.verilog_ast import ParsedVerilog

MINIMISE = "fsm_minimise"
REENCODE = "fsm_reencode"


def _transform(module: vast.ModuleDef, *, kind: str) -> vast.ModuleDef:
    fsm = extract_fsm(module)
    if fsm is None:
        return module
    partition = minimise(fsm)
    encoding = encode(fsm, partition, kind)
    return module if encoding is None else render(module, fsm, partition, encoding)


def _modules(parsed: ParsedVerilog) -> list[tuple[Path, vast.ModuleDef, Fsm]]:
    found: list[tuple[Path, vast.ModuleDef, Fsm]] = []
    for index, definition in enumerate(parsed.ast.description.definitions):
        if isinstance(definition, vast.ModuleDef):
            fsm = extract_fsm(definition)
            if fsm is not None:
                found.append(((("description", None), ("definitions", index)), definition, fsm))
    return found


def _touched(fsm: Fsm) -> tuple[str, ...]:
    return (fsm.state, *([fsm.next_name] if fsm.next_name else []), *fsm.comb, *fsm.moore, *fsm.registered)


class FsmMinimise:
    name = MINIMISE
    looks_for = "a state machine (a clocked state register with a constant reset and a next-state function)"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites = []
        for path, _module, fsm in _modules(parsed):
            partition = minimise(fsm)
            merged = partition.size < len(fsm.codes)
            unreachable = fsm.named_codes > len(fsm.codes)
            if not (merged or unreachable or fsm.moore):
                continue
            what = [f"{len(fsm.codes)} reachable states into {partition.size} classes"]
            merges = [
                "=".join(fsm.names.get(c, str(c)) for c in members)
                for members in partition.classes
                if len(members) > 1
            ]
            if merges:
                what.append("merging " + ", ".join(merges))
            if unreachable:
                what.append(f"dropping {fsm.named_codes - len(fsm.codes)} unreachable named state(s)")
            if fsm.moore:
                what.append(f"decoding registered output(s) {', '.join(fsm.moore)} from the state")
            note = f"minimised the FSM on {fsm.state} in module {fsm.module}: " + "; ".join(what)
            rewrites.append(
                Rewrite(
                    rule=MINIMISE,
                    module=fsm.module,
                    path=path,
                    note=note,
                    touched=_touched(fsm),
                    transform=functools.partial(_transform, kind="keep"),
                )
            )
        return rewrites


class FsmReencode:
    name = REENCODE
    looks_for = "a state machine (a clocked state register with a constant reset and a next-state function)"

    def apply(self, parsed: ParsedVerilog, rng: random.Random) -> list[Rewrite]:
        rewrites = []
        for path, _module, fsm in _modules(parsed):
            partition = minimise(fsm)
            for kind in ENCODINGS:
                encoding = encode(fsm, partition, kind)
                if encoding is None:
                    continue
                note = (
                    f"re-encoded the FSM on {fsm.state} in module {fsm.module} ({partition.size} "
                    f"states after merging equivalent ones) as {kind}: {encoding.width} state bit(s), "
                    f"reset code {encoding.codes[0]:0{encoding.width}b}"
                )
                if encoding.bits:
                    note += f"; output(s) {', '.join(encoding.bits)} read straight from state bits"
                rewrites.append(
                    Rewrite(
                        rule=REENCODE,
                        module=fsm.module,
                        path=path,
                        note=note,
                        touched=_touched(fsm),
                        transform=functools.partial(_transform, kind=kind),
                    )
                )
        return rewrites


MINIMISE_RULE = FsmMinimise()
REENCODE_RULE = FsmReencode()
