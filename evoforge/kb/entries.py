"""The knowledge base's entry types and the loader of the built-in rule files.

A built-in entry is one TOML file under ``evoforge/kb/rules/<domain>/<id>.toml``: what the rule does,
its goals (``area`` / ``timing`` / ``power``), when it applies, a before/after example, the known
trade-off and, if a proposer implements it, the rule id (``rule = "resource_sharing"``). A learned
entry is a rewrite that won a job (see :mod:`evoforge.kb.learned`). Both are validated with pydantic;
a file that does not validate raises :class:`~evoforge.errors.KnowledgeBaseError` naming the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evoforge.errors import KnowledgeBaseError

Domain = Literal["rtl", "kernel"]
Goal = Literal["area", "timing", "power"]
#: classes of synthesised cells a rule tends to remove (matched against the largest cells of a design)
CellClass = Literal["arith", "mux", "logic", "register", "compare"]

BUILTIN_DIR = Path(__file__).resolve().parent / "rules"
_ID = r"^[a-z0-9][a-z0-9_.\-]*$"


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    before: str = Field(min_length=1)
    after: str = Field(min_length=1)
    language: str = "verilog"

    @model_validator(mode="after")
    def _differs(self) -> Example:
        if " ".join(self.before.split()) == " ".join(self.after.split()):
            raise ValueError("the example's before and after are the same")
        return self


class Entry(BaseModel):
    """One built-in optimisation rule (or template) of the knowledge base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    title: str = Field(min_length=3)
    domain: Domain
    goals: tuple[Goal, ...] = Field(min_length=1)
    tags: tuple[str, ...] = ()
    cells: tuple[CellClass, ...] = ()
    rule: str | None = Field(None, pattern=_ID, description="the proposer rule implementing it, if any")
    applies_when: str = Field(min_length=10)
    summary: str = Field(min_length=10)
    tradeoff: str = Field(min_length=10)
    example: Example
    references: tuple[str, ...] = ()

    @field_validator("tags")
    @classmethod
    def _lower_tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t.strip().lower() for t in value if t.strip())

    @property
    def learned(self) -> bool:
        return False

    @property
    def labels(self) -> frozenset[str]:
        """Everything a tag filter matches: goals, tags, domain and the rule id."""
        return frozenset((*self.goals, *self.tags, self.domain, *((self.rule,) if self.rule else ())))

    def text(self) -> str:
        """The text retrieval indexes (rule ids and tags repeated: they are the strongest evidence)."""
        parts = [
            self.title,
            self.summary,
            self.applies_when,
            self.tradeoff,
            " ".join(self.tags) * 2,
            " ".join(self.goals),
            " ".join(self.cells),
            (self.rule or "") * 2,
            self.example.before,
            self.example.after,
        ]
        return "\n".join(parts)

    def as_prompt(self) -> str:
        """A compact description for an LLM prompt."""
        return (
            f"### {self.title} ({self.id}; goals: {', '.join(self.goals)})\n"
            f"{self.summary}\nApplies when: {self.applies_when}\nTrade-off: {self.tradeoff}\n"
            f"Before:\n```{self.example.language}\n{self.example.before.strip()}\n```\n"
            f"After:\n```{self.example.language}\n{self.example.after.strip()}\n```"
        )

    def row(self) -> dict[str, Any]:
        """The short form of a listing."""
        return {
            "id": self.id,
            "kind": "builtin",
            "domain": self.domain,
            "title": self.title,
            "goals": list(self.goals),
            "tags": list(self.tags),
            "rule": self.rule,
        }

    def to_json(self) -> dict[str, Any]:
        return {"kind": "builtin", **self.model_dump(mode="json")}


def validation_message(error: ValidationError) -> str:
    rows = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(entry)"
        rows.append(f"{where}: {item['msg']}")
    return "; ".join(rows)


def load_entry(path: Path) -> Entry:
    """One TOML entry file; its ``id`` must equal the file name and its ``domain`` the folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{path}: cannot read the entry: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeBaseError(f"{path}: not valid TOML: {exc}", hint="fix the file's syntax") from exc
    try:
        entry = Entry.model_validate(data)
    except ValidationError as exc:
        raise KnowledgeBaseError(
            f"{path}: invalid knowledge-base entry: {validation_message(exc)}",
            hint="see evoforge/kb/rules/rtl/resource_sharing.toml for a valid entry",
        ) from exc
    if entry.id != path.stem:
        raise KnowledgeBaseError(
            f"{path}: the entry id {entry.id!r} differs from the file name {path.stem!r}"
        )
    if path.parent.name in ("rtl", "kernel") and entry.domain != path.parent.name:
        raise KnowledgeBaseError(f"{path}: domain {entry.domain!r} but the file is under {path.parent.name}/")
    return entry


def load_builtin(directory: Path = BUILTIN_DIR) -> list[Entry]:
    """Every ``*.toml`` entry under ``directory`` (sorted by path); duplicate ids are an error."""
    if not directory.is_dir():
        raise KnowledgeBaseError(f"{directory}: no knowledge-base folder there")
    entries: list[Entry] = []
    where: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.toml")):
        entry = load_entry(path)
        if entry.id in where:
            raise KnowledgeBaseError(f"{path}: entry id {entry.id!r} is already used by {where[entry.id]}")
        where[entry.id] = path
        entries.append(entry)
    return entries
