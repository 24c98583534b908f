"""The candidate in a coder's reply: the last fenced code block in a language of the target's domain.

DESIGN.md: "The coder's candidate is the last fenced code block of its reply (```verilog, ```python,
```cuda, ```c)". An unlabelled block counts too; a block labelled with another language (```text,
```diff) does not. A reply without such a block yields ``None`` — recorded, never an exception.
"""

from __future__ import annotations

import re

from evoforge.domain import TargetKind

#: fence labels accepted per domain (lower case; the empty label is always accepted)
LANGUAGES: dict[TargetKind, frozenset[str]] = {
    TargetKind.RTL: frozenset({"verilog", "systemverilog", "sv", "v"}),
    TargetKind.KERNEL: frozenset({"python", "py", "cuda", "cu", "c", "cpp", "c++", "triton"}),
}

# an opening fence (``` or longer) with an optional label, the body, a closing fence of the same length
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,})[ \t]*(?P<label>[\w+#.-]*)[^\n]*\n(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    re.M | re.S,
)


def code_blocks(reply: str) -> list[tuple[str, str]]:
    """Every closed fenced block of ``reply`` as (label in lower case, body), in order."""
    return [(m.group("label").lower(), m.group("body")) for m in _FENCE.finditer(reply or "")]


def extract_code(reply: str | None, kind: TargetKind = TargetKind.RTL) -> str | None:
    """The last fenced block of ``reply`` labelled with a language of ``kind`` (or unlabelled)."""
    if not reply:
        return None
    accepted = LANGUAGES[kind]
    for label, body in reversed(code_blocks(reply)):
        if (label == "" or label in accepted) and body.strip():
            return body.rstrip() + "\n"
    return None
