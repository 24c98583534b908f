"""OpenEvolve 0.4.0 on the issue-13 reply stream, measured beside evoforge in the same bench run.

Used by ``bench/llm_economy.py``. OpenEvolve lives in its own bench-only venv
(``bench/.venv-openevolve``, made on first use from the pins in ``bench/openevolve-requirements.txt``;
it is not an evoforge dependency). It runs as ``openevolve-run`` in a child process against the same
scripted OpenAI-compatible server and the same reply stream, with ``max_iterations`` = the budget,
full rewrites (the stream replies with whole modules, not SEARCH/REPLACE diffs), no evaluator cascade
and one parallel evaluation.

Its evaluator (``openevolve_evaluator.py``, loaded by OpenEvolve) posts each program to an evaluation
server in this process, which runs evoforge's own verifier on it: ``RtlVerifier.verify`` — the full
RTL cascade (parse, lint, interface, simulate, equivalence, synthesis, timing), stopping at the first
failure, in the verifier's sandboxed children, with the original's baseline measured once beforehand
(not counted, as evoforge does not count it either). So both sides pay the same price per stage.
The verifier is kept across evaluations, so OpenEvolve also gets evoforge's reuse of timing for an
implementation already seen — which only lowers OpenEvolve's figure.

Counted per evaluation: the stage seconds (the same accounting as evoforge's stored stage runs) and
the evaluation's wall seconds in the server; the evaluator's own seconds as OpenEvolve's worker saw
them (HTTP included) come from a log the evaluator writes. An evaluation repeats an earlier one
exactly (same source hash) or renamed (same canonical hash, different source).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-openevolve"
REQUIREMENTS = HERE / "openevolve-requirements.txt"
EVALUATOR = HERE / "openevolve_evaluator.py"
VERSION = "0.4.0"


def ensure_venv() -> Path:
    """The venv's ``openevolve-run``, installing the pinned OpenEvolve first when it is missing."""
    run = VENV / "bin" / "openevolve-run"
    python = VENV / "bin" / "python"
    if run.exists() and _installed_version(python) == VERSION:
        return run
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # the pinned set, resolved once (pip freeze of `pip install openevolve==0.4.0`); no extra resolution
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)], check=True
    )
    if _installed_version(python) != VERSION:
        raise SystemExit(f"{VENV}: openevolve {VERSION} did not install; remove the venv and retry")
    return run


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('openevolve'))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass
class Evaluation:
    source: str
    source_hash: str
    canonical_hash: str | None
    stage: str
    accepted: bool
    stage_seconds: float  # sum of the stage results' seconds (evoforge's accounting)
    wall_seconds: float  # the verify call in the evaluation server
    repeat: str = ""  # "" new | "exact" | "renamed"
    original: bool = False  # OpenEvolve's evaluation of its initial program


@dataclass
class OpenEvolveRun:
    iterations: int
    requests: int
    evaluations: list[Evaluation] = field(default_factory=list)
    evaluator_wall_seconds: float = 0.0  # as OpenEvolve's worker timed its evaluate() calls
    wall_seconds: float = 0.0
    returncode: int = 0

    def seconds(self, *, original: bool | None = None, repeat: set[str] | None = None) -> float:
        return sum(
            e.stage_seconds
            for e in self.evaluations
            if (original is None or e.original == original) and (repeat is None or e.repeat in repeat)
        )

    @property
    def evaluator_seconds(self) -> float:
        """Stage seconds of every evaluation OpenEvolve asked for, its initial program's included."""
        return self.seconds()

    @property
    def duplicate_seconds(self) -> float:
        return self.seconds(repeat={"exact", "renamed"})


