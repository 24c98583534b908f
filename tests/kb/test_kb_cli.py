"""`evoforge kb list|show|search`: exit codes, one JSON object, learned entries listed apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoforge.cli import main
from evoforge.kb import KnowledgeBase, learned_path, make_learned


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_json_keeps_learned_apart(capsys: pytest.CaptureFixture[str], _isolated_data_dir: Path) -> None:
    entry = make_learned(
        domain="rtl",
        target="demo",
        before="assign y = a * 2;\n",
        after="assign y = a << 1;\n",
        origin="offline:strength_reduction",
        improvement={"area_um2": 3.0},
        assurance="proven",
        job_id=1,
    )
    KnowledgeBase.load(learned=learned_path(_isolated_data_dir)).add_learned(entry)
    code, out, _ = _run(capsys, "kb", "list", "--json")
    assert code == 0
    data = json.loads(out)
    assert {r["id"] for r in data["learned"]} == {entry.id}
    assert entry.id not in {r["id"] for r in data["builtin"]}
    assert {r["kind"] for r in data["builtin"]} == {"builtin"}
    assert data["learned"][0]["rule"] == "strength_reduction"

    code, out, _ = _run(capsys, "kb", "list", "--domain", "kernel", "--builtin", "--json")
    data = json.loads(out)
    assert data["learned"] == [] and {r["domain"] for r in data["builtin"]} == {"kernel"}

    code, out, _ = _run(capsys, "kb", "list", "--tag", "timing")
    assert code == 0 and "rebalance" in out and "resource_sharing " not in out
    assert "learned (0)" in out  # the learned entry saved area, not delay


def test_show_and_search(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "kb", "show", "resource_sharing", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["rule"] == "resource_sharing" and data["example"]["before"] and data["tradeoff"]
    code, out, _ = _run(capsys, "kb", "show", "width_reduction")
    assert code == 0 and "Trade-off:" in out and "```verilog" in out

    code, out, _ = _run(capsys, "kb", "search", "counter register width compare constant", "--json")
    assert code == 0
    assert json.loads(out)["entries"][0]["id"] == "width_reduction"


def test_unknown_entry_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "kb", "show", "no_such_rule")
    assert code == 2 and out == ""
    assert "no_such_rule" in err and "kb list" in err


def test_a_corrupt_learned_line_is_skipped_with_a_warning(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, _isolated_data_dir: Path
) -> None:
    """Issue 11 item 8: one bad learned entry no longer stops every job (or the listing)."""
    path = learned_path(_isolated_data_dir)
    path.parent.mkdir(parents=True)
    path.write_text("not json\n")
    code, out, _ = _run(capsys, "kb", "list", "--json")
    assert code == 0 and json.loads(out)["learned"] == []
    assert "learned.jsonl:1" in caplog.text and "skipped" in caplog.text
