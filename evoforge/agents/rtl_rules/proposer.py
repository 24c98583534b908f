"""The offline RTL proposer: rule sites of the parent, ranked by what the job wants and where it hurts.

Every rule is applied to the parent; each site is scored from

* the job's objectives (``feedback["objectives"]``, e.g. ``["area_um2", "delay_ns"]``, first is
  primary) against the goals of the rule's knowledge-base entry (``area`` / ``timing``);
* the critical path (``feedback["critical_path"]``, RTL signal names): sites touching signals on it
  come first, and count most for timing rules;
* the largest cells of the synthesis report (``feedback["largest_cells"]``): rules whose entry says
  they remove that class of cell (arithmetic, registers, …) gain in proportion to its share of area;
* the knowledge base's text retrieval for a query built from the design and its critical path.

Proposals, in order: all compatible sites together, then each rule's sites together, then single
sites, all by score (ties broken by the request's seed). Each proposal is generated from the
rewritten AST and checked before it is returned: it must differ from the parent, re-parse, and keep
every module's ports. A proposer instance remembers what it has offered and does not offer it again,
so that later rounds on the same parent reach the lower-ranked sites.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from evoforge.agents.base import Proposal, ProposalRequest
from evoforge.agents.rtl_rules import RULES
from evoforge.agents.rtl_rules.ast_utils import (
    Path,
    Rewrite,
    Rule,
    RuleOutcome,
    apply_rewrites,
    collecting_declines,
)
from evoforge.agents.rtl_rules.patch import minimal_patch
from evoforge.domain import TargetKind, normalise_source
from evoforge.errors import ConfigError, TargetError
from evoforge.kb import KnowledgeBase, cell_shares, design_query
from evoforge.tools.verilog_ast import ParsedVerilog, generate_verilog, parse_preprocessed, parse_verilog

log = logging.getLogger(__name__)

DEFAULT_OBJECTIVES = ("area_um2", "delay_ns")
_GOAL_OF = {"area_um2": "area", "cells": "area", "delay_ns": "timing", "depth": "timing"}


def _signal_name(name: str) -> str:
    """``top.u0.\\acc_q [3]`` → ``acc_q``: the bare signal name of a netlist or path name."""
    name = re.sub(r"\[[^\]]*\]$", "", str(name).strip()).strip()
    name = name.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    return name.lstrip("\\").strip()


@dataclass(frozen=True)
class _Scored:
    site: Rewrite
    score: float
    hits: int  # critical-path signals the site touches
    tiebreak: float  # seeded


class OfflineRtlProposer:
    name = "offline"

    def __init__(self, rules: Sequence[str] | None = None, knowledge: KnowledgeBase | None = None) -> None:
        names = list(rules) if rules is not None else list(RULES)
        unknown = [n for n in names if n not in RULES]
        if unknown:
            valid = ", ".join(sorted(RULES))
            raise ConfigError(f"unknown RTL rule(s) {', '.join(unknown)}; valid rules: {valid}", hint=valid)
        self.rules: tuple[Rule, ...] = tuple(RULES[n] for n in names)
        self.knowledge = knowledge if knowledge is not None else KnowledgeBase.load()
        self._offered: set[str] = set()
        self.last_outcomes: list[RuleOutcome] = []

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.target.kind is not TargetKind.RTL or request.count <= 0:
            return []
        try:
            parsed = parse_verilog(request.parent_source)
        except TargetError as exc:
            log.warning("offline proposer: the parent does not parse, no proposals: %s", exc.message)
            return []
        rng = random.Random(request.seed)
        sites, outcomes = self.sites(parsed, rng)
        self.last_outcomes = outcomes
        scored = self.score(sites, request.feedback, request.parent_source, rng)
        groups = _groups(scored)
        parent_norm = normalise_source(generate_verilog(parsed.ast))
        seen: set[str] = {parent_norm, normalise_source(request.parent_source)}
        proposals: list[Proposal] = []
        for group in groups:
            if len(proposals) >= request.count:
                break
            proposal = _proposal(parsed, group, request.parent_source)
            if proposal is None:
                continue
            key = normalise_source(proposal.source)
            if key in seen or key in self._offered:
                continue
            seen.add(key)
            proposals.append(proposal)
        self._offered.update(normalise_source(p.source) for p in proposals)
        log.debug("offline proposer: %d sites, %d proposals", len(sites), len(proposals))
        return proposals

    def sites(self, parsed: ParsedVerilog, rng: random.Random) -> tuple[list[Rewrite], list[RuleOutcome]]:
        """Every rule's sites on a design, and per rule what it made of it (applied, or why not)."""
        sites: list[Rewrite] = []
        outcomes: list[RuleOutcome] = []
        for rule in self.rules:
            with collecting_declines() as declined:
                try:
                    found = rule.apply(parsed, rng)
                except Exception as exc:  # a rule bug must not end the job; the others still propose
                    log.warning(
                        "offline proposer: rule %s failed on the parent (skipped): %r", rule.name, exc
                    )
                    outcomes.append(RuleOutcome(rule.name, 0, f"the rule failed on this design: {exc!r}"))
                    continue
            sites.extend(found)
            if found:
                reason = ""
            elif declined:
                reason = "site found but the exactness argument fails: " + "; ".join(declined)
            else:
                reason = f"no site (looks for {rule.looks_for})"
            outcomes.append(RuleOutcome(rule.name, len(found), reason))
        return sites, outcomes

    def explain(self, source: str) -> list[RuleOutcome]:
        """Per rule, on ``source``: applied (with its number of sites) or the reason it does not apply."""
        try:
            parsed = parse_verilog(source)
        except TargetError as exc:
            return [RuleOutcome(r.name, 0, f"the design does not parse: {exc.message}") for r in self.rules]
        return self.sites(parsed, random.Random(0))[1]

    # -- ranking ---------------------------------------------------------------------------------

    def score(
        self, sites: Sequence[Rewrite], feedback: dict[str, Any], source: str, rng: random.Random
    ) -> list[_Scored]:
        """Sites with their scores, best first (see the module docstring for the terms)."""
        objectives = [str(o) for o in (feedback.get("objectives") or DEFAULT_OBJECTIVES)]
        goal_weight: dict[str, float] = {}
        for rank, objective in enumerate(objectives):
            goal = _GOAL_OF.get(objective)
            if goal is not None and goal not in goal_weight:
                goal_weight[goal] = 2.0 if rank == 0 else 1.0
        critical = [str(n) for n in feedback.get("critical_path") or ()]
        hot = {_signal_name(n) for n in critical}
        shares = cell_shares(feedback.get("largest_cells") or ())
        relevance = self._relevance(source, critical, feedback.get("largest_cells") or (), objectives)
        scored = []
        for site in sites:
            entry = self.knowledge.for_rule(site.rule)
            goals = set(entry.goals) if entry else set()
            hits = len(hot.intersection(site.touched))
            score = sum(goal_weight.get(g, 0.0) for g in goals)
            if hits:
                # on the critical path: decisive for a timing rule, a tie-breaker for the others
                score += (3.0 if "timing" in goals else 1.0) * (1 + math.log(hits))
            if entry is not None:
                score += 2.0 * sum(shares.get(c, 0.0) for c in entry.cells)
            score += relevance.get(site.rule, 0.0)
            scored.append(_Scored(site, score, hits, rng.random()))
        scored.sort(key=lambda s: (-s.score, -s.hits, s.tiebreak))
        return scored

    def _relevance(
        self, source: str, critical: Iterable[str], cells: Iterable[dict[str, Any]], objectives: list[str]
    ) -> dict[str, float]:
        """Per rule id: the knowledge base's text match for this design, scaled to 0..1."""
        query = design_query(source, critical, cells, objectives)
        hits = self.knowledge.ranked(
            query, domain="rtl", k=len(self.knowledge.builtin), include_learned=False
        )
        top = max((h.score for h in hits), default=0.0)
        out: dict[str, float] = {}
        for hit in hits:
            rule = hit.entry.rule
            if rule and top > 0:
                out[rule] = max(out.get(rule, 0.0), hit.score / top)
        return out


