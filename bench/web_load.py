"""Load on the web service while a job runs: API reads from concurrent clients, concurrent submissions.

Starts ``evoforge serve`` (free loopback port, embedded worker) and ``--workers - 1`` ``evoforge worker``
processes on a fresh SQLite database in a temporary directory, submits one job and waits until it runs,
then fires ``--reads`` API reads from ``--clients`` concurrent clients and ``--submissions``
concurrent submissions. Every submission must be stored and complete, no response may be an error;
median and p95 latency are reported, and ``--doc`` writes them to docs/benchmarks.md.

    .venv/bin/python bench/web_load.py --doc
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import write_section

ADDSEL = """\
module addsel(input [2:0] op, input [15:0] a, b, c, d, output reg [16:0] y);
  always @* begin
    if (op == 3'd0) y = a + b;
    else if (op == 3'd1) y = c + d;
    else if (op == 3'd2) y = a + d;
    else y = b + c;
  end
endmodule
"""
FINISHED = {"succeeded", "failed", "cancelled"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--submissions", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="job workers (the embedded one included)")
    parser.add_argument("--budget", type=int, default=3, help="budget of each submitted job")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every job")
    parser.add_argument("--doc", action="store_true", help="write the result to docs/benchmarks.md")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="evoforge-web-load-"))
    env = {
        **os.environ,
        "EVOFORGE_DATA_DIR": str(data),
        "EVOFORGE_DB": f"sqlite:///{data / 'load.db'}",
        "EVOFORGE_RTL__SIM_CYCLES": "1000",
        "EVOFORGE_RTL__SIM_SEEDS": "1",
        "EVOFORGE_RTL__PROBE_CYCLES": "300",
        "EVOFORGE_WEB__POLL_S": "0.2",
    }
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = [sys.executable, "-m", "evoforge.cli"]
    logs = open(data / "service.log", "w")  # noqa: SIM115 (closed with the processes)
    processes = [
        subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, stderr=logs),
        *(subprocess.Popen([*cli, "worker"], env=env, stderr=logs) for _ in range(args.workers - 1)),
    ]
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=120)
    for _ in range(300):
        try:
            client.get("/api/jobs")
            break
        except httpx.TransportError:
            time.sleep(0.1)
    form = {"source": ADDSEL, "budget": str(args.budget), "proposer": "offline"}

    first = client.post("/api/jobs", data=form | {"budget": "12"}).json()["job_id"]
    while client.get(f"/api/jobs/{first}").json()["status"] == "queued":
        time.sleep(0.1)

    errors: list[str] = []
    read_latency: list[float] = []
    submit_latency: list[float] = []
    submitted: list[int] = []
    lock = threading.Lock()
    paths = ["/api/jobs", f"/api/jobs/{first}", f"/api/jobs/{first}/candidates", f"/jobs/{first}"]

    def read(i: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            start = time.perf_counter()
            response = c.get(paths[i % len(paths)])
            elapsed = time.perf_counter() - start
        with lock:
            read_latency.append(elapsed)
            if response.status_code != 200:
                errors.append(f"GET {paths[i % len(paths)]}: {response.status_code}")

    def submit(_: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            start = time.perf_counter()
            response = c.post("/api/jobs", data=form)
            elapsed = time.perf_counter() - start
        with lock:
            submit_latency.append(elapsed)
            if response.status_code != 201:
                errors.append(f"POST /api/jobs: {response.status_code} {response.text[:200]}")
            else:
                submitted.append(int(response.json()["job_id"]))

    started = time.perf_counter()
    with (
        ThreadPoolExecutor(max_workers=args.clients) as readers,
        ThreadPoolExecutor(max_workers=args.submissions) as writers,
    ):
        futures = [writers.submit(submit, i) for i in range(args.submissions)]
        futures += [readers.submit(read, i) for i in range(args.reads)]
        for future in futures:
            future.result()
    burst_s = time.perf_counter() - started

    deadline = time.monotonic() + args.timeout
    statuses: dict[int, str] = {}
    while time.monotonic() < deadline:
        listed = client.get("/api/jobs", params={"limit": 500}).json()["jobs"]
        jobs = {j["job_id"]: j["status"] for j in listed}
        statuses = {j: jobs.get(j, "missing") for j in [first, *submitted]}
        if all(s in FINISHED or s == "missing" for s in statuses.values()):
            break
        time.sleep(0.5)
    all_done_s = time.perf_counter() - started
    idle: list[float] = []  # the same reads once every job has finished: the cost without the load
    for i in range(40):
        t0 = time.perf_counter()
        client.get(paths[i % len(paths)])
        idle.append(time.perf_counter() - t0)
    for process in processes:
        process.terminate()
        process.wait(timeout=30)
    logs.close()

    not_ok = {j: s for j, s in statuses.items() if s != "succeeded"}
    lines = [
        f"reads: {len(read_latency)} from {args.clients} concurrent clients, "
        f"median {ms(statistics.median(read_latency))}, p95 {ms(percentile(read_latency, 0.95))}",
        f"submissions: {len(submitted)}/{args.submissions} stored, "
        f"median {ms(statistics.median(submit_latency))}, p95 {ms(percentile(submit_latency, 0.95))}",
        f"the same reads with no job running: median {ms(statistics.median(idle))}, "
        f"p95 {ms(percentile(idle, 0.95))} (under load the 2 cores are busy simulating and synthesising)",
        f"error responses: {len(errors)}",
        f"jobs succeeded: {sum(1 for s in statuses.values() if s == 'succeeded')}/{len(statuses)} "
        f"(the running one + the submitted), all finished {all_done_s:.1f} s after the burst began "
        f"(burst itself {burst_s:.1f} s; {args.workers} workers, budget {args.budget})",
    ]
    for line in lines:
        print(line)
    for error in errors[:10]:
        print("  error:", error)
    ok = not errors and not not_ok and len(submitted) == args.submissions
    if not_ok:
        print("  not succeeded:", not_ok)
    if args.doc:
        write_section(
            "## Web service under load",
            "## Web service under load\n\n"
            "`.venv/bin/python bench/web_load.py --doc` — while a job runs, "
            f"{args.reads} API/page reads from {args.clients} concurrent clients and {args.submissions} "
            f"concurrent submissions (the ADDSEL design, budget {args.budget}, offline proposer) against "
            f"`evoforge serve` on loopback, SQLite, {args.workers} workers, {os.cpu_count()} cores.\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + f"\n- verdict: {'PASS' if ok else 'FAIL'}\n",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
