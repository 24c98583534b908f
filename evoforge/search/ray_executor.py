"""The Ray executor: evaluation tasks on a Ray cluster.

``RayExecutor(address=…)`` connects to a running cluster (``ray://HOST:10001`` through Ray Client,
``auto`` or ``HOST:6379`` from a machine of the cluster) or, with no address, starts a local one
for this process. Each task is ``executor.run_task`` as a Ray task asking for the resources its
cascade declares (``task_resources``: a GPU job's tasks go only to nodes with a GPU). At most
``parallel`` tasks (the job's ``--workers``) are in flight, whatever runs them.

Faults: a task whose worker process dies (killed, out of memory, its node lost) is retried by Ray up
to ``max_retries`` times; the retry takes a new attempt on the candidate, which discards the stage
rows of the dead one (``store/attempts.py``). Exceptions raised by the task itself are not retried:
they come back to the loop as the candidate's outcome. A GPU task on a cluster without any GPU is
refused before it is submitted, instead of waiting forever for a node that never comes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from evoforge.errors import ConfigError, ExecutorError
from evoforge.search.executor import Capabilities, EvaluationTask, Finished, run_task

log = logging.getLogger(__name__)

RAY_HINT = "install the ray extra (pip install 'evoforge[ray]'; ray==2.60.0 on every node)"
#: how often Ray runs a task again after its worker process died
MAX_RETRIES = 3


class RayExecutor:
    name = "ray"

    def __init__(self, *, address: str | None = None, max_retries: int = MAX_RETRIES) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(f"--executor ray needs Ray ({exc})", hint=RAY_HINT) from exc
        self._ray = ray
        self.address = address
        self._started_here = False
        self.roundtrip_s: dict[int, float] = {}  # per candidate: submission to outcome, here
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address or None,
                    namespace="evoforge",
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError from a bad address
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {address or '(a new local cluster)'}: {exc}",
                    hint="start one with `ray start --head` (see docs/deploy.md), or pass "
                    "--ray-address ray://HOST:10001 / auto",
                ) from exc
            self._started_here = True
        self._task = ray.remote(run_task)
        self.max_retries = max_retries

    def capabilities(self) -> Capabilities:
        resources = self._ray.cluster_resources()
        nodes = sum(1 for n in self._ray.nodes() if n.get("Alive"))
        return Capabilities(
            gpus=int(resources.get("GPU", 0)),
            where=f"Ray cluster ({nodes} node(s), {resources.get('CPU', 0):g} CPUs)",
        )

    def _submit(self, task: EvaluationTask) -> Any:
        if task.resources.gpus and not self.capabilities().gpus:
            raise ConfigError(
                "this job must be timed on a GPU and no node of the Ray cluster has one",
                hint="add a GPU node (`ray start --address HEAD:6379 --num-gpus 1`, docs/deploy.md)",
            )
        options = self._task.options(
            num_cpus=task.resources.cpus,
            num_gpus=task.resources.gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )
        return options.remote(task)

    def run(self, tasks: Sequence[EvaluationTask], *, parallel: int) -> Iterator[Finished]:
        ray = self._ray
        waiting = list(tasks)
        in_flight: dict[Any, tuple[EvaluationTask, float]] = {}
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < max(1, parallel):
                    task = waiting.pop(0)
                    in_flight[self._submit(task)] = (task, time.perf_counter())
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    task, submitted = in_flight.pop(ref)
                    outcome = self._result(ref, task)
                    self.roundtrip_s[task.candidate_id] = time.perf_counter() - submitted
                    yield task, outcome
        finally:
            for ref in in_flight:  # the loop stopped early (lease lost, interrupted): stop the rest
                with contextlib.suppress(Exception):  # already finished, or its worker is gone
                    ray.cancel(ref, force=True)

    def _result(self, ref: Any, task: EvaluationTask) -> Any:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task raised: hand over its own exception
            cause = exc.as_instanceof_cause()
            return cause if isinstance(cause, BaseException) else exc
        except ray.exceptions.RayError as exc:  # worker died past its retries, node lost, cancelled
            return ExecutorError(
                f"the Ray task evaluating candidate {task.candidate_id} did not return: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="see the Ray logs of the cluster (/tmp/ray/session_latest/logs on its nodes)",
            )

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
