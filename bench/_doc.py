"""docs/benchmarks.md: each benchmark owns one ``## `` section and replaces only that section."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section names the command that produced it.\n"


def write_section(section: str, text: str, doc: Path = DOC) -> None:
    """Replace the section whose heading line is ``section`` with ``text`` (append it if absent)."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    current = doc.read_text() if doc.exists() else HEADER
    if section in current:
        start = current.index(section)
        end = current.find("\n## ", start + len(section))
        current = current[:start] + text + ("" if end < 0 else current[end + 1 :])
    else:
        current = current.rstrip() + "\n\n" + text
    doc.write_text(current)
