"""Liberty files: validation, don't-use filtering and a cached, uncompressed copy for the tools.

:func:`prepare_liberty` turns a user's liberty file (``.lib`` or ``.lib.gz``) — or, with no path,
the packaged illustrative ``evoforge/data/generic.lib`` — into a :class:`Liberty` whose ``path`` is a
plain-text file that yosys (``dfflibmap``, ``abc``, ``stat -liberty``) and OpenSTA both read. Cells
that no flow should map onto (clock buffers, delay cells, fillers, …; :data:`DONT_USE_PATTERNS`) are
removed from the text, because yosys 0.23 has no ``-dont_use`` option. The filter matches braces
(skipping strings and comments), so it works on real libraries whose cells nest groups deeply.
"""

from __future__ import annotations

import fnmatch
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from evoforge.errors import LibertyError

log = logging.getLogger(__name__)

#: cell-name globs that are never handed to a mapper (the DONT_USE idea of open-source ASIC flows)
DONT_USE_PATTERNS: tuple[str, ...] = (
    "*lpflow*",
    "*probe*",
    "*clkdly*",
    "*dlygate*",
    "*dlymetal*",
    "*sdf*",
    "*clkbuf*",
    "*clkinv*",
    "*conb*",
    "*decap*",
    "*fill*",
    "*tap*",
    "*diode*",
)
GENERIC_SOURCE = "generic (illustrative)"
_FILTER_VERSION = "1"  # bump when the filter changes, so cached copies are rebuilt

_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|/\*.*?\*/|//[^\n]*|[{};]', re.S)
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_GROUP_HEADER = re.compile(r"(\w+)\s*\(\s*\"?([^\")]*?)\"?\s*\)\s*$", re.S)
_FF_GROUP = re.compile(r"\bff\s*\(")
_FUNCTION = re.compile(r"\bfunction\s*:")


@dataclass(frozen=True)
class Liberty:
    """A liberty file ready for the tools."""

    source: str  # the user's path, or "generic (illustrative)"
    path: Path  # filtered, uncompressed copy
    library_name: str
    cell_count: int
    removed_cells: tuple[str, ...]
    illustrative: bool
    content_hash: str  # sha256 of the filtered text


@dataclass(frozen=True)
class _Group:
    kind: str
    name: str
    start: int  # where its header begins (after the previous statement)
    end: int  # one past its closing brace


def generic_liberty_path() -> Path:
    """The packaged illustrative library."""
    return Path(str(resources.files("evoforge") / "data" / "generic.lib"))


def is_dont_use(cell: str, patterns: tuple[str, ...] = DONT_USE_PATTERNS) -> bool:
    return any(fnmatch.fnmatchcase(cell, p) for p in patterns)


def _read(path: Path) -> str:
    if not path.is_file():
        raise LibertyError(
            f"liberty file {path} does not exist",
            hint="pass the path of a .lib or .lib.gz file, or omit it to use the generic library",
        )
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise LibertyError(
            f"liberty file {path} cannot be read: {exc}",
            hint="check that the file is a readable (optionally gzip-compressed) liberty file",
        ) from exc


def _library_groups(text: str, path: Path) -> tuple[str, list[_Group], int, int]:
    """The library's name, its direct child groups, and the span of its body."""
    depth = 0
    boundary = 0
    library_name = ""
    body_start = body_end = -1
    groups: list[_Group] = []
    open_group: tuple[str, str, int] | None = None
    for token in _TOKEN.finditer(text):
        tok = token.group(0)
        if tok == "{":
            if depth == 0:
                header = _COMMENT.sub(" ", text[boundary : token.start()]).strip()
                match = _GROUP_HEADER.search(header)
                if not match or match.group(1) != "library":
                    raise LibertyError(
                        f"{path} is not a liberty file: no library(...) group found",
                        hint="a liberty file starts with 'library (name) {'; check the path",
                    )
                library_name = match.group(2)
                body_start = token.end()
            elif depth == 1:
                header = _COMMENT.sub(" ", text[boundary : token.start()]).strip()
                match = _GROUP_HEADER.search(header)
                open_group = (match.group(1), match.group(2), boundary) if match else None
            depth += 1
            boundary = token.end()
        elif tok == "}":
            depth -= 1
            if depth < 0:
                raise LibertyError(f"{path} is not a valid liberty file: unbalanced '}}'")
            if depth == 1 and open_group is not None:
                groups.append(_Group(*open_group, end=token.end()))
                open_group = None
            if depth == 0:
                body_end = token.start()
                break
            boundary = token.end()
        elif tok == ";":
            boundary = token.end()
    if body_start < 0:
        raise LibertyError(
            f"{path} is not a liberty file: no library(...) group found",
            hint="a liberty file starts with 'library (name) {'; check the path",
        )
    if body_end < 0:
        raise LibertyError(
            f"{path} is not a valid liberty file: the library group is not closed (truncated file?)",
            hint="check that the file was copied or decompressed completely",
        )
    return library_name, groups, body_start, body_end


