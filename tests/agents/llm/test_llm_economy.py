"""Issue 13: the LLM path spends requests on new ideas, not on repeats.

The scripted OpenAI-compatible server (real HTTP on loopback) replays the stream of the issue — a
correct rewrite, a wrong one, the correct one with renamed signals, a reply without code, cycling —
into a job with a budget of 10 proposals; the job runs in this process (the verifier in its sandboxed
children) so that its quick checks can be counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from economy_stream import RENAMED, SHARED, WRONG, EconomyRun, run_stream

from evoforge.config import Settings
from evoforge.domain import normalise_source, source_hash


def _run(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, budget: int, name: str
) -> EconomyRun:
    work = tmp_path / name
    work.mkdir()
    return run_stream(
        f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path, work, settings, budget=budget, monkeypatch=monkeypatch
    )


@pytest.mark.slow
def test_the_stream_costs_few_requests_no_repeated_check_and_no_evaluation_of_the_renaming(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path, settings, monkeypatch, 10, "first")
    assert run.status == "succeeded"
    # the budget of proposals is spent (no token budget was set), repeats included
    assert run.proposals == 10, run.candidates
    assert run.request_count <= 3 * run.proposals, run.requests
    assert run.requests["planner"] < run.requests["coder"]  # plans are reused

    by_text = {
        name: [c for c in run.candidates if normalise_source(c["source"]) == normalise_source(text)]
        for name, text in (("shared", SHARED), ("wrong", WRONG), ("renamed", RENAMED))
    }
    # the renamed reply: recorded as a duplicate of the correct rewrite, evaluated 0 times
    assert by_text["renamed"], "the stream's renamed reply never became a proposal"
    originals = {c["id"] for c in by_text["shared"] if c["duplicate_of"] is None}
    assert len(originals) == 1
    for c in by_text["renamed"]:
        assert c["duplicate_of"] in originals and c["cache_hit"] == "canonical"
        assert c["fresh_stage_runs"] == 0 and c["status"] == "accepted"
    # every draft was checked at most once; the renaming and the repeats not at all
    assert run.quick_checks and max(run.quick_checks.values()) == 1, run.quick_checks
    assert source_hash(RENAMED) not in run.quick_checks
    # two distinct ideas, two evaluations; every other proposal links to one of them
    evaluated = [c for c in run.candidates if c["fresh_stage_runs"]]
    assert sorted(normalise_source(c["source"]) for c in evaluated) == sorted(
        normalise_source(t) for t in (SHARED, WRONG)
    )
    assert run.duplicate_seconds == 0.0
    wrong = by_text["wrong"]
    assert (
        all(c["status"] == "rejected" for c in wrong) and sum(c["duplicate_of"] is None for c in wrong) == 1
    )

    # the report says what each result cost
    cost = run.report["llm"]
    assert cost["calls"] == run.request_count
    assert cost["duplicates_avoided"] == run.proposals - 2
    assert cost["per_proposal"]["requests"] == pytest.approx(run.request_count / run.proposals)
    assert cost["per_accepted"]["requests"] == pytest.approx(run.request_count / 1)
    assert cost["repairs"] == run.requests["repair"]

    # … and so do the web page and the API
    from fastapi.testclient import TestClient

    from evoforge.web import create_app

    web_settings = settings.model_copy(update={"db": f"sqlite:///{tmp_path / 'jobs.db'}"})
    with TestClient(create_app(web_settings, embedded_worker=False), base_url="http://127.0.0.1") as client:
        page = client.get(f"/jobs/{run.job_id}").text
        assert 'id="llm-cost"' in page and f"{run.proposals - 2} duplicates avoided" in page
        api = client.get(f"/api/jobs/{run.job_id}").json()
        assert api["llm"]["per_proposal"]["requests"] == pytest.approx(run.request_count / run.proposals)

    # a later job on the same target: every draft is known, nothing is checked or evaluated again
    again = _run(tmp_path, settings, monkeypatch, 4, "second")
    assert again.status == "succeeded" and again.proposals == 4
    assert not again.quick_checks and again.evaluator_seconds == 0.0, again.candidates
    assert all(c["duplicate_of"] is not None for c in again.candidates)
