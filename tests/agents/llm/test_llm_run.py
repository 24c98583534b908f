"""`evoforge run --proposer llm|mixed` end to end against a scripted OpenAI-compatible server.

The server speaks real HTTP on loopback; the CLI runs as a child process with OPENAI_BASE_URL pointing
at it. Whatever the server does — a good rewrite, a subtly wrong one, no code, garbage, a timeout, a
429, a 500 — the job succeeds and the database holds every call the server received.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from openai_script import MODEL, ScriptedServer, Step, fenced

from evoforge.domain import normalise_source

FAST_ENV = {
    "EVOFORGE_RTL__SIM_CYCLES": "1000",
    "EVOFORGE_RTL__SIM_SEEDS": "1",
    "EVOFORGE_RTL__PROBE_CYCLES": "300",
    "EVOFORGE_LLM__TIMEOUT_S": "1.5",
    "EVOFORGE_LLM__BACKOFF_S": "0.05",
    "EVOFORGE_LLM__MAX_RETRIES": "1",
}
API_KEY = "sk-test-never-stored-0123456789"

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


@pytest.fixture
def design(tmp_path: Path) -> Path:
    path = tmp_path / "addsel.v"
    path.write_text(ADDSEL)
    return path


def evoforge(
    server: ScriptedServer | None, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    endpoint = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": API_KEY} if server else {}
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **FAST_ENV, **endpoint, **(env or {})},
        timeout=600,
    )


def llm_rows(db: Path, job_id: int) -> list[tuple[int | None, str, str | None, str | None]]:
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT candidate_id, role, reply, error FROM llm_calls WHERE job_id = ? ORDER BY id", (job_id,)
    ).fetchall()
    con.close()
    return rows


def test_llm_run_reports_the_good_rewrite_as_best_and_the_wrong_one_as_rejected(
    tmp_path: Path, design: Path
) -> None:
    db = tmp_path / "jobs.db"
    script = [
        Step(fenced(WRONG), role="coder"),
        Step(status=429, headers={"retry-after": "0"}),
        Step(fenced(SHARED), role="coder"),
        Step("I would share the adders, but here is no code.", role="coder"),
        Step(raw="<html>502 Bad Gateway garbage</html>", role="coder"),
        Step(status=500, role="planner"),
        Step(fenced(SHARED), delay_s=3.0, role="coder"),
    ]
    with ScriptedServer(script) as server:
        done = evoforge(
            server, "run", design, "--proposer", "llm", "--budget", "6", "--json", "--db", f"sqlite:///{db}"
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded" and report["options"]["proposer"] == "llm"
    assert server.script == [] or all(s.role == "coder" and s.delay_s for s in server.script)

    best = report["best"]
    assert best is not None and best["origin"] == f"llm:{MODEL}"
    assert normalise_source(best["source"]) == normalise_source(SHARED)
    assert best["improvement"]["area_um2"] > 1.5 and best["assurance"] == "proven"
    wrong = [
        c
        for c in report["candidates"]
        if normalise_source_of(tmp_path, db, c["id"]) == normalise_source(WRONG)
    ]
    assert len(wrong) == 1 and wrong[0]["status"] == "rejected"
    assert wrong[0]["rejected_stage"] == "simulate" and "differs" in wrong[0]["reason"]

    # every request the server saw is a row, linked to its candidate when it produced one
    rows = llm_rows(db, report["job_id"])
    assert len(rows) == server.count() and report["llm"]["calls"] == len(rows)
    assert report["llm"]["errors"] == sum(1 for r in rows if r[3]) >= 3  # 429, 500, timeout, garbage
    assert any("429" in (r[3] or "") for r in rows) and any("500" in (r[3] or "") for r in rows)
    assert any("no reply within" in (r[3] or "") for r in rows)
    linked = {r[0] for r in rows if r[0] is not None}
    assert best["candidate_id"] in linked and wrong[0]["id"] in linked
    assert any(r[0] is None and r[2] and "no code" in r[2] for r in rows)  # the reply without code
    assert API_KEY not in "\n".join(con_dump(db))

    # `show` exposes the calls: counts for the job, prompt and reply for a candidate
    url = f"sqlite:///{db}"
    shown = json.loads(
        evoforge(
            None,
            "show",
            str(report["job_id"]),
            "--candidate",
            str(best["candidate_id"]),
            "--db",
            url,
            "--json",
        ).stdout
    )
    roles = [c["role"] for c in shown["llm_calls"]]
    assert "coder" in roles or "repair" in roles
    # a plan serves every draft of its parent: its request is linked to the first of them
    assert any(r[1] == "planner" and r[0] is not None and r[3] is None for r in rows)
    assert any(c["reply"] and "y = x + z;" in c["reply"] for c in shown["llm_calls"])
    assert all(c["prompt"].startswith("[system]") for c in shown["llm_calls"])
    human = evoforge(None, "show", str(report["job_id"]), "--db", url).stdout
    assert f"LLM: {len(rows)} calls" in human
    human_candidate = evoforge(
        None, "show", str(report["job_id"]), "--candidate", str(best["candidate_id"]), "--db", url
    ).stdout
    assert "llm call" in human_candidate and "reply:" in human_candidate

    # the win became a learned knowledge-base entry, with the plan and a diff excerpt
    con = sqlite3.connect(db)  # learned entries live in the store (issue 11 item 8)
    learned = [json.loads(data) for (data,) in con.execute("SELECT data FROM learned_entries")]
    con.close()
    assert any(e["origin"] == f"llm:{MODEL}" and "x + z" in e["excerpt"] and e["note"] for e in learned)


def normalise_source_of(tmp_path: Path, db: Path, candidate_id: int) -> str:
    con = sqlite3.connect(db)
    (source,) = con.execute("SELECT source FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
    con.close()
    return normalise_source(source)


def con_dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    lines = list(con.iterdump())
    con.close()
    return lines


FAILURES = {
    "no_code": [Step("Sharing the adder would help; I cannot write it now.", role="coder")] * 40,
    "garbage": [Step(raw="\x00\x01 not json {{{")] * 80,
    "timeout": [Step("late", delay_s=1.5)] * 80,
    "server_error": [Step(status=500)] * 80,
}


@pytest.mark.parametrize("scenario", sorted(FAILURES))
def test_a_failing_endpoint_never_fails_the_job(tmp_path: Path, design: Path, scenario: str) -> None:
    db = tmp_path / "jobs.db"
    with ScriptedServer(list(FAILURES[scenario])) as server:
        done = evoforge(
            server,
            *("run", design, "--proposer", "llm", "--budget", "1", "--workers", "1", "--json"),
            *("--db", f"sqlite:///{db}", "--llm-timeout", "0.5"),
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded" and report["best"] is None and report["candidates"] == []
    rows = llm_rows(db, report["job_id"])
    assert len(rows) == server.count() > 0 and all(r[0] is None for r in rows)
    if scenario == "no_code":
        assert all(r[3] is None for r in rows) and report["llm"]["errors"] == 0
    else:
        assert all(r[3] for r in rows if r[1] == "planner")


def test_mixed_is_the_default_with_an_endpoint_and_the_token_budget_stops_the_llm(
    tmp_path: Path, design: Path
) -> None:
    db = tmp_path / "jobs.db"
    with ScriptedServer([Step(fenced(WRONG), role="coder")]) as server:
        done = evoforge(
            server,
            "run",
            design,
            "--budget",
            "3",
            "--token-budget",
            "50",
            "--json",
            "--db",
            f"sqlite:///{db}",
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["options"]["proposer"] == "mixed" and report["status"] == "succeeded"
    origins = {c["origin"].split(":")[0] for c in report["candidates"]}
    assert "offline" in origins
    # the budget is spent by the first prompt: only the requests already in flight went out
    assert 0 < server.count() <= 4 and report["llm"]["calls"] == server.count()


def test_llm_without_an_endpoint_fails_fast_saying_how_to_configure_one(tmp_path: Path, design: Path) -> None:
    done = evoforge(None, "run", design, "--proposer", "llm", "--db", f"sqlite:///{tmp_path / 'jobs.db'}")
    assert done.returncode == 2
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "EVOFORGE_MODEL"):
        assert name in done.stderr
    assert "Traceback" not in done.stderr


def test_an_endpoint_with_several_models_needs_a_choice(tmp_path: Path, design: Path) -> None:
    with ScriptedServer(models=("big", "small")) as server:
        done = evoforge(
            server, "run", design, "--proposer", "llm", "--db", f"sqlite:///{tmp_path / 'jobs.db'}"
        )
    assert done.returncode == 2 and "EVOFORGE_MODEL" in done.stderr and "big, small" in done.stderr
