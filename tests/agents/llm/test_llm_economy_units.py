"""The proposer's economy with a fake LLM: plans reused, repeats unchecked, repairs only for news,
requests changed when drafts repeat; the client's local concurrency, call budget and overload hint."""

from __future__ import annotations

import pytest
from openai_script import ScriptedServer, Step
from test_llm_graph import GOOD, TARGET, FakeChat, block

from evoforge.agents.base import ProposalRequest
from evoforge.agents.llm.client import LlmClient, concurrency_for, is_local_endpoint
from evoforge.agents.llm.proposer import MAX_TEMPERATURE, LlmProposer
from evoforge.config import LlmSettings
from evoforge.domain import Metrics, StageResult

BROKEN = "module m(input a, output y); assign y = ; endmodule"
OTHER = "module m(input a, output y); assign y = a & a; endmodule"


class Memory:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def claim(self, source: str) -> bool:
        key = " ".join(source.split())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class CountingChecker:
    def __init__(self) -> None:
        self.checked: list[str] = []

    def __call__(self, source: str) -> StageResult:
        self.checked.append(source)
        ok = "= ;" not in source
        return StageResult("lint", ok, 0.0, detail="" if ok else "line 1: syntax error near ';'")


def request(count: int = 1, feedback: dict[str, object] | None = None) -> ProposalRequest:
    return ProposalRequest(
        TARGET, TARGET.source, Metrics(area_um2=10.0), feedback=feedback or {}, count=count
    )


def roles(llm: FakeChat) -> list[str]:
    return [role for role, _ in llm.seen]


def test_a_plan_is_reused_while_parent_and_feedback_are_unchanged() -> None:
    llm = FakeChat(planner=["1. a", "1. b"], coder=[block(GOOD), block(OTHER), block(GOOD)])
    proposer = LlmProposer(llm, CountingChecker(), memory=Memory())  # type: ignore[arg-type]
    proposer.propose(request(2))
    assert roles(llm) == ["planner", "coder", "coder"]
    proposer.propose(request(1, {"recent_failures": [{"stage": "simulate", "reason": "differs"}]}))
    assert roles(llm)[3:] == ["planner", "coder"]  # new feedback: a new plan


def test_a_repeated_draft_is_handed_over_unchecked_and_the_next_request_changes() -> None:
    llm = FakeChat(
        planner=["1. share", "1. other idea"], coder=[block(GOOD), block(GOOD), block(GOOD), block(GOOD)]
    )
    checker = CountingChecker()
    proposer = LlmProposer(llm, checker, memory=Memory())  # type: ignore[arg-type]
    first = proposer.propose(request(2))
    assert [p.repeat for p in first] == [False, True] and len(checker.checked) == 1
    assert first[1].check is None
    # the repeat raised the temperature and rotated what the prompt shows; no new plan yet
    proposer.propose(request(1))
    assert roles(llm) == ["planner", "coder", "coder", "coder"]
    assert llm.temperatures[-1] is not None and llm.temperatures[-1] > llm.settings.temperature
    # a second repeat: the planner is asked for an approach not yet tried, the tried one listed
    proposer.propose(request(1))
    planner_prompt = llm.seen[-2][1][-1]["content"]
    assert roles(llm)[-2:] == ["planner", "coder"]
    assert "Approaches already tried" in planner_prompt and "share" in planner_prompt
    assert all(t is None or t <= max(MAX_TEMPERATURE, llm.settings.temperature) for t in llm.temperatures)
    assert len(checker.checked) == 1  # repeats never checked


def test_a_failure_already_sent_back_for_the_parent_is_not_sent_again() -> None:
    llm = FakeChat(
        coder=[block(BROKEN), block(GOOD), block(BROKEN.replace("assign", "wire w; assign")), block(OTHER)]
    )
    proposer = LlmProposer(llm, CountingChecker(), memory=Memory(), max_repairs=2)  # type: ignore[arg-type]
    first = proposer.propose(request(1))
    assert roles(llm) == ["planner", "coder", "repair"] and first[0].repairs == 1
    second = proposer.propose(request(1))  # the same failure again (a new text): no repair this time
    assert roles(llm)[3:] == ["coder"]
    assert second[0].check is not None and not second[0].check.ok and second[0].repairs == 0


def test_a_reply_without_code_gets_one_repair_at_most() -> None:
    llm = FakeChat(coder=["no code here", "still none", block(GOOD)])
    proposer = LlmProposer(llm, CountingChecker(), memory=Memory(), max_repairs=5)  # type: ignore[arg-type]
    assert proposer.propose(request(1)) == []
    assert roles(llm) == ["planner", "coder", "repair"]


def test_local_endpoints_default_to_one_request_in_flight() -> None:
    assert is_local_endpoint("http://127.0.0.1:8080/v1") and is_local_endpoint("http://localhost:11434/v1")
    assert is_local_endpoint("http://[::1]:8000/v1") and not is_local_endpoint("https://api.example.com/v1")
    assert concurrency_for(LlmSettings(base_url="http://127.0.0.1:8000/v1")) == 1
    assert concurrency_for(LlmSettings(base_url="https://api.example.com/v1")) == 4
    assert concurrency_for(LlmSettings(base_url="https://api.example.com/v1"), served_models=1) == 1
    assert concurrency_for(LlmSettings(base_url="http://127.0.0.1:8000/v1", max_concurrency=3)) == 3


def test_a_timeout_with_several_requests_in_flight_says_to_lower_the_concurrency() -> None:
    with ScriptedServer([Step("late", delay_s=1.0)] * 4) as server:
        settings = LlmSettings(
            base_url=server.url, model="scripted-model", timeout_s=0.3, max_retries=0, max_concurrency=3
        )
        client = LlmClient(settings)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(3) as pool:
            replies = list(
                pool.map(lambda _: client.chat([{"role": "user", "content": "hi"}], role="coder"), range(3))
            )
    errors = [r.error or "" for r in replies]
    assert all("no reply within" in e for e in errors)
    assert any("--llm-concurrency 1" in e and "requests in flight" in e for e in errors)


def test_the_call_budget_refuses_requests_once_spent() -> None:
    with ScriptedServer() as server:
        client = LlmClient(LlmSettings(base_url=server.url, model="scripted-model", call_budget=2))
        for _ in range(3):
            client.chat([{"role": "user", "content": "hi"}], role="coder")
        assert server.count() == 2 and client.exhausted() is not None
        assert "call budget of 2" in (client.exhausted() or "")


@pytest.mark.parametrize("spent", ["tokens", "calls"])
def test_an_exhausted_client_makes_the_proposer_propose_nothing(spent: str) -> None:
    llm = FakeChat(coder=[block(GOOD)], budget_spent=True)
    proposer = LlmProposer(llm, CountingChecker())  # type: ignore[arg-type]
    assert proposer.exhausted() and proposer.propose(request(1)) == [] and llm.seen == []
