"""The one client of a model endpoint: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp).

``LlmClient.chat`` sends one chat request through the ``openai`` client (its own retries off) and
retries here instead, so that every attempt is counted, logged and returned as an
``LlmCallRecord``: 429, 5xx, timeouts and lost connections are retried with exponential backoff and
jitter (a server's ``Retry-After`` is honoured when it is short); other errors are not. A semaphore
caps the requests in flight; tokens are counted per call and for the whole job (the client lives as
long as the job), and an optional token budget refuses further requests once it is spent.

The budget is tokens (``token_budget``) and requests (``call_budget``): either, once spent, refuses
further requests. A local endpoint (a loopback address) gets one request in flight unless configured
otherwise (``concurrency_for``): local servers answer one at a time, and a queued request's wait
would count toward its timeout; a timeout with several requests in flight says to lower the
concurrency. ``exhausted()`` tells the proposer why no more requests can go out (budget spent, or the
endpoint failing request after request).

``openai`` errors are mapped to ``evoforge.errors.LlmError`` subclasses at this boundary; ``chat``
itself never raises for an endpoint failure — the reply carries the error, so callers record it.
The API key is handed to the ``openai`` client only: it is never logged, stored or put in a record.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from evoforge.agents.base import LlmCallRecord
from evoforge.config import LlmSettings
from evoforge.errors import ConfigError, LlmBudgetError, LlmError, LlmTransientError

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}

#: longest server-requested wait (Retry-After) honoured before falling back to our own backoff
MAX_RETRY_AFTER_S = 30.0
#: longest backoff between two attempts
MAX_BACKOFF_S = 60.0
#: requests in flight at once when nothing is configured: local servers, remote services
LOCAL_CONCURRENCY = 1
REMOTE_CONCURRENCY = 4
#: failed requests in a row (no success between) after which the endpoint counts as down
FAILING_STREAK = 6


def is_local_endpoint(base_url: str | None) -> bool:
    """A loopback endpoint (127.0.0.0/8, ::1, localhost): a server on this machine."""
    import ipaddress
    from urllib.parse import urlsplit

    if not base_url:
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def concurrency_for(settings: LlmSettings, served_models: int | None = None) -> int:
    """The configured concurrency, else 1 for a local endpoint (loopback or one served model), else 4."""
    if settings.max_concurrency is not None:
        return settings.max_concurrency
    if is_local_endpoint(settings.base_url) or served_models == 1:
        return LOCAL_CONCURRENCY
    return REMOTE_CONCURRENCY


@dataclass(frozen=True)
class LlmReply:
    """The outcome of one ``chat``: the text (None on failure) and every attempt it took."""

    text: str | None
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    error: str | None
    attempts: tuple[LlmCallRecord, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class ChatClient(Protocol):
    """What the agent graph needs of a client (``LlmClient``, or a fake in tests)."""

    def chat(
        self, messages: Sequence[Message], *, role: str, temperature: float | None = None
    ) -> LlmReply: ...


def render_messages(messages: Sequence[Message]) -> str:
    """The prompt as stored: each message as ``[role]`` and its text."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def _is_transient_status(status: int) -> bool:
    return status == 429 or status == 408 or status >= 500


