"""Yosys script text for the ``equivalence`` stage (no processes are started here).

Every attempt runs in its own yosys session that first loads both designs with :func:`load_script`:
each file is read and flattened on its own (so equal module names never clash), the tops are
renamed ``gold`` (the original) and ``gate`` (the candidate) and copied into one design. The other
functions append the commands of one proof attempt. The miter's ports are ``in_<input>``,
``gold_<output>``, ``gate_<output>`` and ``trigger`` (yosys ``miter -equiv -make_outputs``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from evoforge.domain import Port

#: cell types that hold state after ``prep``/``memory_map`` (``$*ff`` covers ``$ff``/``$dff``/``$adff``…)
STATE_CELL_PATTERNS = ("t:$*ff", "t:$*dff*", "t:$*dlatch*", "t:$sr", "t:$mem*")
FF_LIST_FILE = "state_cells.txt"
SAT_COMMON = "-set-def-inputs -show-inputs -show-outputs"


def _load_one(path: str, top: str, role: str) -> list[str]:
    return [
        "design -reset",
        f"read_verilog -sv {path}",
        f"hierarchy -check -top {top}",
        f"prep -flatten -top {top}",
        "memory_map",
        "chformal -remove",  # a candidate's assume() must not constrain the proof
        "async2sync",  # SAT models asynchronous set/reset and latches as synchronous logic
        "opt_clean",
        # after flattening only internal cells may remain: anything else is a black box
        f"select -assert-none {top}/c:* {top}/t:$* %d",
        f"rename {top} {role}",
        f"design -stash {role}",
    ]


def candidate_load_script(candidate: str, top: str) -> str:
    """Load the candidate alone: its errors (unknown modules, black boxes) are its own."""
    return "\n".join(_load_one(candidate, top, "gate")) + "\n"


def load_script(original: str, candidate: str, top: str) -> str:
    """Load both designs as modules ``gold`` and ``gate`` of one design."""
    lines = [
        "# candidate",
        *_load_one(candidate, top, "gate"),
        "# original",
        *_load_one(original, top, "gold"),
        "design -copy-from gold -as gold gold",
        "design -copy-from gate -as gate gate",
    ]
    return "\n".join(lines) + "\n"


def check_script(original: str, candidate: str, top: str) -> str:
    """Load both designs and list their state-holding cells into :data:`FF_LIST_FILE`."""
    cells = " ".join(STATE_CELL_PATTERNS)
    return load_script(original, candidate, top) + f"tee -q -o {FF_LIST_FILE} select -list {cells}\n"


#: the module :func:`structural_script` builds to check the base case of ``equiv_induct``
BASE_MITER = "eq_base"


def structural_script(
    original: str,
    candidate: str,
    top: str,
    seq: int,
    sequential: bool,
    reset: str | None = None,
    active_low: bool = False,
) -> str:
    """``equiv_*`` on matching signal names; proves when registers correspond.

    ``equiv_induct`` only helps with registers; on a combinational design it is a slow whole-cone SAT.
    It proves a *weak* equivalence: matched points that agree for ``seq`` cycles agree forever. So on a
    sequential design a miter of every matched point (``equiv_miter``, built before anything is
    proven) is checked from reset for ``seq`` cycles after the reset cycle — the base case; only both
    together are a proof (the caller reads the ``sat`` result that follows ``equiv_status``).
    """
    lines = ["equiv_make gold gate eq", "hierarchy -top eq"]
    if sequential:
        lines.append(f"equiv_miter -trigger -undef {BASE_MITER} eq")
    lines += [f"equiv_simple -undef -seq {seq} eq"]
    if sequential:
        lines.append(f"equiv_induct -undef -seq {seq} eq")
    lines.append("equiv_status eq")
    if sequential:
        reset_flags = f"-set-at 1 {reset} {0 if active_low else 1} " if reset else ""
        lines += [
            f"hierarchy -top {BASE_MITER}",
            f"sat -seq {seq + 1} -prove trigger 0 -prove-skip 1 -set-init-undef {reset_flags}"
            f"-set-def-inputs {BASE_MITER}",
        ]
    return load_script(original, candidate, top) + "\n".join([*lines, ""])


def _miter(flags: str = "-ignore_gold_x") -> str:
    return f"miter -equiv -flatten -make_outputs {flags} gold gate miter\n"


@dataclass(frozen=True)
class SplitCase:
    """One cofactor of a combinational miter: some narrow inputs tied to constants."""

    module: str
    fixed: dict[str, int]


def split_cases(inputs: Sequence[Port], max_bits: int = 3, max_width: int = 2) -> list[dict[str, int]]:
    """Constant assignments of the narrowest inputs (selects, modes) to cofactor the miter on.

    Tying a select to a constant lets ``opt`` collapse multiplexers so that shared operators become
    structurally identical and merge: resource-sharing rewrites of multipliers, which SAT alone
    takes minutes on, are then proven in milliseconds. Together the cases cover every input value.
    """
    chosen: list[Port] = []
    bits = 0
    for port in sorted(inputs, key=lambda p: p.width):
        if port.width <= max_width and bits + port.width <= max_bits:
            chosen.append(port)
            bits += port.width
    if not chosen:
        return [{}]
    ranges = [range(1 << p.width) for p in chosen]
    return [dict(zip((p.name for p in chosen), values, strict=True)) for values in itertools.product(*ranges)]


def _case_wrapper(name: str, ports: Sequence[Port], fixed: dict[str, int]) -> str:
    decls: list[str] = []
    conns: list[str] = []
    for port in ports:
        rng = f"[{port.width - 1}:0] " if port.width > 1 else ""
        if port.direction == "input":
            if port.name in fixed:
                conns.append(f".in_{port.name}({port.width}'d{fixed[port.name]})")
            else:
                decls.append(f"input {rng}in_{port.name}")
                conns.append(f".in_{port.name}(in_{port.name})")
        elif port.direction == "output":
            for side in ("gold", "gate"):
                decls.append(f"output {rng}{side}_{port.name}")
                conns.append(f".{side}_{port.name}({side}_{port.name})")
    decls.append("output trigger")
    conns.append(".trigger(trigger)")
    return f"module {name}({', '.join(decls)});\n  miter m({', '.join(conns)});\nendmodule\n"


def combinational_sat_script(
    original: str, candidate: str, top: str, ports: Sequence[Port], cases: list[dict[str, int]]
) -> tuple[str, str, list[SplitCase]]:
    """(script, wrapper Verilog to write as ``cases.v``, the cases in the order they are solved)."""
    split = [SplitCase(module=f"eq_case{i}", fixed=fixed) for i, fixed in enumerate(cases)]
    wrappers = "".join(_case_wrapper(c.module, ports, c.fixed) for c in split)
    lines = [_miter().strip(), "read_verilog cases.v"]
    for case in split:
        lines += [
            "design -push-copy",
            f"hierarchy -top {case.module}",
            "flatten",
            "opt",
            f"sat -verify -prove trigger 0 -enable_undef {SAT_COMMON} {case.module}",
            "design -pop",
        ]
    return load_script(original, candidate, top) + "\n".join(lines) + "\n", wrappers, split


def abc_export_script(original: str, candidate: str, top: str, aiger: str) -> str:
    """A two-valued miter as AIGER for ABC.

    Undefined bits of the original become 0 (one legal choice of a don't-care) and those of the
    candidate become free inputs (every choice must match), so an ABC proof is sound under X.
    """
    return load_script(original, candidate, top) + "\n".join(
        [
            "setundef -undriven -zero gold",
            "setundef -zero gold",
            "setundef -undriven -anyseq gate",
            "setundef -anyseq gate",
            _miter("").strip(),
            "hierarchy -top miter",
            "flatten",
            "opt -fast",
            "techmap",
            "opt -fast",
            "aigmap",
            "opt_clean",
            f"write_aiger -zinit {aiger}",
            "",
        ]
    )


def pdr_export_script(
    original: str, candidate: str, top: str, clock: str, reset: str, active_low: bool, aiger: str
) -> str:
    """A sequential miter as AIGER whose initial state is the state right after one reset cycle.

    ``sim -w`` simulates the reset and writes the resulting register values back as initial values;
    the script fails (``select -assert-none``) when any register is still undefined after reset, since
    AIGER's zero initial state would then be an unsound guess. Undefined constants are handled as in
    :func:`abc_export_script`. The reset input stays free afterwards, so resets at any later time are
    covered too.
    """
    reset_flag = "-resetn" if active_low else "-reset"
    return load_script(original, candidate, top) + "\n".join(
        [
            "setundef -undriven -zero gold",
            "setundef -zero gold",
            "setundef -undriven -anyseq gate",
            "setundef -anyseq gate",
            "miter -equiv -flatten gold gate miter",
            "hierarchy -top miter",
            "flatten",
            f"sim -clock in_{clock} {reset_flag} in_{reset} -rstlen 1 -n 1 -w miter",
            "select -assert-none w:* a:init=*x* %i",
            "opt -fast -nosdff -nodffe",
            "techmap",
            "opt -fast -nosdff -nodffe",
            "dffunmap",
            "aigmap",
            "opt_clean",
            f"write_aiger -zinit {aiger}",
            "",
        ]
    )


def pdr_command(aiger: str) -> str:
    return f"read_aiger {aiger}; strash; pdr"


def abc_cec_command(aiger: str) -> str:
    return f"read {aiger}; &get; &cec -m"


def _reset_flags(reset: str | None, active_low: bool) -> str:
    if reset is None:
        return ""
    return f"-set-at 1 in_{reset} {0 if active_low else 1} "


def induction_script(
    original: str, candidate: str, top: str, reset: str | None, active_low: bool, max_steps: int
) -> str:
    """Temporal induction from reset (asserted in step 1, outputs unchecked in step 1)."""
    return (
        load_script(original, candidate, top)
        + _miter()
        + "hierarchy -top miter\n"
        + "sat -tempinduct -prove trigger 0 -set-init-undef "
        + _reset_flags(reset, active_low)
        + f"-seq 1 -maxsteps {max_steps} {SAT_COMMON} miter\n"
    )


def bmc_script(
    original: str, candidate: str, top: str, reset: str | None, active_low: bool, steps: int
) -> str:
    """A bounded check of ``steps`` time steps from reset (step 1 = the reset cycle)."""
    return (
        load_script(original, candidate, top)
        + _miter()
        + "hierarchy -top miter\n"
        + f"sat -seq {steps} -prove trigger 0 -prove-skip 1 -set-init-undef "
        + _reset_flags(reset, active_low)
        + f"{SAT_COMMON} miter\n"
    )
