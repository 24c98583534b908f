"""Browsing the results database: ``evoforge jobs``, ``show``, ``export`` and ``kb``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from evoforge.cli.common import EXIT_OK, format_metrics, open_store_from_args
from evoforge.config import Settings
from evoforge.errors import NotFoundError


def print_job(report: dict[str, Any]) -> None:
    counts = report["counts"]
    print(f"job {report['job_id']}: {report['status']}  target {report['target']['name']}")
    if report.get("error"):
        print(f"  error: {report['error']}")
    for note in (report.get("interface") or {}).get("notes") or []:
        print(f"  {note}")
    print(f"  baseline: {format_metrics(report['baseline']['metrics'])}")
    scaled = ((report.get("options") or {}).get("scaling") or {}).get("note")
    if scaled:
        print(f"  sizes: {scaled}")
    print(
        f"  {counts['proposed']} proposed, {counts['evaluated']} evaluated, "
        f"{counts['cache_hits']} cache hits, {counts['rejected']} rejected"
    )
    llm = report.get("llm") or {}
    if llm.get("calls"):
        print(
            f"  LLM: {llm['calls']} calls ({llm['errors']} failed), "
            f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion tokens"
        )
        if "per_proposal" in llm:
            from evoforge.search.cost import cost_line

            roles = ", ".join(f"{n} {r}" for r, n in sorted((llm.get("by_role") or {}).items()))
            print(f"       {roles}; {llm['duplicates_avoided']} duplicates avoided")
            print(f"       {cost_line(llm)}")
    best = report["best"]
    if best is None:
        print("  no improvement found")
    else:
        gains = ", ".join(f"{k} {v:.3f}x" for k, v in best["improvement"].items())
        origin = ", ".join(str(x) for x in (best["origin"], best["assurance"]) if x)
        print(f"  best: candidate {best['candidate_id']} ({origin}): {gains}")
        worse = (best.get("trade_off") or {}).get("worse") or []
        if worse:
            better = ", ".join(best["trade_off"]["better"])
            print(f"        a trade-off: better {better}, worse {', '.join(worse)}")
        print(f"        {format_metrics(best['metrics'])}")
        for step in best.get("lineage") or []:
            print(f"        ← #{step['candidate_id']} {step['origin']}: {step['note'][:100]}")
    if report["target"]["kind"] == "rtl":
        _print_front(report.get("pareto_front") or [])
        _print_rules(report.get("rules") or [])
    for c in report["candidates"]:
        where = f" at {c['rejected_stage']}" if c["rejected_stage"] else ""
        hit = f" [cache: {c['cache_hit']}]" if c["cache_hit"] else ""
        if c.get("duplicate_of"):
            hit = f" [duplicate of #{c['duplicate_of']} by {c['cache_hit']}]"
        print(f"  #{c['id']:<5} {c['status']}{where}{hit}  {c['origin']}  {c['reason'][:90]}")


def _print_front(front: list[dict[str, Any]]) -> None:
    """The area/delay trade-offs: a rewrite that saves area but adds delay is shown, not dropped."""
    if len(front) < 1:
        return
    print(f"  Pareto front (area, delay): {len(front)} point(s)")
    for row in front:
        gains = ", ".join(f"{k.split('_')[0]} {v:.2f}x" for k, v in row["improvement"].items())
        print(f"    #{row['candidate_id']:<5} {row['origin']:<32} {row['assurance'] or '-':<20} {gains}")


def _print_rules(rules: list[dict[str, Any]]) -> None:
    """Per offline rule on the original: applied (with its sites) or the reason it does not apply."""
    if rules:
        print("  offline rules on the original:")
    for row in rules:
        what = f"applied ({row['sites']} site(s))" if row["applied"] else row["reason"]
        print(f"    {row['rule']:<20} {what}")


def cmd_jobs(args: argparse.Namespace) -> int:
    from evoforge.store import repository

    with open_store_from_args(args).transaction() as session:
        jobs: list[dict[str, Any]] = [
            {
                "job_id": j.id,
                "status": j.status,
                "kind": j.kind,
                "target": j.target_name,
                "created_at": j.created_at.isoformat(),
                "proposed": j.proposed,
                "best_candidate_id": j.best_candidate_id,
            }
            for j in repository.list_jobs(session)
        ]
    if args.json:
        print(json.dumps({"jobs": jobs}, indent=2))
    elif not jobs:
        print("no jobs yet: start one with `evoforge run design.v`")
    else:
        for j in jobs:
            print(
                f"{j['job_id']:>5}  {j['status']:<10} {j['kind']:<6} {j['target']:<24} "
                f"{j['created_at'][:19]}  {j['proposed']} proposed, best #{j['best_candidate_id']}"
            )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from evoforge.search.report import candidate_row, job_report, llm_call_rows, stage_run_row
    from evoforge.store import repository

    with open_store_from_args(args).transaction() as session:
        if args.candidate is not None:
            candidate = repository.get_candidate(session, args.candidate)
            if candidate.job_id != args.job:
                raise NotFoundError(f"candidate {args.candidate} does not belong to job {args.job}")
            payload = candidate_row(candidate) | {
                "source": candidate.source,
                "stages": [stage_run_row(r) for r in candidate.stage_runs],
                "llm_calls": llm_call_rows(session, args.job, candidate.id),
            }
        else:
            payload = job_report(session, args.job)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    elif args.candidate is not None:
        print(f"candidate {payload['id']} ({payload['origin']}): {payload['status']}  {payload['reason']}")
        if payload["assurance"]:
            print(f"assurance: {payload['assurance']}")
        for stage in payload["stages"]:
            mark = "ok  " if stage["ok"] else ("ERR " if stage["error"] else "FAIL")
            print(f"  {mark} {stage['name']:<12} {stage['seconds']:7.2f}s  {stage['detail']}")
        for call in payload["llm_calls"]:
            _print_llm_call(call)
    else:
        print_job(payload)
    return EXIT_OK


def _excerpt(text: str | None, limit: int = 300) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _print_llm_call(call: dict[str, Any]) -> None:
    tokens = f"{call['prompt_tokens'] or 0}+{call['completion_tokens'] or 0} tokens"
    latency = f"{call['latency_s']:.2f}s" if call["latency_s"] is not None else "-"
    print(f"  llm call {call['id']} {call['role']} ({call['model']}, {tokens}, {latency})")
    if call["error"]:
        print(f"    error:  {call['error']}")
    print(f"    prompt: {_excerpt(call['prompt'][-600:])}")
    print(f"    reply:  {_excerpt(call['reply'])}")


def cmd_export(args: argparse.Namespace) -> int:
    from evoforge.store import repository

    with open_store_from_args(args).transaction() as session:
        job = repository.get_job(session, args.job)
        cid = args.candidate if args.candidate is not None else job.best_candidate_id
        if cid is None:
            raise NotFoundError(
                f"job {args.job} has no best candidate (no verified improvement)",
                hint=f"see its candidates with: evoforge show {args.job}",
            )
        candidate = repository.get_candidate(session, cid)
        source = candidate.source
        if getattr(args, "diff", False):  # a unified diff against the job's original source
            import difflib

            source = "".join(
                difflib.unified_diff(
                    job.target_source.splitlines(keepends=True),
                    source.splitlines(keepends=True),
                    fromfile=f"{job.target_name} (original)",
                    tofile=f"{job.target_name} (candidate {cid})",
                )
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(source)
    what = "the diff of candidate" if getattr(args, "diff", False) else "candidate"
    print(f"wrote {what} {cid} of job {args.job} to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_kb(args: argparse.Namespace) -> int:
    from evoforge.search.learned_store import open_knowledge

    kb = open_knowledge(open_store_from_args(args), Settings().data_dir)
    if args.kb_command == "show":
        entry = kb.get(args.id)
        if args.json:
            print(json.dumps(entry.to_json(), indent=2))
        else:
            print(entry.as_prompt())
        return EXIT_OK
    if args.kb_command == "search":
        hits = kb.ranked(args.query, domain=args.domain, tags=args.tag, k=args.k)
        rows = [h.entry.row() | {"score": round(h.score, 3)} for h in hits]
        if args.json:
            print(json.dumps({"query": args.query, "entries": rows}, indent=2))
        for row in [] if args.json else rows:
            print(f"{row['score']:7.2f}  {row['id']:<28} {row['kind']:<8} {row['title']}")
        return EXIT_OK
    where = {"domain": args.domain, "tags": args.tag}
    groups = {
        "builtin": [] if args.learned else kb.filter(**where, include_learned=False),
        "learned": [] if args.builtin else kb.filter(**where, include_builtin=False),
    }
    if args.json:
        print(json.dumps({k: [e.row() for e in v] for k, v in groups.items()}, indent=2))
        return EXIT_OK
    for kind, entries in groups.items():
        if (kind == "learned" and args.builtin) or (kind == "builtin" and args.learned):
            continue
        print(f"{kind} ({len(entries)}):")
        for e in entries:
            print(f"  {e.id:<28} {e.domain:<6} {','.join(e.goals):<18} {e.title}")
    return EXIT_OK
