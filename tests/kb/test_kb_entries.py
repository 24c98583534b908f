"""The knowledge base: entries are validated, retrieval ranks the fitting rule first, learning persists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evoforge.agents.rtl_rules import RULES
from evoforge.errors import KnowledgeBaseError
from evoforge.kb import KnowledgeBase, design_query, learned_path, make_learned, tokens
from evoforge.kb.entries import BUILTIN_DIR, load_builtin

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "rtl"


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(BUILTIN_DIR, target)
    return target


def test_builtin_entries_load_and_cover_every_rule() -> None:
    kb = KnowledgeBase.load()
    ids = {e.id for e in kb.builtin}
    assert len(ids) == len(kb.builtin) >= 10
    assert {"elementwise_fusion", "row_reduction", "gemm_epilogue"} <= ids
    assert {e.domain for e in kb.builtin} == {"rtl", "kernel"}
    implemented = {e.rule for e in kb.builtin if e.rule}
    missing = set(RULES) - implemented
    assert not missing, f"rules without a knowledge-base entry: {missing}"
    for name in RULES:
        entry = kb.for_rule(name)
        assert entry is not None and entry.domain == "rtl" and entry.goals


def test_a_broken_entry_fails_loudly_naming_the_file(rules_copy: Path) -> None:
    bad = rules_copy / "rtl" / "resource_sharing.toml"
    bad.write_text(bad.read_text().replace('goals = ["area", "power"]', 'goals = ["speed"]'))
    with pytest.raises(KnowledgeBaseError, match=r"resource_sharing\.toml.*goals"):
        KnowledgeBase.load(builtin_dir=rules_copy)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda t: t + "\nunknown_key = 1\n", "unknown_key"),
        (lambda t: t.replace('id = "resource_sharing"', 'id = "other_name"'), "differs from the file name"),
        (lambda t: t.replace("[example]", "[example\n"), "not valid TOML"),
        (lambda t: t.replace('domain = "rtl"', 'domain = "kernel"'), "under rtl/"),
    ],
    ids=["extra-key", "id-vs-file", "syntax", "domain-folder"],
)
def test_invalid_entries_are_rejected(rules_copy: Path, mutation, message: str) -> None:  # type: ignore[no-untyped-def]
    path = rules_copy / "rtl" / "resource_sharing.toml"
    path.write_text(mutation(path.read_text()))
    with pytest.raises(KnowledgeBaseError, match=message) as info:
        load_builtin(rules_copy)
    assert "resource_sharing.toml" in str(info.value)


def test_duplicate_ids_are_rejected(rules_copy: Path) -> None:
    shutil.copy(rules_copy / "rtl" / "resource_sharing.toml", rules_copy / "kernel" / "resource_sharing.toml")
    with pytest.raises(KnowledgeBaseError):
        load_builtin(rules_copy)


def test_tokens_split_identifiers_and_fold_variants() -> None:
    assert tokens("next_state multipliers camelCase sum") == [
        "next",
        "state",
        "multiply",
        "camel",
        "case",
        "adder",
    ]


def test_retrieval_ranks_the_rule_that_fits_first() -> None:
    kb = KnowledgeBase.load()
    max8 = (EXAMPLES / "max8.v").read_text()
    # the critical path of the running-maximum chain: a timing question about a compare chain
    query = design_query(max8, critical_path=["d1", "max", "d3", "d5", "idx"], objectives=["delay_ns"])
    assert kb.search(query, domain="rtl", k=1)[0].id == "rebalance"
    cases = {
        "fir4": "strength_reduction",
        "tick_timer": "width_reduction",
        "seq_detect": "fsm_minimise",
        "alu16": "resource_sharing",
        "dual_mul": "resource_sharing",
    }
    for design, expected in cases.items():
        query = design_query((EXAMPLES / f"{design}.v").read_text(), objectives=["area_um2"])
        top = [e.id for e in kb.search(query, domain="rtl", k=2)]
        assert expected in top, (design, top)


def test_tag_and_domain_filters() -> None:
    kb = KnowledgeBase.load()
    kernel = kb.search("fuse elementwise relu bias", domain="kernel", k=3)
    assert kernel and kernel[0].id == "elementwise_fusion"
    assert all(e.domain == "kernel" for e in kernel)
    timing = kb.filter(domain="rtl", tags=("timing",))
    assert "rebalance" in {e.id for e in timing}
    assert "resource_sharing" not in {e.id for e in timing}
    assert kb.search("fuse elementwise relu bias", domain="rtl", tags=("kernel",)) == []


def _win(before: str = "assign y = a * b;\n", after: str = "assign y = a << 1;\n", job: int = 7):  # type: ignore[no-untyped-def]
    return make_learned(
        domain="rtl",
        target="demo",
        before=before,
        after=after,
        origin="offline:resource_sharing → offline:rebalance",
        note="shared the multiplier",
        baseline={"area_um2": 100.0, "delay_ns": 2.0},
        metrics={"area_um2": 50.0, "delay_ns": 2.5},
        improvement={"area_um2": 2.0, "delay_ns": 0.8},
        assurance="proven",
        job_id=job,
        candidate_id=3,
    )


def test_learned_entries_persist_and_stay_apart(tmp_path: Path) -> None:
    path = learned_path(tmp_path)
    kb = KnowledgeBase.load(learned=path)
    entry = _win()
    assert entry.goals == ("area",) and entry.rule == "resource_sharing+rebalance"
    assert "-assign y = a * b;" in entry.excerpt and "+assign y = a << 1;" in entry.excerpt
    assert kb.add_learned(entry) is True
    assert kb.add_learned(_win(job=8)) is False  # the same rewrite is learned once
    again = KnowledgeBase.load(learned=path)
    assert [e.id for e in again.learned] == [entry.id]
    assert again.get(entry.id).learned and not again.get("resource_sharing").learned
    assert entry.id not in {e.id for e in again.filter(include_learned=False)}
    assert again.filter(tags=("learned",)) == again.learned
    assert again.search("multiply demo shared", domain="rtl", k=20, include_learned=False)
    assert entry.id in {e.id for e in again.search("demo multiplier shared", k=20)}
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["assurance"] == "proven"


def test_a_corrupt_learned_line_is_skipped_with_a_warning_naming_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = learned_path(tmp_path)
    KnowledgeBase.load(learned=path).add_learned(_win())
    with path.open("a") as handle:
        handle.write('{"id": "learned-zz"}\nnot json at all\n')
    kb = KnowledgeBase.load(learned=path)  # one bad entry must not stop every job (issue 11, item 8)
    assert [e.id for e in kb.learned] == [_win().id]
    assert "learned.jsonl:2" in caplog.text and "learned.jsonl:3" in caplog.text


def test_without_a_file_learning_is_in_memory_only(tmp_path: Path) -> None:
    kb = KnowledgeBase.load()
    assert kb.add_learned(_win())
    assert len(kb.learned) == 1 and not any(tmp_path.iterdir())
