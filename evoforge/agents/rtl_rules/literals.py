"""Verilog integer literals: read one as written (value, size, base, signedness) and write a new value
in the same style, so a patched constant reads like the user's own."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BASED = re.compile(r"^\s*(\d[\d_]*)?\s*'\s*([sS]?)([bBoOdDhH])\s*([0-9a-fA-F_]+)\s*$")
_DECIMAL = re.compile(r"^\s*(\d[\d_]*)\s*$")
_RADIX = {"b": 2, "o": 8, "d": 10, "h": 16}


@dataclass(frozen=True)
class Literal:
    value: int
    size: int | None  # None: unsized
    base: str  # "b", "o", "d", "h", or "" for a plain decimal
    signed: bool
    upper: bool  # hex digits / base letter written in upper case

    def render(self, value: int) -> str:
        """``value`` written like this literal (None when it does not fit its size)."""
        if not self.base:
            return str(value)
        digits = {"b": f"{value:b}", "o": f"{value:o}", "d": f"{value:d}", "h": f"{value:x}"}[self.base]
        if self.base == "b" and self.size:
            digits = digits.rjust(self.size, "0")
        if self.upper:
            digits = digits.upper()
        size = str(self.size) if self.size is not None else ""
        base = self.base.upper() if self.upper else self.base
        return f"{size}'{'s' if self.signed else ''}{base}{digits}"

    def fits(self, value: int) -> bool:
        return value >= 0 and (self.size is None or value < (1 << self.size))


def parse_literal(text: str) -> Literal | None:
    """The literal ``text`` (no x/z digits), or None when it is something else."""
    match = _DECIMAL.match(text)
    if match:
        return Literal(int(match[1].replace("_", "")), None, "", False, False)
    match = _BASED.match(text)
    if not match:
        return None
    size = int(match[1].replace("_", "")) if match[1] else None
    base = match[3].lower()
    digits = match[4].replace("_", "")
    try:
        value = int(digits, _RADIX[base])
    except ValueError:
        return None
    if size is not None:
        value &= (1 << size) - 1
    upper = match[3].isupper() or (any(c in "ABCDEF" for c in digits))
    return Literal(value, size, base, bool(match[2]), upper)
