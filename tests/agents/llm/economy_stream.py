"""The reply stream of issue 13, shared by its test and ``bench/llm_economy.py``.

The coder's replies cycle through: a correct rewrite (one adder behind multiplexers), a subtly wrong
one, the correct one again with its internal signals renamed (and a comment), and a reply without
code. Planners always get the same plan. A proposer that spends calls on repeats, checks them or
evaluates the renaming shows it here.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai_script import MODEL, ScriptedServer, Step, fenced
from sqlalchemy import select

from evoforge.config import LlmSettings, Settings
from evoforge.domain import DEFAULT_RTL_OBJECTIVES, JobStatus, source_hash
from evoforge.search import jobs
from evoforge.store.engine import open_store
from evoforge.store.models import Candidate, Job, StageRun
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ADDSEL = (Path(__file__).resolve().parents[2] / "fixtures" / "rtl_small" / "addsel.v").read_text()
#: one adder behind operand multiplexers: the same function, about half the area
SHARED = """\
module addsel(input [2:0] op, input [15:0] a, b, c, d, output reg [16:0] y);
  reg [15:0] x, z;
  always @* begin
    if (op == 3'd0) begin x = a; z = b; end
    else if (op == 3'd1) begin x = c; z = d; end
    else if (op == 3'd2) begin x = a; z = d; end
    else begin x = b; z = c; end
    y = x + z;
  end
endmodule
"""
#: subtly wrong: one branch adds the wrong operand (parses, lints, keeps the ports)
WRONG = ADDSEL.replace("y = a + d", "y = a + c")
#: SHARED with its internal signals renamed and a comment: the same draft
RENAMED = """\
module addsel(input [2:0] op, input [15:0] a, b, c, d, output reg [16:0] y);
  // operands of the one shared adder
  reg [15:0] lhs, rhs;
  always @* begin
    if (op == 3'd0) begin lhs = a; rhs = b; end
    else if (op == 3'd1) begin lhs = c; rhs = d; end
    else if (op == 3'd2) begin lhs = a; rhs = d; end
    else begin lhs = b; rhs = c; end
    y = lhs + rhs;
  end
endmodule
"""
NO_CODE = "Sharing one adder between the branches would halve the area; I will write it next time."

STREAM = [
    Step(fenced(SHARED), role="coder"),
    Step(fenced(WRONG), role="coder"),
    Step(fenced(RENAMED, before="Same idea, clearer names."), role="coder"),
    Step(NO_CODE, role="coder"),
]


# -- running the stream through evoforge (in this process, the verifier in its sandboxed children) --


@dataclass
class EconomyRun:
    job_id: int
    status: str
    proposals: int
    requests: Counter[str]  # by role, as the server saw them
    quick_checks: Counter[str] = field(default_factory=Counter)  # source hash → quick checks run
    quick_seconds: float = 0.0
    evaluator_seconds: float = 0.0  # stage seconds actually spent on proposals (cached ones cost 0)
    duplicate_seconds: float = 0.0  # of which on drafts that repeat an earlier one
    candidates: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())


def run_stream(
    store_url: str,
    data_dir: Path,
    work: Path,
    settings: Settings,
    *,
    budget: int = 10,
    monkeypatch: Any = None,
) -> EconomyRun:
    """The stream through ``evoforge run --proposer llm`` (in process), counting what it cost."""
    design = work / "addsel.v"
    design.write_text(ADDSEL)
    target = load_rtl_target([design], RtlTargetOptions(), workdir=work)
    quick: Counter[str] = Counter()
    quick_seconds = [0.0]
    real_make = jobs.make_verifier

    def counting_verifier(target: Any, job_settings: Settings) -> Any:
        verifier = real_make(target, job_settings)
        check = verifier.quick_check

        def counted(source: str) -> Any:
            start = time.monotonic()
            try:
                return check(source)
            finally:
                quick_seconds[0] += time.monotonic() - start
                quick[source_hash(source)] += 1

        verifier.quick_check = counted
        return verifier

    with ScriptedServer(cycle=list(STREAM)) as server:
        llm = LlmSettings(
            base_url=server.url, api_key="sk-scripted", model=MODEL, timeout_s=30, backoff_s=0.05
        )
        search = settings.search.model_copy(update={"budget": budget, "proposer": "llm"})
        job_settings = settings.model_copy(update={"llm": llm, "search": search, "db": store_url})
        store = open_store(store_url)
        job_id = jobs.create_job(
            store, target, job_settings, DEFAULT_RTL_OBJECTIVES, status=JobStatus.RUNNING
        )
        started = time.monotonic()
        if monkeypatch is not None:
            monkeypatch.setattr(jobs, "make_verifier", counting_verifier)
            jobs.run_job(store, job_id, job_settings)
        else:
            jobs.make_verifier = counting_verifier  # type: ignore[assignment]
            try:
                jobs.run_job(store, job_id, job_settings)
            finally:
                jobs.make_verifier = real_make  # type: ignore[assignment]
        wall = time.monotonic() - started
        requests = Counter(
            entry.role if entry.role == "planner" else _coder_role(entry) for entry in server.log
        )
    from evoforge.search.report import job_report

    run = EconomyRun(job_id, "", 0, requests, quick, quick_seconds[0], wall_seconds=wall)
    with store.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        run.status = job.status
        rows = session.scalars(
            select(Candidate)
            .where(Candidate.job_id == job_id, Candidate.origin != "original")
            .order_by(Candidate.id)
        ).all()
        run.proposals = len(rows)
        for c in rows:
            spent = sum(
                r.seconds
                for r in session.scalars(select(StageRun).where(StageRun.candidate_id == c.id))
                if not r.cached
            )
            fresh = sum(1 for r in c.stage_runs if not r.cached)
            run.evaluator_seconds += spent
            if c.duplicate_of is not None or c.cache_hit in ("source", "canonical", "quick"):
                run.duplicate_seconds += spent
            run.candidates.append(
                {
                    "id": c.id,
                    "source": c.source,
                    "status": c.status,
                    "cache_hit": c.cache_hit,
                    "duplicate_of": c.duplicate_of,
                    "fresh_stage_runs": fresh,
                    "seconds": spent,
                }
            )
        run.report = job_report(session, job_id)
    run.evaluator_seconds += quick_seconds[0]
    repeated = sum(n - 1 for n in quick.values() if n > 1)
    run.duplicate_seconds += quick_seconds[0] * repeated / max(1, sum(quick.values()))
    return run


def _coder_role(entry: Any) -> str:
    """A coder request that carries an earlier reply is a repair."""
    return "repair" if any(m.get("role") == "assistant" for m in entry.messages) else "coder"
