"""The offline RTL proposer: every applicable rule site of the parent, one proposal per site plus one
applying all of them, ordered by the request's seed with critical-path sites first.

Each proposal is generated from the rewritten AST and checked before it is returned: it must differ
from the parent, re-parse, and keep every module's ports.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Sequence

from evoforge.agents.base import Proposal, ProposalRequest
from evoforge.agents.rtl_rules import RULES
from evoforge.agents.rtl_rules.ast_utils import Rewrite, Rule, apply_rewrites
from evoforge.domain import TargetKind, normalise_source
from evoforge.errors import ConfigError, TargetError
from evoforge.tools.verilog_ast import ParsedVerilog, generate_verilog, parse_preprocessed, parse_verilog

log = logging.getLogger(__name__)


def _signal_name(name: str) -> str:
    """``top.u0.\\acc_q [3]`` → ``acc_q``: the bare signal name of a netlist or path name."""
    name = re.sub(r"\[[^\]]*\]$", "", str(name).strip()).strip()
    name = name.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    return name.lstrip("\\").strip()


class OfflineRtlProposer:
    name = "offline"

    def __init__(self, rules: Sequence[str] | None = None) -> None:
        names = list(rules) if rules is not None else list(RULES)
        unknown = [n for n in names if n not in RULES]
        if unknown:
            valid = ", ".join(sorted(RULES))
            raise ConfigError(f"unknown RTL rule(s) {', '.join(unknown)}; valid rules: {valid}", hint=valid)
        self.rules: tuple[Rule, ...] = tuple(RULES[n] for n in names)

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.target.kind is not TargetKind.RTL or request.count <= 0:
            return []
        try:
            parsed = parse_verilog(request.parent_source)
        except TargetError as exc:
            log.warning("offline proposer: the parent does not parse, no proposals: %s", exc.message)
            return []
        rng = random.Random(request.seed)
        sites = [site for rule in self.rules for site in rule.apply(parsed, rng)]
        ordered = _order(sites, request.feedback.get("critical_path") or (), rng)
        groups: list[list[Rewrite]] = [[site] for site in ordered]
        if len(ordered) > 1:
            groups.insert(0, ordered)
        parent_norm = normalise_source(generate_verilog(parsed.ast))
        seen: set[str] = {parent_norm, normalise_source(request.parent_source)}
        proposals: list[Proposal] = []
        for group in groups:
            if len(proposals) >= request.count:
                break
            proposal = _proposal(parsed, group)
            if proposal is None:
                continue
            key = normalise_source(proposal.source)
            if key in seen:
                continue
            seen.add(key)
            proposals.append(proposal)
        log.debug("offline proposer: %d sites, %d proposals", len(sites), len(proposals))
        return proposals


def _order(sites: list[Rewrite], critical: Iterable[str], rng: random.Random) -> list[Rewrite]:
    """Seeded shuffle, then a stable sort putting sites that touch more critical-path signals first."""
    hot = {_signal_name(n) for n in critical}
    shuffled = list(sites)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda s: -len(hot.intersection(s.touched)))


def _proposal(parsed: ParsedVerilog, group: list[Rewrite]) -> Proposal | None:
    try:
        text = generate_verilog(apply_rewrites(parsed.ast, group))
        again = parse_preprocessed(text)
    except TargetError as exc:  # a rewrite that generates unparsable text is a rule bug: skip it
        log.warning(
            "offline proposer: a %s rewrite does not re-parse (skipped): %s", group[0].rule, exc.message
        )
        return None
    if any(
        again.modules.get(n) is None or again.modules[n].ports != m.ports for n, m in parsed.modules.items()
    ):
        log.warning("offline proposer: a %s rewrite changed a module's ports (skipped)", group[0].rule)
        return None
    rules = sorted({s.rule for s in group})
    if len(group) == 1:
        note = group[0].note
    else:
        note = f"Applied all {len(group)} rewrite sites together: " + "; ".join(s.note for s in group)
    return Proposal(
        source=text,
        origin="offline:" + "+".join(rules),
        note=note,
        rule="+".join(rules),
        touched=tuple(dict.fromkeys(n for s in group for n in s.touched)),
    )
