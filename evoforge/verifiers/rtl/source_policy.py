"""What RTL text may reach the tools, and the one elaborated text they all read.

Simulators and synthesis tools disagree on text outside the language proper: Yosys defines
``SYNTHESIS`` and honours ``// synopsys translate_off``, ``full_case``/``parallel_case`` (comment or
attribute) and ``unique``/``priority`` case; Icarus and Verilator do none of that; Yosys stops
reading a file at a NUL byte. So a design could simulate as one circuit and be measured as another.
And the preprocessor reads whatever file an ``include`` names. The policy, in order:

1. **Bytes.** No NUL or other control character except tab, LF, CR and form feed.
2. **One preprocessing**, by Icarus' ``ivlpp`` in the box (no network, only the include
   directories visible, :data:`~evoforge.tools.iverilog.PREPROCESS_LIMITS`), with *no* macro
   predefined — every ``ifdef SYNTHESIS``/``VERILATOR``/``__ICARUS__`` resolves the same way for
   every tool. Its line markers say which files were really included (however the directive was
   spelt or hidden): a candidate may include nothing; a target only Verilog files from its own
   directory, of which the box sees copies (never the directory itself). A macro bomb ends at the
   preprocessor's file-size or CPU limit.
3. **The policy on the preprocessed text**, with a lexer (strings, comments, escaped identifiers
   and attributes are told apart in one pass, so ``"/*"`` in a string hides nothing): only the
   directives every tool treats alike survive (``timescale``, ``default_nettype``, ``resetall``,
   ``celldefine``); ``translate_off``/``translate_on`` pragmas are refused in any spelling we know
   (the region would be simulated but not synthesised); candidates may not call file/OS tasks.
4. **The tool text**: comments and ``(* attributes *)`` are blanked and ``unique``/``unique0``/
   ``priority`` before ``case``/``if`` removed (all keep columns and newlines), so no hot comment,
   attribute or case qualifier can make Yosys build a different circuit than Icarus simulates —
   including spellings this module does not know.

Every tool of the RTL cascade reads :attr:`Elaborated.text` (the parse stage puts it in place).
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evoforge.errors import TargetError
from evoforge.tools.iverilog import PREPROCESS_LIMITS, Ivlpp

log = logging.getLogger(__name__)

Role = Literal["target", "candidate"]

#: system tasks a candidate may not name (prefixes: ``$fopen`` also covers ``$fopenw``/``$fopenr``).
#: The lint stage also checks the compiled design against an allowlist.
FORBIDDEN_SYSTEM_TASKS = (
    "fopen", "fclose", "fwrite", "fdisplay", "fmonitor", "fstrobe", "fscanf", "fgets", "fgetc", "fread",
    "fputc", "fflush", "fseek", "frewind", "rewind", "ftell", "feof", "ferror", "ungetc", "readmem",
    "writemem", "sreadmem", "system", "dump", "test$plusargs", "value$plusargs", "shm_",
)  # fmt: skip
#: directives that may survive preprocessing: every tool treats them alike
ALLOWED_DIRECTIVES = frozenset({"timescale", "default_nettype", "resetall", "celldefine", "endcelldefine"})
#: macros some tool predefines: a text that tests them is elaborated with all of them undefined
TOOL_MACROS = frozenset(
    {"SYNTHESIS", "YOSYS", "VERILATOR", "verilator", "verilator3", "__ICARUS__", "IVERILOG", "COCOTB_SIM",
     "FORMAL", "SIMULATION", "SYNOPSYS"}
)  # fmt: skip
_ALLOWED_CONTROL = frozenset("\t\n\r\f")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_MARKER = re.compile(r'^`line (\d+) "((?:[^"\\]|\\.)*)" ([012])$')
_VENDORS = r"(?:synopsys|synthesis|pragma|cadence|ambit|exemplar|xilinx|altera|mentor|synplify|lint_checking)"
_TRANSLATE = re.compile(
    rf"^\s*(?:{_VENDORS}\s+)?(?:translate_off|translate_on|synthesis_off|synthesis_on)\b"
    rf"|^\s*(?:{_VENDORS}\s+)?(?:rtl_synthesis|synthesis)\s+(?:off|on)\b",
    re.I,
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NON_SPACE = re.compile(r"\S*")
_SENSITIVITY_STAR = re.compile(r"\(\*\s*\)")
_SYSTEM_NAME = re.compile(r"[A-Za-z0-9_$]+")
_NUMBER = re.compile(r"[0-9_]*(?:\s*'[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ?_]+)?")
_BASED = re.compile(r"'[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ?_]+")
_QUALIFIERS = frozenset({"unique", "unique0", "priority"})
#: what a target's directory may provide to its includes (copied into the box, nothing else)
INCLUDE_SUFFIXES = frozenset({".v", ".vh", ".sv", ".svh", ".h", ".inc", ".vinc", ".verilog"})
INCLUDE_MAX_FILES = 500
INCLUDE_MAX_BYTES = 16 << 20
INCLUDE_MAX_DEPTH = 3
#: the largest elaborated text: parsers run in the verifier's process (time grows with size)
MAX_ELABORATED_BYTES = 1 << 20
#: how much a candidate's macros may add to its text (a bomb grows by orders of magnitude)
MAX_MACRO_GROWTH = 2
MACRO_GROWTH_ALLOWANCE_BYTES = 64 << 10
_QUALIFIED = frozenset({"case", "casez", "casex", "if"})


@dataclass(frozen=True)
class Token:
    kind: Literal["comment", "string", "attribute", "directive", "system", "ident", "escaped"]
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Elaborated:
    """The outcome of the policy: the tool text, or why the source is refused."""

    text: str  # what every tool reads ("" when refused)
    preprocessed: str  # the preprocessor's output, comments kept: a target with includes is stored as this
    includes: tuple[str, ...] = ()  # files the preprocessor included (targets only)
    refusals: tuple[str, ...] = ()  # why the source is refused, one reason per entry
    notes: tuple[str, ...] = ()  # worth telling the user (a tool macro that was tested, say)

    @property
    def ok(self) -> bool:
        return not self.refusals


# ---------------------------------------------------------------------------------------------
# Lexing


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _scan_string(text: str, i: int) -> int:
    """The end of the string literal starting at ``text[i] == '"'`` (exclusive)."""
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"' or c == "\n":
            return j + 1
        j += 1
    return len(text)


def tokens(text: str) -> list[Token]:
    """Comments, strings, attributes, directives, system names and identifiers, in one left-to-right pass."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        two = text[i : i + 2]
        if two == "//":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(Token("comment", i, end, text[i:end]))
            i = end
        elif two == "/*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(Token("comment", i, end, text[i:end]))
            i = end
        elif c == '"':
            end = _scan_string(text, i)
            out.append(Token("string", i, end, text[i:end]))
            i = end
        elif c == "\\":
            match = _NON_SPACE.match(text, i + 1)
            end = match.end() if match else i + 1
            out.append(Token("escaped", i, end, text[i:end]))
            i = end
        elif two == "(*" and not _SENSITIVITY_STAR.match(text, i):
            j = i + 2
            while j < n and text[j : j + 2] != "*)":
                j = _scan_string(text, j) if text[j] == '"' else j + 1
            end = min(n, j + 2)
            out.append(Token("attribute", i, end, text[i:end]))
            i = end
        elif c == "`":
            match = _IDENT.match(text, i + 1)
            end = match.end() if match else i + 2  # `` `` ``, `` `" ``, `` `\ `` …
            out.append(Token("directive", i, end, text[i:end]))
            i = end
        elif c == "$":
            match = _SYSTEM_NAME.match(text, i + 1)
            end = match.end() if match else i + 1
            out.append(Token("system", i, end, text[i:end]))
            i = max(end, i + 1)
        elif c.isalpha() or c == "_":
            match = _IDENT.match(text, i)
            assert match is not None
            out.append(Token("ident", i, match.end(), match.group(0)))
            i = match.end()
        elif c.isdigit():  # a number: skip it whole, so 8'hff's letters are not identifiers
            match = _NUMBER.match(text, i)
            i = match.end() if match and match.end() > i else i + 1
        elif c == "'":
            match = _BASED.match(text, i)
            i = match.end() if match else i + 1
        else:
            i += 1
    return out


