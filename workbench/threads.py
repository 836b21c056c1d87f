"""CPU threads for torch: a default that leaves a shared machine room to breathe.

Torch starts one thread per physical core. Its threads meet at a barrier after every operation, so
when another process holds one of those cores the whole step waits for that thread's next time
slice: on a shared 2-core VM, 16 new tokens took 9.5-15.7 s on torch's 2 threads under load and
2.1 s on one thread.
"""

from __future__ import annotations

import os

import torch

from workbench.errors import WorkbenchError

MAX_DEFAULT_THREADS = 8  # the default's cap (see default_threads)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: taskset, a container's cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(cpus: int) -> int:
    """Half the usable CPUs, at least 1, at most ``MAX_DEFAULT_THREADS``.

    Half: on a shared 2-core box, one thread, so a busy neighbour costs us a core rather than a
    barrier stall every operation; on an SMT workstation, half the logical CPUs is about its
    physical cores, torch's own choice. The cap of 8 (a judgement, not measured here): a 32-core
    workstation is seldom idle, and a decode step of the 0.1-1B models this runs on a CPU is bound
    by memory bandwidth, which a few cores already draw. A big batched sweep on an idle machine
    can ask for more (``WORKBENCH_THREADS``).
    """
    return max(1, min(MAX_DEFAULT_THREADS, cpus // 2))


def set_cpu_threads(device: str | torch.device | None = None) -> int | None:
    """Set torch's thread count: ``$WORKBENCH_THREADS`` if set; else, on a CPU, ``default_threads``
    unless the user chose ``OMP_NUM_THREADS`` (torch already honours it). Returns the count set, or
    None where nothing was changed (a GPU, or the user's OMP_NUM_THREADS)."""
    asked = os.environ.get("WORKBENCH_THREADS", "").strip()
    if asked:
        try:
            n = int(asked)
        except ValueError:
            n = 0
        if n < 1:
            raise WorkbenchError(f"WORKBENCH_THREADS must be a positive whole number, got {asked!r}")
    elif os.environ.get("OMP_NUM_THREADS") or (device is not None and torch.device(device).type != "cpu"):
        return None
    else:
        n = default_threads(usable_cpus())
    torch.set_num_threads(n)
    return n