def map_openai_error(exc: Exception, timeout_s: float) -> LlmError:
    """The evoforge error for an ``openai`` exception (callers ``raise … from exc``)."""
    import openai

    if isinstance(exc, LlmError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LlmTransientError(f"no reply within {timeout_s:g}s", hint="raise llm.timeout_s")
    if isinstance(exc, openai.APIConnectionError):
        return LlmTransientError(f"cannot reach the endpoint: {exc}", hint="is OPENAI_BASE_URL right?")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"HTTP {status}: {_short(str(exc.message))}"
        if _is_transient_status(status):
            return LlmTransientError(message)
        if status in (401, 403):
            return LlmError(message, hint="check OPENAI_API_KEY")
        if status == 404:
            return LlmError(message, hint="check OPENAI_BASE_URL (ends in /v1?) and EVOFORGE_MODEL")
        return LlmError(message)
    if isinstance(exc, openai.OpenAIError):
        return LlmError(f"{type(exc).__name__}: {_short(str(exc))}")
    return LlmError(f"unexpected reply: {type(exc).__name__}: {_short(str(exc))}")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(getattr(exc, "__cause__", None), "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LlmClient:
    """Chat requests to one endpoint, with retries, a concurrency cap and a job's token accounting."""

    def __init__(
        self,
        settings: LlmSettings,
        *,
        tokens_spent: int = 0,
        requests_made: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_record: Callable[[LlmCallRecord], int | None] | None = None,
    ) -> None:
        if not settings.model:
            raise ConfigError("no model is configured", hint="set EVOFORGE_MODEL or pass --model")
        self.settings = settings
        self.model = settings.model
        self.planner_model = settings.planner_model or settings.model
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.concurrency = concurrency_for(settings)
        self._slots = threading.Semaphore(self.concurrency)
        self._lock = threading.Lock()
        self._tokens_spent = tokens_spent
        self._on_record = on_record  # stores each request as it completes; returns its row id
        self._requests = requests_made
        self._in_flight = 0
        self._failed_streak = 0
        self._last_error: str | None = None
        self._openai = make_openai_client(settings)

    # -- accounting ------------------------------------------------------------------------------

    @property
    def tokens_spent(self) -> int:
        with self._lock:
            return self._tokens_spent

    @property
    def budget_spent(self) -> bool:
        budget = self.settings.token_budget
        return budget is not None and self.tokens_spent >= budget

    @property
    def requests_made(self) -> int:
        with self._lock:
            return self._requests

    @property
    def calls_spent(self) -> bool:
        budget = self.settings.call_budget
        return budget is not None and self.requests_made >= budget

    def exhausted(self) -> str | None:
        """Why no more requests should go out, or None."""
        if self.budget_spent:
            return f"the LLM token budget of {self.settings.token_budget} is spent ({self.tokens_spent} used)"
        if self.calls_spent:
            return f"the LLM call budget of {self.settings.call_budget} requests is spent"
        with self._lock:
            streak, last = self._failed_streak, self._last_error
        if streak >= FAILING_STREAK:
            return f"the LLM endpoint failed {streak} requests in a row (last: {last})"
        return None

    def _count(self, prompt_tokens: int | None, completion_tokens: int | None, estimate: int) -> None:
        used = (prompt_tokens or 0) + (completion_tokens or 0)
        with self._lock:
            self._tokens_spent += used if used else estimate

    def model_for(self, role: str) -> str:
        return self.planner_model if role == "planner" else self.model

    # -- requests --------------------------------------------------------------------------------

    def chat(self, messages: Sequence[Message], *, role: str, temperature: float | None = None) -> LlmReply:
        """Send ``messages``; retry transient failures; never raises for an endpoint failure.

        ``temperature`` overrides the configured one for this request (the proposer raises it when
        drafts repeat)."""
        model = self.model_for(role)
        prompt = render_messages(messages)
        attempts: list[LlmCallRecord] = []
        started = time.monotonic()
        error: LlmError | None = None
        for attempt in range(self.settings.max_retries + 1):
            if self.budget_spent or self.calls_spent:
                error = LlmBudgetError(
                    f"the token budget of {self.settings.token_budget} is spent"
                    if self.budget_spent
                    else f"the call budget of {self.settings.call_budget} requests is spent",
                    hint="raise --token-budget" if self.budget_spent else "raise --llm-calls",
                )
                break
            if attempt:
                delay = self._backoff(attempt, error)
                log.info("%s request: retry %d in %.2fs after: %s", role, attempt, delay, error)
                self._sleep(delay)
            record, text, error = self._attempt(messages, prompt, model, role, temperature)
            attempts.append(self._stored(record))
            if error is None:
                return LlmReply(
                    text=text,
                    model=model,
                    prompt_tokens=record.prompt_tokens,
                    completion_tokens=record.completion_tokens,
                    latency_s=time.monotonic() - started,
                    error=None,
                    attempts=tuple(attempts),
                )
            if not isinstance(error, LlmTransientError):
                break
        assert error is not None
        log.warning("%s request to %s failed after %d attempt(s): %s", role, model, len(attempts), error)
        return LlmReply(None, model, None, None, time.monotonic() - started, error.message, tuple(attempts))

    def _stored(self, record: LlmCallRecord) -> LlmCallRecord:
        """``record`` handed to ``on_record`` (a paid request is kept even if the run dies next)."""
        if self._on_record is None:
            return record
        try:
            stored_id = self._on_record(record)
        except Exception:  # keeping the record must not lose the reply; it is stored later instead
            log.warning("could not store an LLM call as it completed", exc_info=True)
            return record
        return replace(record, stored_id=stored_id)

    def _backoff(self, attempt: int, error: LlmError | None) -> float:
        server = _retry_after(error)
        if server is not None and 0 <= server <= MAX_RETRY_AFTER_S:
            return server
        base = self.settings.backoff_s * (2 ** (attempt - 1))
        return min(MAX_BACKOFF_S, base * (1 + self._rng.random()))

    def _attempt(
        self, messages: Sequence[Message], prompt: str, model: str, role: str, temperature: float | None
    ) -> tuple[LlmCallRecord, str | None, LlmError | None]:
        with self._slots:
            start = time.monotonic()
            with self._lock:
                self._requests += 1
                self._in_flight += 1
                in_flight = self._in_flight
            try:
                response = self._openai.chat.completions.create(
                    model=model,
                    messages=list(messages),
                    temperature=self.settings.temperature if temperature is None else temperature,
                    max_tokens=self.settings.max_tokens,
                )
                text, prompt_tokens, completion_tokens = _parse(response)
            except Exception as exc:  # mapped here: the boundary of the openai client
                try:
                    raise map_openai_error(exc, self.settings.timeout_s) from exc
                except LlmError as mapped:
                    error = self._overload_hint(mapped, exc, in_flight)
                latency = time.monotonic() - start
                self._count(None, None, len(prompt) // 4)
                with self._lock:
                    self._in_flight -= 1
                    self._failed_streak += 1
                    self._last_error = error.message
                record = LlmCallRecord(role, model, prompt, None, None, None, latency, error.message)
                return record, None, error
            with self._lock:
                self._in_flight -= 1
                self._failed_streak = 0
        latency = time.monotonic() - start
        self._count(prompt_tokens, completion_tokens, (len(prompt) + len(text)) // 4)
        record = LlmCallRecord(role, model, prompt, text, prompt_tokens, completion_tokens, latency, None)
        log.debug(
            "%s reply from %s in %.2fs (%s+%s tokens)", role, model, latency, prompt_tokens, completion_tokens
        )
        return record, text, None

    def _overload_hint(self, error: LlmError, exc: Exception, in_flight: int) -> LlmError:
        """A timeout or 429/503 while several requests were in flight: say what to change."""
        import openai

        overloaded = isinstance(exc, openai.APITimeoutError) or (
            isinstance(exc, openai.APIStatusError) and exc.status_code in (429, 503)
        )
        if not overloaded or self.concurrency <= 1:
            return error
        hint = (
            "lower the concurrency (--llm-concurrency 1 or EVOFORGE_LLM__MAX_CONCURRENCY=1) "
            f"or raise the timeout (--llm-timeout, now {self.settings.timeout_s:g}s)"
        )
        message = (
            f"{error.message} with {in_flight} of at most {self.concurrency} requests in flight "
            f"(a server that answers one request at a time makes the others wait): {hint}"
        )
        return type(error)(message, hint=hint)


def _parse(response: Any) -> tuple[str, int | None, int | None]:
    """Text and token counts of a chat completion; a reply without them is an ``LlmError``."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise LlmError(f"the reply has no choices: {_short(repr(response))}")
    text = getattr(choices[0].message, "content", None)
    if not isinstance(text, str):
        raise LlmError("the reply has no text content")
    usage = getattr(response, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
    completion_tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
    return text, prompt_tokens, completion_tokens


def make_openai_client(settings: LlmSettings) -> Any:
    """An ``openai.OpenAI`` for ``settings`` with its own retries off (we retry, count and log)."""
    try:
        import openai
    except ImportError as exc:
        raise ConfigError(
            "the LLM proposers need the 'openai' and 'langgraph' packages",
            hint="pip install 'evoforge[llm]'",
        ) from exc
    return openai.OpenAI(
        base_url=settings.base_url,
        # local servers (vLLM, Ollama, llama.cpp) accept any key; the client insists on one
        api_key=settings.api_key or "not-needed",
        timeout=settings.timeout_s,
        max_retries=0,
    )


def served_models(settings: LlmSettings) -> list[str]:
    """The model ids the endpoint lists (``GET /models``), to pick one when none is configured."""
    client = make_openai_client(settings)
    try:
        return [m.id for m in client.models.list()]
    except Exception as exc:
        raise map_openai_error(exc, settings.timeout_s) from exc