def _blank(chars: list[str], start: int, end: int) -> None:
    for k in range(start, end):
        if chars[k] not in "\n\r":
            chars[k] = " "


# ---------------------------------------------------------------------------------------------
# The checks


def control_characters(text: str, origin: str = "") -> list[str]:
    """Refusals for NUL and other control characters (tab, LF, CR and form feed are fine)."""
    found: dict[int, str] = {}
    for match in _CONTROL.finditer(text):
        char = match.group(0)
        line = _line_of(text, match.start())
        if char in _ALLOWED_CONTROL or line in found:
            continue
        where = f"{origin} line {line}".strip()
        found[line] = (
            f"{where}: control character {char!r} (tools disagree on it: Yosys stops reading at a NUL); "
            "only tab, newline, carriage return and form feed are allowed"
        )
        if len(found) >= 3:
            break
    return list(found.values())


def _system_refusals(toks: Sequence[Token], text: str) -> list[str]:
    found = []
    for tok in toks:
        if tok.kind == "system" and tok.text[1:].startswith(FORBIDDEN_SYSTEM_TASKS):
            found.append(f"line {_line_of(text, tok.start)}: {tok.text} (file/OS access is not allowed)")
    return found


def policy_violations(source: str) -> list[str]:
    """What a candidate's text does that a rewrite must not: file/OS system tasks, includes, ``line``,
    token pasting. Token-based (no comment or string hides anything); the elaboration checks the rest."""
    toks = tokens(source)
    found = _system_refusals(toks, source)
    for tok in toks:
        if tok.kind != "directive":
            continue
        name = tok.text[1:]
        if name in ("include", "line") or name.startswith("`"):
            what = f"`{name}" if name in ("include", "line") else "`` (macro token pasting)"
            found.append(f"line {_line_of(source, tok.start)}: {what} (candidates must be self-contained)")
    return found


