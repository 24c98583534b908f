"""A real Ray cluster on 127.0.0.1 for tests and benchmarks: ``ray start --head`` plus worker nodes.

Each ``ray start`` runs with ``--block`` as a child of this process, with its own free ports and its
own temporary directory, so it never touches another Ray on the machine; ``stop()`` ends the
processes it started (by id: the ``ray start`` commands, then any Ray process still running from this
cluster's temporary directory). Workers inherit ``env`` (``EVOFORGE_DATA_DIR`` and the like).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRayCluster:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="efray-", dir="/tmp"))  # short: socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{self.client_port}"  # Ray Client
        self._taken = {self.port, self.client_port}
        # every process of the cluster inherits this marker: how stop() finds what it started
        self.marker = f"EVOFORGE_TEST_RAY_CLUSTER={self.temp}"
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
        self.env["EVOFORGE_TEST_RAY_CLUSTER"] = str(self.temp)
        self.env.pop("RAY_ADDRESS", None)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def _ports(self) -> list[str]:
        """Free ports for one node: a range of 41 worker ports and six others, none used by another
        component of the cluster (``ray start`` refuses a node whose ports overlap; a random port once
        fell inside the worker range)."""
        low = free_port()
        while self._taken & set(range(low, low + 41)):
            low = free_port()
        self._taken.update(range(low, low + 41))
        named = []
        for _ in range(6):
            port = free_port()
            while port in self._taken:
                port = free_port()
            self._taken.add(port)
            named.append(port)
        flags = ("node-manager", "object-manager", "dashboard-agent-listen", "dashboard-agent-grpc")
        flags += ("runtime-env-agent", "metrics-export")
        return [
            *(f"--{flag}-port={port}" for flag, port in zip(flags, named, strict=True)),
            f"--min-worker-port={low}",
            f"--max-worker-port={low + 40}",
        ]

    def _start(self, args: list[str], name: str) -> None:
        log = self.temp / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(RAY), "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.processes.append(process)
        self._wait_started(log, process)

    def start_head(self, *, cpus: int = 0, gpus: int = 0) -> None:
        self._start(
            [
                "--head",
                f"--port={self.port}",
                f"--ray-client-server-port={self.client_port}",
                f"--temp-dir={self.temp}",
                "--include-dashboard=false",
                f"--num-cpus={cpus}",
                f"--num-gpus={gpus}",
                "--object-store-memory=80000000",
                *self._ports(),
            ],
            "head",
        )

    def add_worker(self, *, cpus: int = 1, gpus: int = 0) -> None:
        """A worker node (``gpus`` are declared: Ray places GPU tasks by what a node declares)."""
        self._start(
            [
                f"--address={self.address}",
                f"--num-cpus={cpus}",
                f"--num-gpus={gpus}",
                "--object-store-memory=80000000",
                *self._ports(),
            ],
            f"worker{len(self.processes)}",
        )

    def alive_nodes(self) -> list[dict[str, object]]:
        """The cluster's live nodes, read from its GCS by a short-lived driver."""
        script = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False, "
            "configure_logging=False);"
            "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} for n in ray.nodes() "
            "if n['Alive']]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=self.env, timeout=180
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot list the nodes of {self.address}:\n{done.stderr[-2000:]}")
        return list(json.loads(done.stdout.strip().splitlines()[-1]))

    def _wait_started(self, log: Path, process: subprocess.Popen[bytes], timeout_s: float = 240.0) -> None:
        """Until ``ray start`` says the node runs (it prints this once its raylet is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if process.poll() is not None:
                raise RuntimeError(f"ray start exited early:\n{self.tail()}")
            time.sleep(0.5)
        raise RuntimeError(f"ray start did not finish in {timeout_s:.0f} s:\n{self.tail()}")

    def worker_pids(self) -> list[int]:
        """Ray worker processes of this cluster (Ray renames them ``ray::IDLE``, ``ray::run_task``)."""
        return [pid for pid, cmd in self._our_processes() if cmd.startswith("ray::") and "Agent" not in cmd]

    def _our_processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process that carries this cluster's marker."""
        found = []
        marker = self.marker.encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append((int(entry.name), cmd.strip()))
        return found

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs if log.exists()
        )

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first, then the head
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._our_processes():
            time.sleep(0.5)
        for pid, _ in self._our_processes():  # what ray start left behind, started by this cluster
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)
