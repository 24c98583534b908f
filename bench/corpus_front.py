"""The RTL front end on the public corpus: what is accepted, what its clocks and resets are.

    .venv/bin/python bench/corpus_front.py [--corpus ../shared/corpus/rtl] [--liberty PATH] [--write]

Per design of the corpus: do Icarus (``-g2012``), Verilator (``--lint-only -sv``) and Yosys
(``read_verilog -sv; hierarchy -check; proc``) accept it; does it load as a target (slang elaboration,
top found, clocks and resets from the logic) and how long that takes; does the original pass its own
baseline stages (parse, lint, synthesis, timing, with the given liberty; the generic one by default).
Totals at the bottom: accepted by the three tools, loaded, refused (with the reason), baseline passed,
sequential designs, several clocks, resets by kind, guesses reported, median load time. ``--write``
replaces the section in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _doc import write_section

from evoforge.config import RtlSettings, Settings
from evoforge.errors import EvoforgeError
from evoforge.search.jobs import make_verifier
from evoforge.tools.iverilog import Iverilog
from evoforge.tools.verilator import Verilator
from evoforge.tools.yosys import Yosys
from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## RTL front end on the public corpus (issue 12)"


def three_tools(path: Path, work: Path) -> str | None:
    """None when all three accept ``path``; else which refused."""
    work.mkdir(parents=True, exist_ok=True)
    if not Iverilog().compile([path], output=work / "a.vvp", cwd=work, timeout=120).ok:
        return "icarus"
    lint = ["--lint-only", "-sv", "-Wno-fatal", "-Wno-lint", "-Wno-style", str(path)]
    if not Verilator().run(lint, cwd=work, timeout=120).ok:
        return "verilator"
    if (
        not Yosys()
        .run_script(f'read_verilog -sv "{path}"\nhierarchy -check\nproc\n', cwd=work, timeout=120)
        .ok
    ):
        return "yosys"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "rtl")
    parser.add_argument("--liberty", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    designs = sorted([*args.corpus.glob("*/*.v"), *args.corpus.glob("*/*.sv")])
    if not designs:
        print(f"no designs under {args.corpus}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="evoforge-corpus-"))
    settings = Settings(data_dir=work / "data", rtl=RtlSettings(liberty=args.liberty))
    rows, refused, failed, load_s = [], [], [], []
    kinds: Counter[str] = Counter()
    for path in designs:
        name = f"{path.parent.name}/{path.name}"
        rejected_by = three_tools(path, work / "tools" / path.stem)
        if rejected_by is not None:
            rows.append(f"| {name} | refused by {rejected_by} | | | |")
            continue
        start = time.monotonic()
        try:
            target = load_rtl_target([path], RtlTargetOptions(), workdir=work / "load" / path.stem)
        except EvoforgeError as exc:
            refused.append(f"{name}: {exc.message}")
            rows.append(f"| {name} | **refused**: {exc.message[:80]} | | | |")
            continue
        load_s.append(time.monotonic() - start)
        rtl = target.rtl
        assert rtl is not None
        try:
            make_verifier(target, settings).baseline()
            baseline = "ok"
        except EvoforgeError as exc:
            failed.append(f"{name}: {exc.message}")
            baseline = f"**{exc.message[:60]}**"
        clocks = ", ".join(f"{c.port} ({'/'.join(c.edges)})" for c in rtl.clocks) or "-"
        resets = []
        for r in rtl.resets:
            kind = "async" if r.asynchronous else "sync"
            kinds[kind] += 1
            resets.append(f"{r.port} ({kind}, {'low' if r.active_low else 'high'})")
        guesses = sum(n.startswith("guess") for n in rtl.notes)
        kinds["guess"] += guesses
        kinds["sequential"] += rtl.sequential
        kinds["several clocks"] += len(rtl.clocks) > 1
        rows.append(f"| {name} | {target.name} | {clocks} | {', '.join(resets) or '-'} | {baseline} |")
        print(rows[-1], file=sys.stderr)
    accepted = len(designs) - sum("refused by" in r for r in rows)
    loaded = len(load_s)
    lines = [
        SECTION,
        "",
        f"`.venv/bin/python bench/corpus_front.py{' --liberty ' + str(args.liberty) if args.liberty else ''}`"
        f" — {len(designs)} designs of `../shared/corpus/rtl` (RTLLM, VerilogEval).",
        "",
        f"- accepted by Icarus -g2012, Verilator -sv and Yosys -sv together: **{accepted}**",
        f"- loaded as targets: **{loaded}**; refused: {len(refused)}"
        + "".join(f"\n  - {r}" for r in refused),
        f"- originals passing their own baseline (parse, lint, synthesis, timing): **{loaded - len(failed)}**"
        + "".join(f"\n  - {f}" for f in failed),
        f"- sequential: {kinds['sequential']}; with several clocks: {kinds['several clocks']}; resets: "
        f"{kinds['async']} asynchronous, {kinds['sync']} synchronous; guesses reported: {kinds['guess']}",
        f"- median time to load a target (elaborate + clock analysis): {statistics.median(load_s):.2f} s"
        if load_s
        else "- no target loaded",
        "",
        "| design | top | clocks | resets | baseline |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
