"""prepare_liberty on the packaged generic library, gzip input, the real SKY130 file and bad input."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from evoforge.errors import LibertyError
from evoforge.tools.liberty import (
    GENERIC_SOURCE,
    cell_areas,
    generic_liberty_path,
    is_dont_use,
    prepare_liberty,
)

ROOT = Path(__file__).resolve().parents[2]
SKY130 = ROOT.parent / "shared" / "pdk" / "sky130hd_tt.lib.gz"
needs_sky130 = pytest.mark.skipif(not SKY130.exists(), reason=f"{SKY130} is absent (not part of the project)")


def test_generic_library_is_valid(tmp_path):
    lib = prepare_liberty(None, tmp_path)
    assert lib.illustrative and lib.source == GENERIC_SOURCE
    assert lib.library_name == "evoforge_generic"
    assert lib.cell_count == 15 and lib.removed_cells == ()
    assert lib.path.is_file() and lib.path.parent == tmp_path / "liberty"
    text = lib.path.read_text()
    for cell in ("INV", "NAND2", "XOR2", "AOI21", "MUX2", "DFF", "DFFR", "DFFS"):
        assert f"cell ({cell})" in text
    assert cell_areas(lib.path, ["INV", "DFF", "NOPE"]) == {"INV": 1.0, "DFF": 6.0}


def test_gzip_input_is_accepted_and_cached(tmp_path):
    packed = tmp_path / "g.lib.gz"
    packed.write_bytes(gzip.compress(generic_liberty_path().read_bytes()))
    lib = prepare_liberty(packed, tmp_path / "cache")
    assert lib.source == str(packed) and not lib.illustrative
    assert lib.path.suffix == ".lib" and lib.path.read_text().startswith("/*")
    again = prepare_liberty(packed, tmp_path / "cache")
    assert again == lib


def test_dont_use_cells_are_removed_with_their_nested_groups(tmp_path):
    text = generic_liberty_path().read_text()
    extra = """  cell ("my_clkbuf_1") {
    area : 1;
    pin (A) { direction : input; capacitance : 0.001; }
    pin (X) { direction : output; function : "A"; timing () { related_pin : "A"; } }
  }
  /* a comment with a brace { */
"""
    marker = "  cell (INV) {"
    path = tmp_path / "with_clkbuf.lib"
    path.write_text(text.replace(marker, extra + marker, 1))
    lib = prepare_liberty(path, tmp_path / "cache")
    assert lib.removed_cells == ("my_clkbuf_1",)
    filtered = lib.path.read_text()
    assert "my_clkbuf_1" not in filtered and "cell (INV)" in filtered
    assert filtered.count("{") == filtered.count("}") + 1  # the comment's brace is still there


@needs_sky130
def test_sky130_is_filtered(tmp_path):
    lib = prepare_liberty(SKY130, tmp_path)
    assert lib.library_name == "sky130_fd_sc_hd__tt_025C_1v80"
    assert lib.cell_count > 300 and len(lib.removed_cells) > 50
    text = lib.path.read_text()
    kept = re.findall(r'cell \("([^"]+)"\)', text)
    assert len(kept) == lib.cell_count
    assert not [name for name in kept if is_dont_use(name)]
    assert not [name for name in kept if "clkbuf" in name or "dlygate" in name or "decap" in name]
    assert 'cell ("sky130_fd_sc_hd__nand2_1")' in text and 'cell ("sky130_fd_sc_hd__dfrtp_1")' in text
    assert all(is_dont_use(name) for name in lib.removed_cells)


def test_garbage_file_is_rejected(tmp_path):
    garbage = tmp_path / "x.lib"
    garbage.write_text("this is not a liberty file { at all }\n")
    with pytest.raises(LibertyError, match=r"x\.lib is not a liberty file: no library\(\.\.\.\) group"):
        prepare_liberty(garbage, tmp_path)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(LibertyError, match="does not exist"):
        prepare_liberty(tmp_path / "nope.lib", tmp_path)


def test_library_without_flip_flops_is_rejected(tmp_path):
    path = tmp_path / "comb.lib"
    path.write_text(
        'library (c) { cell (INV) { area : 1; pin (Y) { direction : output; function : "!A"; } } }'
    )
    with pytest.raises(LibertyError, match="no usable flip-flop"):
        prepare_liberty(path, tmp_path)


def test_truncated_library_is_rejected(tmp_path):
    path = tmp_path / "cut.lib"
    path.write_text(generic_liberty_path().read_text()[:5000])
    with pytest.raises(LibertyError, match="not closed"):
        prepare_liberty(path, tmp_path)