class EvaluationServer:
    """Loopback HTTP: ``POST /evaluate`` {"code"} → evoforge's verdict on it, each one logged."""

    def __init__(self, target: Any, settings: Any, original: str) -> None:
        from evoforge.domain import source_hash
        from evoforge.search import jobs
        from evoforge.search.canonical import canonical_hash

        self.target = target
        self.verifier = jobs.make_verifier(target, settings)
        self.baseline = self.verifier.baseline()  # once, before any evaluation, as evoforge's job does
        self.evaluations: list[Evaluation] = []
        seen_source: set[str] = set()
        seen_canonical: set[str] = set()
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                code = str(body.get("code", ""))
                with lock:  # one evaluation at a time, as OpenEvolve is configured
                    start = time.monotonic()
                    verdict = server.verifier.verify(code, label="openevolve")
                    wall = time.monotonic() - start
                    digest, canonical = source_hash(code), canonical_hash(code, target)
                    repeat = (
                        "exact"
                        if digest in seen_source
                        else "renamed"
                        if canonical is not None and canonical in seen_canonical
                        else ""
                    )
                    seen_source.add(digest)
                    if canonical is not None:
                        seen_canonical.add(canonical)
                    server.evaluations.append(
                        Evaluation(
                            code,
                            digest,
                            canonical,
                            verdict.stage,
                            verdict.accepted,
                            sum(s.seconds for s in verdict.stages),
                            wall,
                            repeat,
                            original=code.strip() == original.strip(),
                        )
                    )
                payload = json.dumps(server.metrics(verdict)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def metrics(self, verdict: Any) -> dict[str, Any]:
        """OpenEvolve's score: the original's area over the candidate's when accepted, else 0."""
        base = self.baseline.metrics.area_um2
        area = verdict.metrics.area_um2
        score = float(base) / float(area) if verdict.accepted and base and area else 0.0
        return {"combined_score": score, "accepted": 1.0 if verdict.accepted else 0.0, "stage": verdict.stage}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/evaluate"

    def __enter__(self) -> EvaluationServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


CONFIG = """\
# OpenEvolve {version} on the issue-13 stream (written by bench/openevolve_side.py)
max_iterations: {iterations}
checkpoint_interval: 1000
log_level: INFO
log_dir: {log_dir}
random_seed: 42
language: verilog
file_suffix: .v
diff_based_evolution: false
llm:
  api_base: {api_base}
  api_key: sk-scripted
  models:
    - name: {model}
      weight: 1.0
  temperature: 0.7
  max_tokens: 4096
  timeout: 30
  retries: 0
  retry_delay: 1
database:
  in_memory: true
  random_seed: 42
evaluator:
  timeout: 300
  max_retries: 0
  cascade_evaluation: false
  parallel_evaluations: 1
  use_llm_feedback: false
"""


def run_openevolve(work: Path, iterations: int, settings: Any) -> OpenEvolveRun:
    """``openevolve-run`` on ``addsel`` with the scripted stream, evaluated by evoforge's verifier."""
    from economy_stream import ADDSEL, STREAM
    from openai_script import MODEL, ScriptedServer

    from evoforge.verifiers.rtl.target import RtlTargetOptions, load_rtl_target

    run_cli = ensure_venv()
    work.mkdir(parents=True, exist_ok=True)
    design = work / "addsel.v"
    design.write_text(ADDSEL)
    target = load_rtl_target([design], RtlTargetOptions(), workdir=work)
    eval_log = work / "evaluator-seconds.jsonl"
    with ScriptedServer(cycle=list(STREAM)) as llm, EvaluationServer(target, settings, ADDSEL) as evaluator:
        config = work / "config.yaml"
        config.write_text(
            CONFIG.format(
                version=VERSION,
                iterations=iterations,
                log_dir=work / "logs",
                api_base=llm.url,
                model=MODEL,
            )
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "OPENAI_API_KEY": "sk-scripted",
            "EVOFORGE_BENCH_EVAL_URL": evaluator.url,
            "EVOFORGE_BENCH_EVAL_LOG": str(eval_log),
        }
        start = time.monotonic()
        done = subprocess.run(
            [
                str(run_cli),
                str(design),
                str(EVALUATOR),
                "--config",
                str(config),
                "--iterations",
                str(iterations),
                "--output",
                str(work / "out"),
            ],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - start
        (work / "openevolve.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(
                f"openevolve-run failed ({done.returncode}); see {work / 'openevolve.log'}:\n"
                + (done.stdout + done.stderr)[-2000:]
            )
        requests = len(llm.log)
        evaluations = list(evaluator.evaluations)
    worker_seconds = 0.0
    if eval_log.exists():
        worker_seconds = sum(json.loads(line)["seconds"] for line in eval_log.read_text().splitlines())
    return OpenEvolveRun(iterations, requests, evaluations, worker_seconds, wall, done.returncode)
