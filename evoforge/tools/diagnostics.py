"""Compiler and linter diagnostics: one shared, typed record and the parsers that produce it.

Icarus prints ``file:line: message`` (with ``error:``/``warning:`` prefixes on most messages, none on
syntax errors); Verilator prints ``%Error: file:line:col: message`` and
``%Warning-CODE: file:line:col: message``. Both become :class:`Diagnostic`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    file: str  # as the tool printed it ("" when the message names no file)
    line: int | None
    severity: Severity
    message: str
    code: str = ""  # Verilator's warning code (WIDTH, UNDRIVEN, …); "" for Icarus

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line is not None else ""
        code = f"[{self.code}] " if self.code else ""
        return f"{where}{self.severity}: {code}{self.message}"


_ICARUS = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):\s*(?P<rest>.*)$")
_ICARUS_SEVERITY = re.compile(r"^(?P<sev>error|warning|sorry)\s*:\s*(?P<msg>.*)$", re.I)


def parse_icarus(text: str) -> tuple[Diagnostic, ...]:
    """Diagnostics in Icarus output; continuation lines (``file:line:   : …``) join the previous one."""
    found: list[Diagnostic] = []
    for raw in text.splitlines():
        match = _ICARUS.match(raw.strip())
        if not match:
            continue
        rest = match.group("rest").strip()
        if rest.startswith(":") and found:
            prev = found[-1]
            found[-1] = Diagnostic(prev.file, prev.line, prev.severity, f"{prev.message} {rest[1:].strip()}")
            continue
        sev = _ICARUS_SEVERITY.match(rest)
        if sev:
            severity: Severity = "warning" if sev.group("sev").lower() == "warning" else "error"
            message = sev.group("msg").strip()
            if sev.group("sev").lower() == "sorry":
                message = f"sorry: {message}"
        else:  # "syntax error", "Include file x not found", … are errors without a prefix
            severity, message = "error", rest
        found.append(Diagnostic(match.group("file"), int(match.group("line")), severity, message))
    return tuple(found)


_VERILATOR = re.compile(
    r"^%(?P<sev>Error|Warning)(?:-(?P<code>[A-Z0-9_]+))?:\s*"
    r"(?:(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)?\s*)?(?P<msg>.*)$"
)


def parse_verilator(text: str) -> tuple[Diagnostic, ...]:
    """Diagnostics in Verilator output (summary lines such as "Exiting due to …" are skipped)."""
    found: list[Diagnostic] = []
    for raw in text.splitlines():
        match = _VERILATOR.match(raw.strip())
        if not match:
            continue
        message = match.group("msg").strip()
        if match.group("file") is None and re.match(r"(Exiting due to|Cannot continue)", message):
            continue
        severity: Severity = "error" if match.group("sev") == "Error" else "warning"
        code = match.group("code") or ""
        if code in ("FATAL",):
            severity = "error"
        found.append(
            Diagnostic(
                file=match.group("file") or "",
                line=int(match.group("line")) if match.group("line") else None,
                severity=severity,
                message=message,
                code=code,
            )
        )
    return tuple(found)
