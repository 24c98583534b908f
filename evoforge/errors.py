"""The one exception tree of evoforge.

Library code raises these; only ``evoforge/cli.py`` (and later the web layer) turns them into
messages and exit codes. Third-party errors are converted at the boundary with ``raise … from exc``.

    EvoforgeError                      base; ``hint`` says what the user can do about it
    ├── BadInputError                  unusable user input → CLI exit code 2
    │   ├── TargetError                a target file that cannot be loaded (syntax, no top, …)
    │   ├── CandidateError             a candidate file that cannot be read at all
    │   │   └── KernelCompileError     a candidate's GPU kernel that does not compile (nvcc, Triton)
    │   ├── LibertyError               a liberty file that does not parse / has no usable cells
    │   ├── ConfigError                invalid settings or flag combinations
    │   └── KnowledgeBaseError         a knowledge-base entry file that does not validate
    ├── ToolError                      an external program is missing or misbehaved
    │   ├── GpuRequiredError           running a GPU kernel on a machine without a GPU
    │   ├── ToolNotFoundError          the executable is not on PATH
    │   └── ToolTimeoutError           it ran past its time limit (the process group was killed)
    ├── VerifierError                  the verifier itself failed (never a rejection of a candidate)
    ├── StoreError                     the database could not be opened / migrated / written
    │   ├── NotFoundError              a job or candidate id that does not exist
    │   └── LeaseLostError             this worker no longer holds the job (another one took it over)
    ├── SearchError                    the search loop could not proceed (e.g. baseline rejected)
    ├── ExecutorError                  an evaluation task did not return (worker died past retries)
    └── LlmError                       a model endpoint failed (mapped from ``openai`` errors)
        ├── LlmTransientError          429, 5xx, timeout or connection failure: worth a retry
        └── LlmBudgetError             the job's token budget is spent
"""

from __future__ import annotations


class EvoforgeError(Exception):
    """Base of every error evoforge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class BadInputError(EvoforgeError):
    """Input the user gave cannot be used as it is."""

    exit_code = 2


class TargetError(BadInputError):
    """A target (design or problem) cannot be loaded."""


class CandidateError(BadInputError):
    """A candidate file cannot be read at all (a candidate that loads but fails is a rejection)."""


class KernelCompileError(CandidateError):
    """A candidate's GPU kernel source does not compile; the message holds the compiler's diagnostics."""


class LibertyError(BadInputError):
    """A liberty file is missing, does not parse, or has no cells a flow can use."""


class ConfigError(BadInputError):
    """Settings or command-line options that contradict each other or are out of range."""


class KnowledgeBaseError(BadInputError):
    """A knowledge-base entry (built-in TOML file or learned JSON line) that does not load or validate."""


class ToolError(EvoforgeError):
    """An external program is missing or did something unexpected."""


class GpuRequiredError(ToolError):
    """A GPU kernel was called on a machine without a GPU (it can be compiled here, not run)."""


class ToolNotFoundError(ToolError):
    """The executable of an external program is not installed."""


class ToolTimeoutError(ToolError):
    """An external program exceeded its time limit; its whole process group was killed."""


class VerifierError(EvoforgeError):
    """The verifier itself failed; the candidate is marked ``error``, not ``rejected``."""


class StoreError(EvoforgeError):
    """The database could not be opened, migrated or written."""


class NotFoundError(StoreError):
    """A job or candidate that does not exist."""

    exit_code = 2


class LeaseLostError(StoreError):
    """The job's lease went to another worker (this one was paused or cut off past it): stop writing."""


class SearchError(EvoforgeError):
    """The search loop cannot proceed."""


class ExecutorError(EvoforgeError):
    """An evaluation task did not return: its worker died more often than retried, or the cluster failed."""


class LlmError(EvoforgeError):
    """A call to a model endpoint failed (the ``openai`` client's errors are mapped to these)."""


class LlmTransientError(LlmError):
    """Rate limited (429), a server error (5xx), a timeout or a lost connection: retried with backoff."""


class LlmBudgetError(LlmError):
    """The job's token budget is spent; the LLM proposer stops proposing."""