def _tool_macro_notes(source: str) -> list[str]:
    toks = [t for t in tokens(source) if t.kind in ("directive", "ident")]
    notes = []
    for tok, nxt in itertools.pairwise(toks):
        if (
            tok.kind == "directive"
            and tok.text[1:] in ("ifdef", "ifndef", "elsif")
            and nxt.text in TOOL_MACROS
        ):
            notes.append(
                f"line {_line_of(source, tok.start)}: {tok.text} {nxt.text} is elaborated with {nxt.text} "
                "undefined, for simulation and synthesis alike"
            )
    return notes


def _copy_includes(sources: Sequence[Path], dest: Path) -> list[Path]:
    """Copy the Verilog files of each directory in ``sources`` (a few levels deep) under ``dest``.

    The box sees these copies only: an include can reach nothing else of the user's directory.
    Raises ``ValueError`` (with the reason) when a directory holds too much to copy.
    """
    copies, count, size = [], 0, 0
    for n, src in enumerate(sources):
        root = dest / f"dir{n}"
        root.mkdir(parents=True, exist_ok=True)
        copies.append(root)
        base = Path(src).resolve()
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if len(rel.parts) > INCLUDE_MAX_DEPTH or any(p.startswith(".") for p in rel.parts):
                continue
            if path.suffix.lower() not in INCLUDE_SUFFIXES or path.is_symlink() or not path.is_file():
                continue
            # nothing that leads out of the directory: a linked parent, a file with other hard links
            if base not in path.resolve().parents or path.stat().st_nlink > 1:
                continue
            count += 1
            size += path.stat().st_size
            if count > INCLUDE_MAX_FILES or size > INCLUDE_MAX_BYTES:
                raise ValueError(
                    f"{base} holds too many Verilog files to offer to `include (more than "
                    f"{INCLUDE_MAX_FILES} files or {INCLUDE_MAX_BYTES >> 20} MiB): move the design and "
                    "its include files into a directory of their own"
                )
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / rel)
    return copies


