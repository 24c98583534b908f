"""The RTL source policy: includes, pragmas, control bytes and macro bombs, as an attacker writes them.

Issue 10 items 7 (the preprocessor and the tools run in the box; includes only from the target's own
directory, none in candidates; the policy on the preprocessed text), 8 (simulation and synthesis see
one design) and 13 (a macro bomb ends quickly, in a rejection or exit 2). Each attack is written as
the issue reproduced it, then in the attacker's next spelling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.errors import TargetError, ToolError
from evoforge.tools.liberty import prepare_liberty
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.cascade import RtlVerifier
from evoforge.verifiers.rtl.source_policy import (
    control_characters,
    elaborate,
    policy_violations,
    tokens,
)
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "rtl"
HOSTILE = ROOT / "tests" / "fixtures" / "rtl_hostile"
CORPUS = ROOT.parent / "shared" / "corpus" / "rtl"
SECRET = "sk-evoforge-test-secret-0123456789"
SMALL = "module small(input wire a, input wire b, output wire y);\n    assign y = a & b;\nendmodule\n"


def evoforge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "EVOFORGE_WEB__TOKEN": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "evoforge.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> RtlVerifier:
    work = tmp_path_factory.mktemp("policy")
    target = load_rtl_target([EXAMPLES / "tick_timer.v"], RtlTargetOptions(), workdir=work / "target")
    settings = RtlSettings(sim_cycles=600, sim_seeds=1, probe_cycles=300, sim_timeout_s=30)
    verifier = RtlVerifier(target, settings, prepare_liberty(None, work / "cache"), work / "runs")
    verifier.baseline()
    return verifier


# ---------------------------------------------------------------------------------------------
# The lexer: one pass tells strings, comments, attributes and escaped identifiers apart


def test_a_comment_opener_inside_a_string_starts_no_comment() -> None:
    text = 'wire [15:0] a = "/*";\n`include "x.vh"\nwire [15:0] b = "*/";\n'
    kinds = [(t.kind, t.text) for t in tokens(text)]
    assert ("directive", "`include") in kinds
    assert not any(kind == "comment" for kind, _ in kinds)
    assert "`include" in " ".join(policy_violations(text))


def test_sensitivity_star_is_not_an_attribute_and_escaped_names_are_opaque() -> None:
    text = "always @(*) x = 1; always @( * ) y = 2; wire \\a(*b ; (* keep *) wire c;"
    attributes = [t.text for t in tokens(text) if t.kind == "attribute"]
    assert attributes == ["(* keep *)"]
    assert [t.text for t in tokens(text) if t.kind == "escaped"] == ["\\a(*b"]


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused(char: str) -> None:
    found = control_characters(f"module m;\n// note {char}\nendmodule\n", "d.v")
    assert found and "d.v line 2" in found[0]


def test_tab_cr_lf_and_form_feed_are_fine() -> None:
    assert control_characters("module m;\r\n\twire a;\f\nendmodule\n") == []


# ---------------------------------------------------------------------------------------------
# Includes (item 7)


def test_candidate_hiding_an_include_of_environ_leaks_nothing(
    verifier: RtlVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    verdict = verifier.verify((HOSTILE / "include_environ_hidden.v").read_text())
    assert not verdict.accepted and not verdict.error and verdict.stage == "parse"
    assert "candidates must be self-contained" in verdict.reason
    everything = json.dumps([verdict.reason, *[(s.detail, s.log) for s in verdict.stages]])
    assert SECRET not in everything and "OPENAI_API_KEY" not in everything and "PATH=" not in everything


@pytest.mark.parametrize(
    "directive",
    [
        '`include "/proc/self/environ"',
        '`include "/etc/shadow"',
        '`include "/dev/null"',  # a harmless outside file: still refused, never accepted
        '`define INC "/etc/hostname"\n`include `INC',  # the name from a macro
        '`define I `include\n`I "/dev/null"',  # the directive from a macro
        '`include "ivlpp_in.v"',  # itself
    ],
)
def test_every_spelling_of_a_candidate_include_is_refused(directive: str, tmp_path: Path) -> None:
    text = f"{directive}\n{SMALL}"
    try:
        result = elaborate(text, role="candidate", workdir=tmp_path)
    except ToolError as exc:  # ivlpp crashes on a macro that names the directive: a verifier error,
        assert "crashed" in exc.message  # never an accepted candidate, and nothing was included
        return
    assert not result.ok
    assert any("include" in r.lower() or "preprocessor" in r for r in result.refusals), result.refusals
    assert "root:" not in " ".join(result.refusals) and SECRET not in " ".join(result.refusals)


def test_target_including_environ_or_shadow_exits_2_without_leaking(tmp_path: Path) -> None:
    for name, directive in (("environ", "/proc/self/environ"), ("shadow", "/etc/shadow")):
        design = tmp_path / f"{name}.v"
        design.write_text(f'`include "{directive}"\n{SMALL}')
        done = evoforge("verify", design, EXAMPLES / "tick_timer_better.v", "--json")
        assert done.returncode == 2, done.stderr
        assert "include" in done.stderr.lower()
        assert SECRET not in done.stdout + done.stderr and "root:" not in done.stdout + done.stderr


def test_target_includes_resolve_in_its_own_directory_only(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "inc").mkdir(parents=True)
    (project / "inc" / "width.vh").write_text("`define W 4\n")
    (tmp_path / "outside.vh").write_text("`define W 4\n")
    design = project / "top.v"
    body = "module top(input wire [`W-1:0] a, output wire [`W-1:0] y);\n    assign y = ~a;\nendmodule\n"
    design.write_text('`include "inc/width.vh"\n' + body)
    target = load_rtl_target([design], RtlTargetOptions(), workdir=tmp_path / "work")
    assert target.rtl is not None and target.rtl.ports[0].width == 4
    # stored self-contained: a candidate made from it needs no include
    assert "`include" not in target.source and "4-1:0" in target.source
    design.write_text('`include "../outside.vh"\n' + body)
    with pytest.raises(TargetError, match="design's own directory"):
        load_rtl_target([design], RtlTargetOptions(), workdir=tmp_path / "work2")


def test_links_out_of_the_target_directory_lead_nowhere(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "keys.vh").write_text(f"// {SECRET}\n")
    (project / "inc").symlink_to(tmp_path / "private")  # a linked directory
    (project / "keys.vh").symlink_to(tmp_path / "private" / "keys.vh")  # a linked file
    for name in ("inc/keys.vh", "keys.vh"):
        design = project / "top.v"
        design.write_text(f'`include "{name}"\n{SMALL}')
        with pytest.raises(TargetError, match="not found") as info:
            load_rtl_target([design], RtlTargetOptions(), workdir=tmp_path / f"w-{name.replace('/', '-')}")
        assert SECRET not in str(info.value)


def test_target_cannot_include_hidden_or_non_verilog_files_of_its_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    (tmp_path / "notes.txt").write_text("`define W 4\n")
    for name in (".env", "notes.txt"):
        design = tmp_path / "top.v"
        design.write_text(f'`include "{name}"\n{SMALL}')
        with pytest.raises(TargetError, match="not found") as info:
            load_rtl_target([design], RtlTargetOptions(), workdir=tmp_path / f"work-{name}")
        assert SECRET not in str(info.value)


# ---------------------------------------------------------------------------------------------
# One design for simulation and synthesis (item 8)

TRANSLATE_SPELLINGS = [
    "// synopsys translate_off",
    "/* synthesis translate_off */",
    "//pragma translate_off",
    "// SYNOPSYS TRANSLATE_OFF",
    "/*synopsys translate_on*/",
    "// rtl_synthesis off",
    "// translate_off",
    "// cadence translate_off",
]


@pytest.mark.parametrize("pragma", TRANSLATE_SPELLINGS)
def test_translate_pragmas_are_refused_in_every_spelling(pragma: str, tmp_path: Path) -> None:
    design = tmp_path / "t.v"
    design.write_text(SMALL.replace("    assign", f"    {pragma}\n    assign"))
    with pytest.raises(TargetError, match="would hide code from synthesis"):
        load_rtl_target([design], RtlTargetOptions(), workdir=tmp_path / "work")


def test_a_comment_about_synthesis_is_not_a_pragma(tmp_path: Path) -> None:
    text = SMALL.replace(
        "    assign", "    // synthesis maps this onto one AND gate; translate it freely\n    assign"
    )
    assert elaborate(text, role="target", workdir=tmp_path).ok


@pytest.mark.slow
def test_ifdef_synthesis_candidate_is_measured_as_simulated(verifier: RtlVerifier) -> None:
    honest = verifier.verify((EXAMPLES / "tick_timer_better.v").read_text())
    tricked = verifier.verify((HOSTILE / "one_design" / "ifdef_synthesis.v").read_text())
    assert honest.accepted, honest.reason
    assert tricked.accepted, tricked.reason
    # Yosys saw the counter Icarus simulated, not the constant behind `ifdef SYNTHESIS
    assert tricked.metrics.area_um2 == honest.metrics.area_um2
    assert tricked.metrics.cells == honest.metrics.cells


OVERLAP = """module pick(input wire [1:0] s, output reg [1:0] y);
    always @* begin
        y = 2'd0;
        {qualifier} casez (s) {comment}
            2'b1?: y = 2'd1;
            2'b?1: y = 2'd2;
        endcase
    end
