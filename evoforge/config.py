"""The one validated settings tree of evoforge.

Built explicitly (``Settings()`` in the CLI or a test), never at import time. Environment variables
use the ``EVOFORGE_`` prefix with ``__`` between levels (``EVOFORGE_RTL__SIM_CYCLES=5000``); the
standard ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` are read too. ``EVOFORGE_DB`` is the database URL,
``EVOFORGE_EXECUTOR`` (``local`` | ``ray``) and ``EVOFORGE_RAY_ADDRESS`` say where candidates are evaluated.
No other module reads ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from evoforge.domain import Assurance

#: kernel backends a candidate can be written for
KERNEL_BACKENDS = ("c", "triton", "cuda")


def physical_memory_bytes() -> int:
    """This machine's memory (16 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("evoforge", appauthor=False))


class RtlSettings(BaseModel):
    """Knobs of the RTL cascade."""

    sim_cycles: int = Field(4000, ge=100, description="cycles per seed of the differential simulation")
    sim_seeds: int = Field(2, ge=1, le=16, description="random seeds of the differential simulation")
    probe_cycles: int = Field(600, ge=50, description="cycles of the fixed fingerprint probe")
    reset_cycles: int = Field(3, ge=1)
    equivalence_timeout_s: float = Field(30.0, gt=0, description="limit per formal attempt")
    equivalence_budget_s: float = Field(
        60.0, gt=0, description="limit of the whole equivalence stage (all attempts together)"
    )
    bmc_depth: int = Field(20, ge=1, description="cycles of the bounded check after reset")
    induction_depth: int = Field(8, ge=1)
    tool_timeout_s: float = Field(300.0, gt=0)
    sim_timeout_s: float = Field(300.0, gt=0, description="wall-clock limit of one simulation run")
    deep_max_cycles: int = Field(
        1 << 22, ge=0, description="most cycles per seed of the deep run (Verilator); 0 = no deep run"
    )
    deep_budget_s: float = Field(
        30.0, gt=0, description="wall-clock limit of the deep run's cycles (all seeds)"
    )
    clock_period_ns: float = Field(10.0, gt=0, description="timing constraint for OpenSTA")
    liberty: Path | None = Field(None, description="liberty file (.lib or .lib.gz); None = generic")
    min_assurance: str = Field("simulated", description="sampled | simulated | bounded(N) | proven")

    @field_validator("min_assurance")
    @classmethod
    def _valid_assurance(cls, value: str) -> str:
        Assurance.parse(value)
        return value

    @property
    def minimum_assurance(self) -> Assurance:
        return Assurance.parse(self.min_assurance)