def _markers(
    raw: str, copies: Sequence[Path], originals: Sequence[Path], workdir: Path
) -> tuple[str, list[str], list[str]]:
    """(text without `line markers, included files, files included from outside the allowed dirs).

    Included files are named as the user knows them (in the original directory, not the copy).
    """
    lines, included, outside = [], [], []
    for line in raw.splitlines(keepends=True):
        match = _MARKER.match(line.rstrip("\r\n"))
        if match is None:
            lines.append(line)
            continue
        if match.group(3) == "1":
            name = match.group(2)
            real = (workdir / name).resolve()
            home = next(((c, o) for c, o in zip(copies, originals, strict=True) if c in real.parents), None)
            if home is None:
                included.append(name)
                outside.append(name)
            else:
                included.append(str(Path(home[1]) / real.relative_to(home[0])))
    return "".join(lines), included, outside


def _text_policy(pre: str, role: Role) -> tuple[str, list[str]]:
    """(the tool text, refusals) for preprocessed ``pre`` (see the module docstring, steps 3 and 4)."""
    toks = tokens(pre)
    refusals = _system_refusals(toks, pre) if role == "candidate" else []
    chars = list(pre)
    pending: Token | None = None
    for tok in toks:
        line = _line_of(pre, tok.start)
        if tok.kind == "directive" and tok.text[1:] not in ALLOWED_DIRECTIVES:
            refusals.append(
                f"line {line}: {tok.text} is not supported (tools treat it differently; "
                f"allowed directives after preprocessing: {', '.join(sorted(ALLOWED_DIRECTIVES))})"
            )
        elif tok.kind == "comment":
            body = tok.text[2:-2] if tok.text.startswith("/*") else tok.text[2:]
            if _TRANSLATE.search(body):
                refusals.append(
                    f"line {line}: the pragma {tok.text.strip()[:60]!r} would hide code from synthesis "
                    "that simulation runs; remove it (and the code between, if it is not part of the "
                    "design)"
                )
            _blank(chars, tok.start, tok.end)
            continue  # a comment between a qualifier and its case keeps the qualifier pending
        elif tok.kind == "attribute":
            _blank(chars, tok.start, tok.end)
            continue
        between = "".join(chars[pending.end : tok.start]) if pending is not None else "x"
        if tok.kind == "ident" and tok.text in _QUALIFIED and pending is not None and not between.strip():
            _blank(chars, pending.start, pending.end)
        pending = tok if tok.kind == "ident" and tok.text in _QUALIFIERS else None
    return "".join(chars), refusals


# ---------------------------------------------------------------------------------------------
# Elaboration


