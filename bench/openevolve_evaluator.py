"""OpenEvolve's evaluator for the issue-13 bench: evoforge's verifier scores the program.

Loaded by OpenEvolve 0.4.0 (in ``bench/.venv-openevolve``) from ``bench/openevolve_side.py``'s run.
``evaluate(path)`` posts the program to the evaluation server of that run
(``EVOFORGE_BENCH_EVAL_URL``), which runs evoforge's RTL cascade on it, and appends the seconds the
call took, as this worker saw them, to ``EVOFORGE_BENCH_EVAL_LOG``.
"""

import json
import os
import time
import urllib.request


def evaluate(program_path):
    start = time.monotonic()
    with open(program_path, encoding="utf-8") as handle:
        code = handle.read()
    request = urllib.request.Request(
        os.environ["EVOFORGE_BENCH_EVAL_URL"],
        data=json.dumps({"code": code}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        result = json.loads(response.read())
    with open(os.environ["EVOFORGE_BENCH_EVAL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"seconds": time.monotonic() - start}) + "\n")
    return {"combined_score": result["combined_score"], "accepted": result["accepted"]}
