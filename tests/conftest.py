"""Shared fixtures: an isolated data directory, fast RTL settings, example and PDK paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evoforge.config import RtlSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "rtl"
HOSTILE = ROOT / "tests" / "fixtures" / "rtl_hostile"
SKY130 = ROOT.parent / "shared" / "pdk" / "sky130hd_tt.lib.gz"

os.environ.setdefault("COCOTB_REWRITE_ASSERTION_FILES", "")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing a test does lands in the user's data directory or database."""
    data = tmp_path_factory.mktemp("evoforge-data")
    monkeypatch.setenv("EVOFORGE_DATA_DIR", str(data))
    monkeypatch.delenv("EVOFORGE_DB", raising=False)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "EVOFORGE_MODEL"):  # no real endpoint in tests
        monkeypatch.delenv(name, raising=False)
    return data


@pytest.fixture
def fast_rtl() -> RtlSettings:
    """Shorter simulations and formal limits, so that a cascade takes seconds."""
    return RtlSettings(sim_cycles=1500, sim_seeds=1, probe_cycles=300, equivalence_timeout_s=30)


@pytest.fixture
def settings(tmp_path: Path, fast_rtl: RtlSettings) -> Settings:
    return Settings(data_dir=tmp_path / "data", rtl=fast_rtl)


@pytest.fixture
def sky130() -> Path:
    if not SKY130.exists():
        pytest.skip(f"the sky130 liberty is not at {SKY130} (it lives beside the project, in ../shared)")
    return SKY130
