"""Work the first evaluations paid twice (issue 13): a draft's passed quick check is not run again by
``verify``, and the baseline does not lint the original with Verilator a second time.

The LLM proposer quick-checks a draft (parse, lint, interface) and the loop then verifies it with the
same verifier: the front stages of exactly that text are reused (marked ``cached``, 0 s, "from the
quick check"), and the verdict is the one a fresh verifier gives. Any other text — another
whitespace, a one-operand change — and a failed quick check get the front stages run again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evoforge.config import RtlSettings
from evoforge.domain import Verdict
from evoforge.tools.liberty import prepare_liberty
from evoforge.verifiers.rtl.cascade import QUICK_STAGES, RtlVerifier
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ORIGINAL = """\
module addsel(input [1:0] op, input [7:0] a, b, c, output reg [8:0] y);
  always @* begin
    if (op == 2'd0) y = a + b;
    else if (op == 2'd1) y = a + c;
    else y = b + c;
  end
endmodule
"""
SHARED = """\
module addsel(input [1:0] op, input [7:0] a, b, c, output reg [8:0] y);
  reg [7:0] x, z;
  always @* begin
    if (op == 2'd0) begin x = a; z = b; end
    else if (op == 2'd1) begin x = a; z = c; end
    else begin x = b; z = c; end
    y = x + z;
  end
endmodule
"""
WRONG = SHARED.replace("x = a; z = c;", "x = b; z = b;")
BAD_PORTS = SHARED.replace("output reg [8:0] y", "output reg [7:0] y")


def _verifier(work: Path) -> RtlVerifier:
    design = work / "addsel.v"
    design.parent.mkdir(parents=True, exist_ok=True)
    design.write_text(ORIGINAL)
    target = load_rtl_target([design], RtlTargetOptions(), workdir=work / "target")
    settings = RtlSettings(sim_cycles=1500, sim_seeds=1, probe_cycles=400, sim_timeout_s=20)
    liberty = prepare_liberty(None, work / "cache")
    verifier = RtlVerifier(target=target, settings=settings, liberty=liberty, work_root=work / "runs")
    verifier.baseline()
    return verifier


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> RtlVerifier:
    return _verifier(tmp_path_factory.mktemp("quick-reuse"))


def _front(verdict: Verdict) -> dict[str, bool]:
    return {s.name: s.cached for s in verdict.stages if s.name in QUICK_STAGES}


def test_verify_after_a_passed_quick_check_reuses_the_front_and_gives_the_fresh_verdict(
    verifier: RtlVerifier, tmp_path: Path
) -> None:
    quick = verifier.quick_check(SHARED)
    assert quick.ok and quick.name == "interface"
    reused = verifier.verify(SHARED)
    assert _front(reused) == dict.fromkeys(QUICK_STAGES, True)
    for stage in reused.stages[: len(QUICK_STAGES)]:
        assert stage.ok and stage.seconds == 0.0 and "from the quick check" in stage.detail
    # the later stages ran on the elaborated text the front left: same verdict as a fresh verifier's
    fresh = _verifier(tmp_path).verify(SHARED)
    assert _front(fresh) == dict.fromkeys(QUICK_STAGES, False)
    assert reused.accepted and fresh.accepted
    assert (reused.stage, reused.metrics, reused.functional_hash, reused.implementation_hash) == (
        fresh.stage,
        fresh.metrics,
        fresh.functional_hash,
        fresh.implementation_hash,
    )
    # used once: verifying the same text again runs the front again
    assert _front(verifier.verify(SHARED)) == dict.fromkeys(QUICK_STAGES, False)


def test_other_text_gets_its_own_front_and_its_own_verdict(verifier: RtlVerifier) -> None:
    assert verifier.quick_check(SHARED).ok
    # the attacker's route: a passed quick check of one text, then another text to verify
    wrong = verifier.verify(WRONG)
    assert _front(wrong) == dict.fromkeys(QUICK_STAGES, False)
    assert not wrong.accepted and wrong.stage == "simulate"
    respaced = SHARED.replace("  reg", "\treg")  # the same design in other whitespace: not the same text
    assert _front(verifier.verify(respaced)) == dict.fromkeys(QUICK_STAGES, False)


def test_a_failed_quick_check_is_not_kept(verifier: RtlVerifier) -> None:
    quick = verifier.quick_check(BAD_PORTS)
    assert not quick.ok and quick.name == "interface"
    verdict = verifier.verify(BAD_PORTS)
    assert not verdict.accepted and verdict.stage == "interface"
    assert not any(s.cached for s in verdict.stages)


def test_the_baseline_lints_the_original_with_verilator_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original's lint stage lints it; its error count (what candidates are held to) is that
    lint's, not a second Verilator run on the same text. A candidate still gets the original linted."""
    from evoforge.tools.verilator import Verilator

    linted: list[str] = []
    real = Verilator.lint

    def counting(self: Verilator, paths: list[Path], **kwargs: object) -> object:
        linted.append(Path(paths[0]).name)
        return real(self, paths, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Verilator, "lint", counting)
    verifier = _verifier(tmp_path)
    assert linted == ["candidate.v"]  # the original, as the baseline's candidate
    assert verifier.reference["verilator_original_errors"] == 0
    linted.clear()
    fresh = RtlVerifier(
        target=verifier.target,
        settings=verifier.settings,
        liberty=verifier.liberty,
        work_root=tmp_path / "runs-2",
    )  # no baseline: the original's count is not known yet, so it is linted for the candidate
    assert fresh.quick_check(SHARED).ok
    assert linted == ["candidate.v", "original.v"]
