"""Load on the web service while a job runs: API reads from concurrent clients, concurrent submissions.

Starts ``evoforge serve`` (free loopback port, embedded worker) and ``--workers - 1`` ``evoforge worker``
processes on a fresh SQLite database in a temporary directory, submits one job and waits until it runs,
then fires ``--reads`` API reads from ``--clients`` concurrent clients and ``--submissions``
concurrent submissions. Every submission must be stored and complete, no response may be an error;
median and p95 latency are reported, and ``--doc`` writes them to docs/benchmarks.md.

With ``--attacks`` the same burst runs a second time with an attack mix beside it (issue 11):
cross-origin form posts and ``text/plain`` cancels (must be 403/415), chunked uploads of up to
``--attack-mb`` MiB with no Content-Length (must be cut off: 413 or a closed connection), and
macro bombs submitted as designs (stored at once; the workers load them, under a short tool
timeout). Normal reads must keep their median and p95 within 2x of the run without attacks, no
normal request may get a 5xx and every normal submission must be stored and succeed.

    .venv/bin/python bench/web_load.py --attacks --doc
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

#: the submitted design (shared with the tests: four additions, one per operation code)
ADDSEL = (Path(__file__).resolve().parents[1] / "tests/fixtures/rtl_small/addsel.v").read_text()
FINISHED = {"succeeded", "failed", "cancelled"}
ATTACKS = 40


def macro_bomb(levels: int = 40) -> str:
    """A ~1 KB design whose macro expands to 2**levels tokens."""
    lines = ["`define A0 x"] + [f"`define A{i} `A{i - 1} `A{i - 1}" for i in range(1, levels)]
    return "\n".join(lines) + f"\nmodule top(input x, output y);\n  assign y = `A{levels - 1};\nendmodule\n"


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
    parser.add_argument("--attacks", action="store_true", help="a second burst with the attack mix beside it")
    parser.add_argument("--attack-mb", type=int, default=64, help="MiB each chunked upload offers")
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
        "EVOFORGE_RTL__TOOL_TIMEOUT_S": "20",  # a macro bomb costs a worker 20 s, not 5 minutes
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
    form = {"source": ADDSEL, "budget": args.budget, "proposer": "offline"}

    first = client.post("/api/jobs", json=form | {"budget": 12}).json()["job_id"]
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
            response = c.post("/api/jobs", json=form)
            elapsed = time.perf_counter() - start
        with lock:
            submit_latency.append(elapsed)
            if response.status_code != 201:
                errors.append(f"POST /api/jobs: {response.status_code} {response.text[:200]}")
            else:
                submitted.append(int(response.json()["job_id"]))

    attack_results: list[str] = []

    def attack(i: int) -> None:
        kind = i % 4
        with httpx.Client(base_url=base, timeout=120) as c:
            try:
                if kind == 0:
                    r = c.post("/jobs", data={"source": ADDSEL}, headers={"origin": "http://evil.example"})
                    outcome = "refused" if r.status_code == 403 else f"cross-origin form {r.status_code}"
                elif kind == 1:
                    r = c.post(
                        f"/api/jobs/{first}/cancel", content=b"{}", headers={"content-type": "text/plain"}
                    )
                    outcome = (
                        "refused" if r.status_code in (403, 415) else f"text/plain cancel {r.status_code}"
                    )
                elif kind == 2:
                    chunk = b"x" * 65536
                    body = (chunk for _ in range(args.attack_mb * 16))
                    r = c.post("/api/jobs", content=body, headers={"content-type": "application/json"})
                    outcome = "refused" if r.status_code == 413 else f"chunked upload {r.status_code}"
                else:
                    r = c.post("/api/jobs", json={"source": macro_bomb(), "proposer": "offline"})
                    outcome = "stored" if r.status_code == 201 else f"macro bomb {r.status_code}"
            except httpx.TransportError:
                outcome = "refused" if kind == 2 else "transport error"
        with lock:
            attack_results.append(outcome)

    def run_burst(with_attacks: bool) -> tuple[list[float], float]:
        read_latency.clear()
        started = time.perf_counter()
        with (
            ThreadPoolExecutor(max_workers=args.clients) as readers,
            ThreadPoolExecutor(max_workers=args.submissions) as writers,
            ThreadPoolExecutor(max_workers=8) as attackers,
        ):
            futures = [writers.submit(submit, i) for i in range(args.submissions)]
            if with_attacks:
                futures += [attackers.submit(attack, i) for i in range(ATTACKS)]
            futures += [readers.submit(read, i) for i in range(args.reads)]
            for future in futures:
                future.result()
        return list(read_latency), time.perf_counter() - started

    plain_reads, burst_s = run_burst(False)
    attacked_reads: list[float] = []
    if args.attacks:
        attacked_reads, _ = run_burst(True)
    started = time.perf_counter() - burst_s
    read_latency[:] = plain_reads

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
        f"submissions: {len(submitted)}/{args.submissions * (2 if args.attacks else 1)} stored "
        f"({args.submissions} a burst), "
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
    expected = args.submissions * (2 if args.attacks else 1)
    ok = not errors and not not_ok and len(submitted) == expected
    if args.attacks:
        outcomes = dict(sorted({o: attack_results.count(o) for o in set(attack_results)}.items()))
        median_x = statistics.median(attacked_reads) / statistics.median(plain_reads)
        p95_x = percentile(attacked_reads, 0.95) / percentile(plain_reads, 0.95)
        bad = [o for o in attack_results if o not in ("refused", "stored")]
        lines += [
            f"with the attack mix beside the same burst ({ATTACKS} attacks: cross-origin forms, text/plain "
            f"cancels, {args.attack_mb} MiB chunked uploads, macro bombs): reads median "
            f"{ms(statistics.median(attacked_reads))} ({median_x:.2f}x the burst without attacks), "
            f"p95 {ms(percentile(attacked_reads, 0.95))} ({p95_x:.2f}x); attack outcomes {outcomes}",
        ]
        ok = ok and not bad and median_x <= 2.0 and p95_x <= 2.0
        print(lines[-1])
    load = os.getloadavg()
    lines.append(
        f"machine load average while measuring: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"
    )
    print(lines[-1])
    if not_ok:
        print("  not succeeded:", not_ok)
    if args.doc:
        write_section(
            "## Web service under load",
            "## Web service under load\n\n"
            f"`.venv/bin/python bench/web_load.py{' --attacks' if args.attacks else ''} --doc` — "
            "while a job runs, "
            f"{args.reads} API/page reads from {args.clients} concurrent clients and {args.submissions} "
            f"concurrent submissions (the ADDSEL design, budget {args.budget}, offline proposer) against "
            f"`evoforge serve` on loopback, SQLite, {args.workers} workers, {os.cpu_count()} cores.\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + f"\n- verdict: {'PASS' if ok else 'FAIL'}\n",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