def elaborate(
    text: str, *, role: Role, workdir: Path, include_dirs: Sequence[Path] = (), timeout: float = 30.0
) -> Elaborated:
    """Apply the policy to ``text`` (see the module docstring); ``workdir`` is a fresh scratch dir.

    ``include_dirs`` (targets only) are the directories includes may come from. Raises
    ``ToolNotFoundError`` when Icarus' preprocessor is missing (the verifier's fault, not the text's).
    """
    refusals = control_characters(text)
    if role == "candidate":
        refusals += [r for r in policy_violations(text) if "`line" in r]
    elif any(t.kind == "directive" and t.text == "`line" for t in tokens(text)):
        refusals.append("`line directives are not supported (they would fake the preprocessor's markers)")
    if refusals:
        return Elaborated("", "", refusals=tuple(refusals))
    dirs = tuple(Path(d).resolve() for d in include_dirs) if role == "target" else ()
    copies: list[Path] = []
    if dirs and "include" in text:  # no directive without the word (else nothing to copy)
        try:
            copies = _copy_includes(dirs, workdir / "include")
        except ValueError as exc:
            return Elaborated("", "", refusals=(str(exc),))
    run = Ivlpp().preprocess_marked(text, cwd=workdir, include_dirs=copies, timeout=timeout)
    if not run.ok:
        failure = _preprocessor_failure(run.log, run.limit_exceeded, dirs, run.returncode)
        return Elaborated("", "", refusals=(failure,))
    pre, included, outside = _markers(run.text, copies, dirs, workdir)
    size = len(pre.encode())
    if size > MAX_ELABORATED_BYTES:
        return Elaborated("", "", refusals=(_too_large(size, f"more than {MAX_ELABORATED_BYTES >> 10} KiB"),))
    growth = MAX_MACRO_GROWTH * len(text.encode()) + MACRO_GROWTH_ALLOWANCE_BYTES
    if role == "candidate" and size > growth:
        return Elaborated("", "", refusals=(_too_large(size, f"its macros grow it past {growth >> 10} KiB"),))
    if included and role == "candidate":
        refusals.append(f"includes {', '.join(included)}: candidates must be self-contained (no `include)")
    elif outside:
        where = ", ".join(str(d) for d in dirs) or "nowhere"
        refusals.append(
            f"includes {', '.join(outside)}, outside the design's own directory ({where}); "
            "includes are resolved only there"
        )
    if refusals:  # never hand back what an include refused here brought in
        return Elaborated("", "", tuple(included), tuple(refusals))
    refusals += control_characters(pre, "after preprocessing,")
    tool_text, more = _text_policy(pre, role)
    refusals += more
    if refusals:
        return Elaborated("", pre, tuple(included), tuple(dict.fromkeys(refusals)))
    return Elaborated(tool_text, pre, tuple(included), notes=tuple(_tool_macro_notes(text)))


def _too_large(size: int, why: str) -> str:
    return (
        f"the preprocessed design is {size >> 10} KiB: {why} (a macro that expands without bound?); "
        "evoforge handles designs up to that size"
    )


def _preprocessor_failure(
    output: str, limit: str | None, dirs: Sequence[Path], returncode: int | None
) -> str:
    if limit is not None:
        return (
            f"the Verilog preprocessor was stopped at {limit} (limits: {PREPROCESS_LIMITS.describe()}): "
            "a macro that expands without bound?"
        )
    lines = [ln.replace("ivlpp_in.v:", "line ").strip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("---")]
    crashed = returncode is not None and (returncode < 0 or returncode > 128)
    silent = (
        f"it crashed (exit status {returncode}) on this text" if crashed else "it failed without a message"
    )
    first = lines[0] if lines else silent
    if "not found" in first and "Include file" in first:
        where = ", ".join(str(d) for d in dirs)
        first += (
            f" (includes are resolved only among the Verilog files of the design's own directory {where})"
            if dirs
            else " (candidates may not include files)"
        )
    return f"the Verilog preprocessor failed: {first[:300]}"


def elaborate_target(text: str, *, workdir: Path, include_dirs: Sequence[Path], origin: str) -> Elaborated:
    """The policy for a target: a refusal is a ``TargetError`` (bad input, exit code 2)."""
    result = elaborate(text, role="target", workdir=workdir, include_dirs=include_dirs)
    if not result.ok:
        raise TargetError(
            f"{origin}: " + "; ".join(result.refusals[:5]),
            hint="simulation and synthesis must see one design: see docs/security.md (RTL source policy)",
        )
    for note in result.notes:
        log.warning("%s: %s", origin, note)
    return result


def elaborate_original(source: str, scratch_root: Path) -> str:
    """The tool text of a loaded target's source (already include-free): what the stages compare with."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="elaborate-original-", dir=scratch_root))
    try:
        return elaborate_target(source, workdir=workdir, include_dirs=(), origin="the original design").text
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