def filter_liberty(
    text: str, path: Path, patterns: tuple[str, ...] = DONT_USE_PATTERNS
) -> tuple[str, Liberty]:
    """The text without don't-use cells, and a Liberty describing it (``path``/``source`` unset)."""
    library_name, groups, _, _ = _library_groups(text, path)
    cells = [g for g in groups if g.kind == "cell"]
    if not cells:
        raise LibertyError(
            f"{path} has no cells: the library group holds no cell(...) groups",
            hint="use a standard-cell liberty file (it describes gates and flip-flops)",
        )
    removed = [g for g in cells if is_dont_use(g.name, patterns)]
    kept = [g for g in cells if not is_dont_use(g.name, patterns)]
    pieces: list[str] = []
    cursor = 0
    for group in removed:
        pieces.append(text[cursor : group.start])
        cursor = group.end
    pieces.append(text[cursor:])
    filtered = "".join(pieces)
    bodies = [text[g.start : g.end] for g in kept]
    if not any(_FF_GROUP.search(body) for body in bodies):
        raise LibertyError(
            f"{path} has no usable flip-flop: no cell with an ff(...) group "
            f"(after removing {len(removed)} don't-use cells)",
            hint="use a liberty file with D flip-flops, or omit it to use the generic library",
        )
    if not any(_FUNCTION.search(body) and not _FF_GROUP.search(body) for body in bodies):
        raise LibertyError(
            f"{path} has no usable combinational cell: no cell with an output function",
            hint="use a standard-cell liberty file with logic gates, or omit it to use the generic library",
        )
    info = Liberty(
        source="",
        path=path,
        library_name=library_name,
        cell_count=len(kept),
        removed_cells=tuple(g.name for g in removed),
        illustrative=False,
        content_hash=hashlib.sha256(filtered.encode()).hexdigest(),
    )
    return filtered, info


def cell_areas(path: Path, cells: Iterable[str]) -> dict[str, float]:
    """The ``area`` of each named cell in a liberty file; cells it does not define are left out."""
    path = Path(path)
    stat = path.stat()
    table = _area_table(str(path), stat.st_mtime_ns, stat.st_size)
    return {cell: table[cell] for cell in cells if cell in table}


_CELL_HEADER = re.compile(r'cell\s*\(\s*"?([^")\s]+)"?\s*\)\s*\{')
_AREA_ATTR = re.compile(r"\barea\s*:\s*([0-9.eE+-]+)")


@functools.lru_cache(maxsize=8)
def _area_table(path: str, mtime_ns: int, size: int) -> dict[str, float]:
    text = _read(Path(path))
    table: dict[str, float] = {}
    headers = list(_CELL_HEADER.finditer(text))
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        area = _AREA_ATTR.search(text, header.end(), following.start() if following else len(text))
        if area is not None:
            table[header.group(1)] = float(area.group(1))
    return table


def prepare_liberty(path: Path | None, cache_dir: Path) -> Liberty:
    """Validate and filter ``path`` (None = the generic library) into ``cache_dir/liberty/<hash>.lib``.

    The filtered copy and a small JSON sidecar are keyed by the hash of the original text, so a
    second call for the same file only reads and hashes it.
    """
    illustrative = path is None
    source_path = generic_liberty_path() if path is None else Path(path).expanduser()
    text = _read(source_path)
    raw_hash = hashlib.sha256((_FILTER_VERSION + "\0" + text).encode()).hexdigest()
    out = Path(cache_dir) / "liberty" / f"{raw_hash[:32]}.lib"
    sidecar = out.with_suffix(".json")
    info = _cached_info(out, sidecar)
    if info is None:
        filtered, info = filter_liberty(text, source_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(out, filtered)
        _atomic_write(
            sidecar,
            json.dumps(
                {
                    "library_name": info.library_name,
                    "cell_count": info.cell_count,
                    "removed_cells": list(info.removed_cells),
                    "content_hash": info.content_hash,
                }
            ),
        )
        log.debug(
            "liberty %s: %d cells kept, %d removed -> %s",
            source_path,
            info.cell_count,
            len(info.removed_cells),
            out,
        )
    return Liberty(
        source=GENERIC_SOURCE if illustrative else str(source_path),
        path=out,
        library_name=info.library_name,
        cell_count=info.cell_count,
        removed_cells=info.removed_cells,
        illustrative=illustrative,
        content_hash=info.content_hash,
    )


def _cached_info(out: Path, sidecar: Path) -> Liberty | None:
    if not (out.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if hashlib.sha256(out.read_bytes()).hexdigest() != meta["content_hash"]:
            return None
        return Liberty(
            source="",
            path=out,
            library_name=str(meta["library_name"]),
            cell_count=int(meta["cell_count"]),
            removed_cells=tuple(meta["removed_cells"]),
            illustrative=False,
            content_hash=str(meta["content_hash"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
