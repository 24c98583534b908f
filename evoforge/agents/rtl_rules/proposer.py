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
from evoforge.agents.rtl_rules.text_sites import (
    Design,
    Overlap,
    TextRule,
    TextSite,
    apply_edits,
    check_patch,
    compatible,
)
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


Site = Rewrite | TextSite


def _parse(source: str) -> tuple[ParsedVerilog | None, str]:
    """The pyverilog AST the older rules read, or why there is none."""
    try:
        return parse_verilog(source), ""
    except TargetError as exc:
        return None, exc.message


def _site_key(site: Site) -> str:
    if isinstance(site, TextSite):
        return f"{site.rule}:{site.module}:{site.key or id(site)}"
    return f"{site.rule}:{site.module}:{site.path}"


@dataclass(frozen=True)
class _Scored:
    site: Site
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
        self.rules: tuple[Rule | TextRule, ...] = tuple(RULES[n] for n in names)
        self.knowledge = knowledge if knowledge is not None else KnowledgeBase.load()
        self._offered: set[str] = set()
        self.last_outcomes: list[RuleOutcome] = []

    def propose(self, request: ProposalRequest) -> list[Proposal]:
        if request.target.kind is not TargetKind.RTL or request.count <= 0:
            return []
        design = Design(request.parent_source)
        parsed, why_not = _parse(request.parent_source)
        rng = random.Random(request.seed)
        sites, outcomes = self.sites(design, parsed, why_not, rng)
        self.last_outcomes = outcomes
        scored = self.score(sites, request.feedback, request.parent_source, rng)
        groups = _groups(scored)
        seen: set[str] = {normalise_source(request.parent_source)}
        if parsed is not None:
            seen.add(normalise_source(generate_verilog(parsed.ast)))
        proposals: list[Proposal] = []
        for group in groups:
            if len(proposals) >= request.count:
                break
            if isinstance(group[0], TextSite):
                proposal = _text_proposal(design, [s for s in group if isinstance(s, TextSite)])
            elif parsed is not None:
                proposal = _proposal(parsed, [s for s in group if isinstance(s, Rewrite)], design.text)
            else:
                proposal = None
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

    def sites(
        self, design: Design, parsed: ParsedVerilog | None, why_not: str, rng: random.Random
    ) -> tuple[list[Site], list[RuleOutcome]]:
        """Every rule's sites on a design, and per rule what it made of it (applied, or why not)."""
        sites: list[Site] = []
        outcomes: list[RuleOutcome] = []
        for rule in self.rules:
            text_rule = getattr(rule, "text_sites", None)
            ast_rule = getattr(rule, "apply", None)
            if text_rule is None and parsed is None:
                outcomes.append(
                    RuleOutcome(rule.name, 0, f"not applied: its matcher reads Verilog-2001 only ({why_not})")
                )
                continue
            found: list[Site] = []
            with collecting_declines() as declined:
                try:
                    if text_rule is not None:
                        found.extend(text_rule(design, rng))
                    if ast_rule is not None and parsed is not None:
                        found.extend(ast_rule(parsed, rng))
                except Exception as exc:  # a rule bug must not end the job; the others still propose
                    log.warning(
                        "offline proposer: rule %s failed on the parent (skipped): %r", rule.name, exc
                    )
                    outcomes.append(RuleOutcome(rule.name, 0, f"the rule failed on this design: {exc!r}"))
                    continue
            sites.extend(found)
            count = len({_site_key(s) for s in found})
            if found:
                reason = ""
            elif declined:
                reason = "site found but the exactness argument fails: " + "; ".join(declined)
            else:
                reason = f"no site (looks for {rule.looks_for})"
            outcomes.append(RuleOutcome(rule.name, count, reason))
        return sites, outcomes

    def explain(self, source: str) -> list[RuleOutcome]:
        """Per rule, on ``source``: applied (with its number of sites) or the reason it does not apply."""
        parsed, why_not = _parse(source)
        return self.sites(Design(source), parsed, why_not, random.Random(0))[1]

    # -- ranking ---------------------------------------------------------------------------------

    def score(
        self, sites: Sequence[Site], feedback: dict[str, Any], source: str, rng: random.Random
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


def _source_order(site: Site) -> tuple[str, tuple[tuple[str, int], ...]]:
    if isinstance(site, TextSite):
        return site.module, tuple(("", e.start) for e in site.edits)
    return site.module, tuple((attr, -1 if index is None else index) for attr, index in site.path)


def _groups(scored: list[_Scored]) -> list[list[Site]]:
    """All compatible sites together, each rule's sites together, then single sites (best first).

    Text sites with the same key are alternatives of one site (say, encodings of one FSM): a group
    holds at most one of them. AST rewrites and text edits are never mixed in one group.
    """
    groups: list[list[Site]] = []
    for kind in (TextSite, Rewrite):
        mine = [s for s in scored if isinstance(s.site, kind)]
        combined: list[Site] = []
        for item in mine:
            if _fits(item.site, combined):
                combined.append(item.site)
        if len(combined) > 1:
            groups.append(sorted(combined, key=_source_order))
    rules_in_order = list(dict.fromkeys(s.site.rule for s in scored))
    if len(rules_in_order) > 1 or any(isinstance(s.site, TextSite) for s in scored):
        for rule in rules_in_order:
            mine_rule: list[Site] = []
            for item in scored:
                if item.site.rule == rule and _fits(item.site, mine_rule):
                    mine_rule.append(item.site)
            if len(mine_rule) > 1 and mine_rule not in groups:
                groups.append(mine_rule)
    groups.extend([s.site] for s in scored)
    return groups


def _fits(site: Site, group: list[Site]) -> bool:
    """``site`` can join ``group``: same kind, no overlap, not an alternative of a member."""
    if group and type(group[0]) is not type(site):
        return False
    if isinstance(site, TextSite):
        return all(
            isinstance(o, TextSite) and _site_key(o) != _site_key(site) and compatible(o.edits, site.edits)
            for o in group
        )
    return not any(
        isinstance(o, Rewrite)
        and o.rule != site.rule
        and o.module == site.module
        and _overlaps(o.path, site.path)
        for o in group
    )


def _text_proposal(design: Design, group: list[TextSite]) -> Proposal | None:
    """The patched text of ``group``'s edits, checked: it parses, builds, keeps every module's ports."""
    try:
        text = apply_edits(design.text, [e for s in group for e in s.edits])
    except Overlap:
        return None
    problem = check_patch(design, text)
    if problem is not None:
        log.warning("offline proposer: a %s patch is unusable (skipped): %s", group[0].rule, problem)
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