class KernelSettings(BaseModel):
    """Knobs of the kernel cascade."""

    trials: int = Field(3, ge=3, le=20, description="correctness trials, each on fresh unpredictable inputs")
    rtol: float | None = Field(None, gt=0, description="relative tolerance; None = by output dtype")
    atol_scale: float | None = Field(
        None, gt=0, description="absolute tolerance as a fraction of the output's RMS; None = by dtype"
    )
    require_custom_kernel: bool = Field(
        True, description="reject torch compute outside the candidate's own kernel launches"
    )
    gpu_arch: int = Field(90, ge=50, description="GPU architecture of the ahead-of-time compile (sm_XX)")
    cpu_threads: int | None = Field(
        None, ge=1, description="CPUs (and threads) both sides get in every stage; None = all cores here"
    )
    benchmark_repeats: int = Field(
        30,
        ge=5,
        description="timed rounds (median reported): this many if the budget allows, at least 15; up to "
        "3x as many while the speed-up's confidence interval is wider than max_interval",
    )
    benchmark_budget_s: float = Field(20.0, gt=0, description="time the benchmark may spend timing")
    benchmark_keep_awake: bool = Field(
        True,
        description="keep the benchmark's CPUs running (lowest-priority spinners) between timed calls, "
        "so that no call is timed after an idle gap; stopped during each call",
    )
    implausible_speedup: float = Field(
        10.0, gt=1, description="speed-ups beyond this are re-timed in a fresh process, then flagged"
    )
    max_interval: float = Field(
        0.5,
        gt=0,
        description="the widest 95% confidence interval of the median speed-up, as a fraction of it, "
        "still reported; wider is unmeasured",
    )
    stage_timeout_s: float = Field(180.0, gt=0, description="wall-clock limit of one stage's child process")
    compile_timeout_s: float = Field(300.0, gt=0, description="limit of a C, nvcc or Triton compile")
    require_gpu: bool = Field(
        False, description="time on a GPU: the job waits for a worker (or a Ray node) that has one"
    )
    target_timeout_s: float = Field(
        300.0, gt=0, description="wall-clock limit of checking the problem (size estimate, reference run)"
    )
    memory_limit_gib: float | None = Field(
        None, gt=0, description="address-space cap of each kernel child; None = min(16 GiB, 3/4 of RAM)"
    )
    scale: str = Field(
        "auto",
        description="problem sizes: 'auto' (shrink when the problem does not fit this machine; never on a "
        "GPU machine), 'none' (as written), or a factor 0 < F <= 1 applied to each size constant",
    )
    sizes: dict[str, int] | None = Field(
        None, description="explicit values of the problem's size constants (a job pins what it ran at)"
    )
    call_budget_ms: float = Field(
        100.0, gt=0, description="a reference call estimated slower than this does not fit (CPU)"
    )
    backends: list[str] = Field(
        default_factory=list,
        description="kernel backends to propose (c, triton, cuda); empty = what this machine can time",
    )
    slow_factor: float = Field(
        20.0, gt=1, description="a candidate slower than this many times the reference is stopped"
    )

    @field_validator("scale")
    @classmethod
    def _valid_scale(cls, value: str) -> str:
        text = value.strip().lower()
        if text in ("auto", "none"):
            return text
        try:
            factor = float(text)
        except ValueError:
            raise ValueError(f"scale {value!r}: use auto, none or a factor 0 < F <= 1") from None
        if not 0 < factor <= 1:
            raise ValueError(f"scale {value!r}: the factor must be in (0, 1]")
        return repr(factor)

    @field_validator("backends")
    @classmethod
    def _valid_backends(cls, value: list[str]) -> list[str]:
        bad = [b for b in value if b not in KERNEL_BACKENDS]
        if bad:
            raise ValueError(
                f"unknown kernel backend(s) {', '.join(bad)}; valid: {', '.join(KERNEL_BACKENDS)}"
            )
        return list(dict.fromkeys(value))

    @property
    def memory_limit_bytes(self) -> int:
        """The cap of each kernel child: the setting, or min(16 GiB, 3/4 of this machine's memory)."""
        if self.memory_limit_gib is not None:
            return int(self.memory_limit_gib * (1 << 30))
        return min(16 << 30, physical_memory_bytes() * 3 // 4)


class SearchSettings(BaseModel):
    budget: int = Field(20, ge=1, description="candidates to evaluate")
    seed: int = 0
    population_size: int = Field(16, ge=2)
    workers: int = Field(2, ge=1, description="parallel evaluations (local process pool)")
    proposer: str | None = Field(
        None,
        pattern=r"^(offline|llm|mixed)$",
        description="None: mixed when an LLM endpoint is configured, offline otherwise",
    )


class LlmSettings(BaseModel):
    """The model endpoint (any OpenAI-compatible server) and how the agents use it.

    ``base_url`` / ``api_key`` / ``model`` fall back to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` /
    ``EVOFORGE_MODEL`` (see ``Settings.llm_endpoint``).
    """

    base_url: str | None = None
    api_key: str | None = Field(None, repr=False)
    model: str | None = None
    planner_model: str | None = Field(None, description="model of the planner; default: model")
    timeout_s: float = Field(120.0, gt=0, description="limit of one request")
    max_retries: int = Field(3, ge=0, le=10, description="retries on 429, 5xx, timeouts, lost connections")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles each retry, with jitter")
    max_concurrency: int | None = Field(
        None, ge=1, description="requests in flight at once; default 1 for a local endpoint, else 4"
    )
    token_budget: int | None = Field(None, ge=1, description="tokens per job; None = unlimited")
    call_budget: int | None = Field(
        None, ge=1, description="requests per job; default 4 per proposal of the search budget"
    )
    max_repairs: int = Field(2, ge=0, le=10, description="coder repairs after a failed quick check")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(4096, ge=64, description="completion tokens per request")


class WebSettings(BaseModel):
    """The web service and its workers (the write token is ``Settings.web_token``: EVOFORGE_WEB_TOKEN)."""

    max_upload_bytes: int = Field(1_000_000, ge=1024, description="largest design a submission may carry")
    liberties: dict[str, Path] = Field(
        default_factory=dict, description="named liberty files the submit form offers besides 'generic'"
    )
    max_budget: int = Field(200, ge=1, description="largest budget a web submission may ask for")
    heartbeat_s: float = Field(5.0, gt=0, description="how often a running job stamps its heartbeat")
    stale_after_s: float = Field(60.0, gt=0, description="a running job silent this long is requeued")
    poll_s: float = Field(1.0, gt=0, description="how often an idle worker looks for queued jobs")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names served besides the bound address (a DNS name, a proxy's name)",
    )
    max_form_parts: int = Field(16, ge=8, le=64, description="fields + files a submitted form may have")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EVOFORGE_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    db: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in the data directory")
    executor: str = Field(
        "local", pattern=r"^(local|ray)$", description="where candidates are evaluated (EVOFORGE_EXECUTOR)"
    )
    ray_address: str | None = Field(
        None, description="Ray cluster (ray://HOST:10001, auto, HOST:6379); None: start a local one"
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    scratch_dir: Path | None = Field(
        None,
        description="where runs keep scratch (removed when they end); None = <system temp>/evoforge-<uid>",
    )
    rtl: RtlSettings = Field(default_factory=lambda: RtlSettings())
    kernel: KernelSettings = Field(default_factory=lambda: KernelSettings())
    search: SearchSettings = Field(default_factory=lambda: SearchSettings())
    llm: LlmSettings = Field(default_factory=lambda: LlmSettings())
    web: WebSettings = Field(default_factory=lambda: WebSettings())
    web_token: str | None = Field(None, repr=False, description="required for writes off loopback")
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    openai_api_key: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"), repr=False
    )
    model: str | None = Field(None, validation_alias=AliasChoices("EVOFORGE_MODEL", "model"))

    @field_validator("web_token")
    @classmethod
    def _no_blank_token(cls, value: str | None) -> str | None:
        """Surrounding whitespace is a copy-paste accident; a blank token is no token at all."""
        if value is None:
            return None
        return value.strip() or None

    def llm_endpoint(self) -> LlmSettings:
        """``llm`` with the standard variables filled in where its own keys are unset."""
        return self.llm.model_copy(
            update={
                "base_url": self.llm.base_url or self.openai_base_url,
                "api_key": self.llm.api_key or self.openai_api_key,
                "model": self.llm.model or self.model,
            }
        )

    @property
    def database_url(self) -> str:
        """``db``, or SQLite in the data directory (created here: only the default is made for you)."""
        if self.db:
            return self.db
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'evoforge.db'}"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def work_dir(self) -> Path:
        """This process's scratch directory (removed when the process ends; see ``evoforge.scratch``)."""
        from evoforge.scratch import run_dir

        return run_dir(self.scratch_dir)
