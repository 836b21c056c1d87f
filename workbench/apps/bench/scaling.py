"""Ray scaling: the same sweep batches in this process and on 1 and 2 local Ray workers."""

from __future__ import annotations

import os

from workbench.apps.bench.timing import best
from workbench.models import Model


def ray_scaling(model: Model, jobs) -> dict:
    """The same sweep batches in this process, then on 1 and on 2 local Ray workers (each run starts
    its workers and loads the model in them); empty without Ray."""
    try:
        import ray
    except ImportError:
        return {}
    from statistics import median

    from workbench.sweep.cluster import RayExecutor
    from workbench.sweep.executors import Local

    raw: dict[str, float] = {"ray_jobs": len(jobs), "ray_rows": sum(len(u.rows()) for units, _ in jobs for u in units)}
    raw["ray_local_s"] = best(lambda: list(Local().map(model, jobs)), 1)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for n in (1, 2):
            executor = RayExecutor(workers=n)
            raw[f"ray_wall_s_w{n}"] = best(lambda executor=executor: list(executor.map(model, jobs)), 1)
            raw[f"ray_startup_s_w{n}"] = max(executor.stats["startup_s"])
            raw[f"ray_dispatch_ms_w{n}"] = (
                1000 * median(executor.stats["dispatch_s"]) if executor.stats["dispatch_s"] else float("nan")
            )
    finally:
        if started:
            ray.shutdown()
    return raw