def _overlaps(a: Path, b: Path) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return long[: len(short)] == short


def _source_order(site: Rewrite) -> tuple[str, tuple[tuple[str, int], ...]]:
    return site.module, tuple((attr, -1 if index is None else index) for attr, index in site.path)


def _groups(scored: list[_Scored]) -> list[list[Rewrite]]:
    """All compatible sites together, each rule's sites together, then single sites (best first)."""
    groups: list[list[Rewrite]] = []
    combined: list[Rewrite] = []
    for item in scored:  # a site nested in another rule's site would be rewritten twice: keep the better
        site = item.site
        clash = any(
            o.rule != site.rule and o.module == site.module and _overlaps(o.path, site.path) for o in combined
        )
        if not clash:
            combined.append(site)
    if len(combined) > 1:
        groups.append(sorted(combined, key=_source_order))
    rules_in_order = list(dict.fromkeys(s.site.rule for s in scored))
    if len(rules_in_order) > 1:
        for rule in rules_in_order:
            mine = [s.site for s in scored if s.site.rule == rule]
            if len(mine) > 1:
                groups.append(mine)
    groups.extend([s.site] for s in scored)
    return groups


def _proposal(parsed: ParsedVerilog, group: list[Rewrite], original: str) -> Proposal | None:
    try:
        tree = apply_rewrites(parsed.ast, group)
        text = minimal_patch(original, parsed, tree)
        if text is not None:
            try:
                again = parse_verilog(text)
            except TargetError:  # the patch does not re-parse: print the whole rewritten tree instead
                log.debug("offline proposer: the %s line patch does not re-parse", group[0].rule)
                text = None
        if text is None:
            text = generate_verilog(tree)
            again = parse_preprocessed(text)
    except TargetError as exc:  # a rewrite that generates unparsable text is a rule bug: skip it
        log.warning(
            "offline proposer: a %s rewrite does not re-parse (skipped): %s", group[0].rule, exc.message
        )
        return None
    except Exception:  # a transform that crashes is a rule bug too: skip the group, keep proposing
        log.exception("offline proposer: a %s rewrite failed (skipped)", "+".join({s.rule for s in group}))
        return None
    if any(
        again.modules.get(n) is None or again.modules[n].ports != m.ports for n, m in parsed.modules.items()
    ):
        log.warning("offline proposer: a %s rewrite changed a module's ports (skipped)", group[0].rule)
        return None
    rules = sorted({s.rule for s in group})
    if len(group) == 1:
        note = group[0].note
    elif len(rules) == 1:
        note = f"Applied all {len(group)} {rules[0]} sites together: " + "; ".join(s.note for s in group)
    else:
        note = f"Applied all {len(group)} rewrite sites together: " + "; ".join(s.note for s in group)
    return Proposal(
        source=text,
        origin="offline:" + "+".join(rules),
        note=note,
        rule="+".join(rules),
        touched=tuple(dict.fromkeys(n for s in group for n in s.touched)),
    )
