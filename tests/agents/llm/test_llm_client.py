"""The client against a scripted OpenAI-compatible server over real HTTP: retries, errors, tokens, cap."""

from __future__ import annotations

import threading
import time

import pytest
from openai_script import MODEL, ScriptedServer, Step

from evoforge.agents.llm.client import LlmClient, served_models
from evoforge.config import LlmSettings
from evoforge.errors import ConfigError

HELLO = [{"role": "system", "content": "You are the coder"}, {"role": "user", "content": "say hi"}]


def settings(server: ScriptedServer, **overrides: object) -> LlmSettings:
    base = {"base_url": server.url, "api_key": "secret-key", "model": MODEL, "timeout_s": 1.0}
    return LlmSettings.model_validate(base | {"backoff_s": 0.01, "max_retries": 2} | overrides)


def test_a_reply_with_its_tokens_is_counted_per_call_and_per_job() -> None:
    with ScriptedServer([Step("hello there")]) as server:
        client = LlmClient(settings(server))
        reply = client.chat(HELLO, role="coder")
        again = client.chat(HELLO, role="coder")
    assert reply.ok and reply.text == "hello there" and reply.model == MODEL
    assert reply.prompt_tokens == 6 and reply.completion_tokens == 2
    assert len(reply.attempts) == 1 and reply.attempts[0].reply == "hello there"
    assert "[user]\nsay hi" in reply.attempts[0].prompt
    assert "secret-key" not in repr(reply) + repr(client.settings)
    assert client.tokens_spent == 8 + (again.prompt_tokens or 0) + (again.completion_tokens or 0)


def test_429_then_success_is_retried_and_both_attempts_recorded() -> None:
    script = [Step(status=429, headers={"retry-after": "0.05"}), Step("ok now")]
    with ScriptedServer(script) as server:
        reply = LlmClient(settings(server)).chat(HELLO, role="coder")
    assert reply.ok and reply.text == "ok now"
    assert [a.error is None for a in reply.attempts] == [False, True]
    assert "429" in (reply.attempts[0].error or "")
    assert server.count() == 2


def test_500s_are_retried_until_the_limit_then_reported() -> None:
    with ScriptedServer([Step(status=500)] * 5) as server:
        reply = LlmClient(settings(server, max_retries=2)).chat(HELLO, role="planner")
    assert not reply.ok and reply.text is None
    assert "500" in (reply.error or "")
    assert len(reply.attempts) == 3 and server.count() == 3


def test_a_timeout_is_retried() -> None:
    with ScriptedServer([Step("late", delay_s=2.0), Step("in time")]) as server:
        start = time.monotonic()
        reply = LlmClient(settings(server, timeout_s=0.5)).chat(HELLO, role="coder")
    assert reply.ok and reply.text == "in time"
    assert "no reply within 0.5s" in (reply.attempts[0].error or "")
    assert time.monotonic() - start < 2.0


def test_garbage_and_client_errors_are_not_retried() -> None:
    with ScriptedServer([Step(raw="<html>oops</html>"), Step(status=401), Step("unused")]) as server:
        client = LlmClient(settings(server))
        garbage = client.chat(HELLO, role="coder")
        denied = client.chat(HELLO, role="coder")
    assert not garbage.ok and len(garbage.attempts) == 1 and "no choices" in (garbage.error or "")
    assert not denied.ok and len(denied.attempts) == 1 and "401" in (denied.error or "")


def test_an_unreachable_endpoint_is_an_error_reply() -> None:
    with ScriptedServer() as server:
        url = server.url
    reply = LlmClient(
        LlmSettings(base_url=url, model=MODEL, timeout_s=1, max_retries=1, backoff_s=0.01)
    ).chat(HELLO, role="coder")
    assert not reply.ok and "cannot reach" in (reply.error or "") and len(reply.attempts) == 2


def test_the_token_budget_stops_requests() -> None:
    with ScriptedServer([Step("a b c d e f g h")] * 3) as server:
        client = LlmClient(settings(server, token_budget=10))
        first = client.chat(HELLO, role="coder")
        second = client.chat(HELLO, role="coder")
    assert first.ok and client.budget_spent
    assert not second.ok and "budget" in (second.error or "") and second.attempts == ()
    assert server.count() == 1


def test_concurrent_requests_are_capped() -> None:
    with ScriptedServer([Step("x", delay_s=0.3)] * 6) as server:
        client = LlmClient(settings(server, max_concurrency=2))
        in_flight, peak = 0, 0
        lock = threading.Lock()
        original = client._openai.chat.completions.create

        def counting(**kwargs: object) -> object:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            try:
                return original(**kwargs)
            finally:
                with lock:
                    in_flight -= 1

        client._openai.chat.completions.create = counting
        threads = [
            threading.Thread(target=client.chat, args=(HELLO,), kwargs={"role": "coder"}) for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert peak == 2 and server.count() == 6


def test_model_discovery_and_a_missing_model() -> None:
    with ScriptedServer() as server:
        assert served_models(LlmSettings(base_url=server.url)) == [MODEL]
    with pytest.raises(ConfigError, match="EVOFORGE_MODEL"):
        LlmClient(LlmSettings(base_url="http://127.0.0.1:9/v1"))
