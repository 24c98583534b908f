"""Icarus and Verilator diagnostics from the real programs: file, line, errors apart from warnings."""

from __future__ import annotations

import pytest

from evoforge.errors import ToolError
from evoforge.tools.diagnostics import parse_icarus, parse_verilator
from evoforge.tools.iverilog import Iverilog
from evoforge.tools.verilator import Verilator

SYNTAX_ERROR = """module t(input a, output y);
  wire w;
  assign y = a &
endmodule
"""
GOOD = """module t(input [3:0] a, output [1:0] y);
  wire [7:0] w;
  assign w = a;
  assign y = w[9];
endmodule
"""


def test_iverilog_syntax_error_has_file_and_line(tmp_path):
    (tmp_path / "bad.v").write_text(SYNTAX_ERROR)
    result = Iverilog().compile([tmp_path / "bad.v"], output=tmp_path / "a.vvp", cwd=tmp_path)
    assert not result.ok
    first = result.errors[0]
    assert first.file.endswith("bad.v") and first.line == 4
    assert "syntax error" in first.message
    assert "bad.v:4" in result.first_error


def test_iverilog_compiles_and_keeps_warnings(tmp_path):
    (tmp_path / "ok.v").write_text(GOOD)
    result = Iverilog().compile(
        [tmp_path / "ok.v"], output=tmp_path / "a.vvp", top="t", cwd=tmp_path, extra_args=["-Wall"]
    )
    assert result.ok, result.log
    assert (tmp_path / "a.vvp").exists()
    assert result.warnings and result.warnings[0].line == 4
    assert "Replacing select" in result.warnings[0].message  # continuation line joined


def test_iverilog_unknown_module_is_an_error(tmp_path):
    (tmp_path / "m.v").write_text("module t(input a); sub u(.x(a)); endmodule\n")
    result = Iverilog().compile([tmp_path / "m.v"], output=tmp_path / "a.vvp", cwd=tmp_path)
    assert not result.ok
    assert any("Unknown module type: sub" in d.message for d in result.errors)


def test_preprocess_expands_macros_and_reports_missing_include(tmp_path):
    text = Iverilog().preprocess("`define W 8\nmodule t; wire [`W-1:0] x; endmodule\n", cwd=tmp_path)
    assert "[8-1:0]" in text
    with pytest.raises(ToolError, match=r"nope\.vh"):
        Iverilog().preprocess('`include "nope.vh"\nmodule t; endmodule\n', cwd=tmp_path)


def test_verilator_syntax_error_has_file_and_line(tmp_path):
    (tmp_path / "bad.v").write_text(SYNTAX_ERROR)
    report = Verilator().lint([tmp_path / "bad.v"], top="t", cwd=tmp_path)
    assert not report.ok
    assert report.errors[0].file.endswith("bad.v") and report.errors[0].line == 4
    assert "syntax error" in report.errors[0].message


def test_verilator_warnings_do_not_fail_lint(tmp_path):
    (tmp_path / "ok.v").write_text(GOOD)
    report = Verilator().lint([tmp_path / "ok.v"], top="t", cwd=tmp_path)
    assert report.ok, report.log
    codes = {w.code for w in report.warnings}
    assert "WIDTH" in codes and "SELRANGE" in codes
    assert "DECLFILENAME" not in codes  # stylistic: switched off


def test_parsers_on_canned_text():
    icarus = parse_icarus("x.v:3: warning: w\nx.v:3:        : more\nx.v:9: syntax error\nI give up.\n")
    assert [(d.line, d.severity) for d in icarus] == [(3, "warning"), (9, "error")]
    assert icarus[0].message == "w more"
    verilator = parse_verilator(
        "%Warning-WIDTH: a.v:2:16: too wide\n%Error: a.v:4:3: bad\n%Error: Exiting due to 1 error(s)\n"
    )
    assert [(d.severity, d.code, d.line) for d in verilator] == [("warning", "WIDTH", 2), ("error", "", 4)]
