"""yosys stat/ltp and OpenSTA report_checks parsers, against the real programs' output."""

from __future__ import annotations

import pytest

from evoforge.errors import ToolError
from evoforge.tools.liberty import prepare_liberty
from evoforge.tools.opensta import OpenSta, parse_report_checks, sta_errors, worst_path
from evoforge.tools.yosys import Yosys
from evoforge.tools.yosys_reports import parse_ltp, parse_stat

ADDER = "module add(input [7:0] a, b, output [8:0] y); assign y = a + b; endmodule\n"


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    work = tmp_path_factory.mktemp("yosys")
    lib = prepare_liberty(None, work)
    (work / "add.v").write_text(ADDER)
    script = f"""read_verilog add.v
synth -flatten -top add
stat
ltp -noff
dfflibmap -liberty {lib.path}
abc -liberty {lib.path}
opt_clean
stat -liberty {lib.path}
write_verilog -noattr -noexpr -simple-lhs net.v
"""
    run = Yosys().run_script(script, cwd=work, name="flow")
    assert run.ok, run.error
    return work, lib, run.log


def test_stat_parser_takes_the_last_report(mapped):
    _, _, log = mapped
    stat = parse_stat(log, "add")
    assert stat.area_um2 is not None and stat.area_um2 > 10
    assert stat.cells == sum(stat.cells_by_type.values()) > 10
    assert all(not t.startswith("$") for t in stat.cells_by_type)
    assert stat.unmapped_cells == {}
    assert any(t in stat.cells_by_type for t in ("XOR2", "XNOR2"))


def test_ltp_parser(mapped):
    _, _, log = mapped
    ltp = parse_ltp(log)
    assert ltp.module == "add" and ltp.length >= 8
    assert len(ltp.nodes) == ltp.length + 1
    assert ltp.nodes[0][0] in "ab" and ltp.nodes[-1].startswith("y[")


def test_parsers_raise_when_the_report_is_missing():
    with pytest.raises(ToolError):
        parse_stat("nothing here")
    with pytest.raises(ToolError):
        parse_ltp("nothing here")


def test_opensta_report_checks_parsed(mapped):
    work, lib, _ = mapped
    tcl = f"""read_liberty {lib.path}
read_verilog net.v
link_design add
create_clock -name v -period 5
set_input_delay 0 -clock v [all_inputs]
set_output_delay 0 -clock v [all_outputs]
report_checks -path_delay max -fields {{net}} -digits 4
"""
    result = OpenSta().run_tcl(tcl, cwd=work)
    assert result.ok and not sta_errors(result.output), result.output
    paths = parse_report_checks(result.stdout)
    assert len(paths) == 1
    path = worst_path(paths)
    assert path is not None
    assert path.startpoint[0] in "ab" and path.endpoint.startswith("y[")
    assert path.required_ns == pytest.approx(5.0)
    assert path.slack_ns == pytest.approx(5.0 - path.delay_ns, abs=1e-3)
    assert path.points[0].cell == "in" and path.points[-1].cell == "out"
    assert path.points[-1].arrival_ns == pytest.approx(path.delay_ns)
    assert sum(p.incr_ns for p in path.points) == pytest.approx(path.delay_ns, abs=1e-3)
    assert all(p.net for p in path.points[:-1])


def test_opensta_errors_are_found(tmp_path):
    result = OpenSta().run_tcl("link_design nosuch\n", cwd=tmp_path)
    assert sta_errors(result.output)