endmodule
"""


@pytest.mark.parametrize(
    ("qualifier", "comment", "sv"),
    [
        ("(* parallel_case *)", "", False),
        ("(* full_case, parallel_case *)", "", False),
        ("", "// synopsys parallel_case", False),
        ("", "/* synopsys full_case parallel_case */", False),
        ("unique", "", True),
        ("priority", "", True),
    ],
)
def test_case_qualifiers_cannot_make_yosys_build_another_circuit(
    qualifier: str, comment: str, sv: bool, tmp_path: Path
) -> None:
    text = OVERLAP.format(qualifier=qualifier, comment=comment)
    elaborated = elaborate(text, role="candidate", workdir=tmp_path / "e")
    assert elaborated.ok, elaborated.refusals
    # simulation (priority semantics) gives y = 1 for s = 3; prove what Yosys synthesises from each text
    read = "read_verilog -sv" if sv else "read_verilog"
    verdicts = {}
    for name, source in (("raw", text), ("elaborated", elaborated.text)):
        (tmp_path / f"{name}.v").write_text(source)
        script = f"{read} {name}.v\nsynth -top pick\nsat -verify -set s 3 -prove y 1\n"
        verdicts[name] = Yosys().run_script(script, cwd=tmp_path, timeout=120, name=name).ok
    assert verdicts["elaborated"], "the elaborated text still synthesises to another circuit"
    if qualifier in ("(* parallel_case *)", "unique") or "parallel_case" in comment:
        assert not verdicts["raw"], "the attack no longer works on the raw text: the test proves nothing"


@pytest.mark.parametrize("directive", ['`line 3 "x.v" 0', "`unconnected_drive pull1", "`pragma protect"])
def test_directives_tools_disagree_on_are_refused(directive: str, tmp_path: Path) -> None:
    result = elaborate(f"{directive}\n{SMALL}", role="target", workdir=tmp_path)
    assert not result.ok


def test_nul_byte_in_a_target_exits_2(tmp_path: Path) -> None:
    design = tmp_path / "nul.v"
    design.write_bytes(SMALL.encode().replace(b"    assign", b"    // \x00\n    assign"))
    done = evoforge("verify", design, design, "--json")
    assert done.returncode == 2
    assert "control character" in done.stderr and "nul.v line 2" in done.stderr


# ---------------------------------------------------------------------------------------------
# Macro bombs (item 13)


def test_a_1_kb_macro_bomb_target_exits_2_quickly(tmp_path: Path) -> None:
    design = tmp_path / "bomb.v"
    design.write_text((HOSTILE / "macro_bomb.v").read_text().replace("module tick_timer", "module bomb"))
    start = time.monotonic()
    done = evoforge("verify", design, design, "--json")
    assert done.returncode == 2
    assert "preprocessor was stopped" in done.stderr
    assert time.monotonic() - start < 60


@pytest.mark.parametrize(
    "bomb",
    [
        "`define A `A\n",  # self-recursive
        "`define A `B\n`define B `A\n",  # mutually recursive
    ],
)
def test_recursive_macros_end_in_a_refusal(bomb: str, tmp_path: Path) -> None:
    start = time.monotonic()
    result = elaborate(bomb + SMALL.replace("a & b", "a & `A"), role="candidate", workdir=tmp_path)
    assert not result.ok and "preprocessor" in result.refusals[0]
    assert time.monotonic() - start < 45


def test_macro_growth_below_the_file_limit_is_refused_before_any_parser(tmp_path: Path) -> None:
    text = (HOSTILE / "macro_bomb.v").read_text().replace("`B30;", "`B15;")  # 256 KiB of expression
    result = elaborate(text, role="candidate", workdir=tmp_path)
    assert not result.ok and "macros grow it past" in result.refusals[0]


# ---------------------------------------------------------------------------------------------
# The open world


def test_every_corpus_design_elaborates_line_for_line() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the public corpus is not at {CORPUS}")
    files = sorted([*CORPUS.glob("*/*.v"), *CORPUS.glob("*/*.sv")])
    assert len(files) > 50
    import tempfile

    for path in files:
        text = path.read_text()
        with tempfile.TemporaryDirectory() as tmp:
            result = elaborate(text, role="target", workdir=Path(tmp), include_dirs=[path.parent])
        assert result.ok, (path.name, result.refusals)
        assert result.text.count("\n") == text.count("\n"), path.name
