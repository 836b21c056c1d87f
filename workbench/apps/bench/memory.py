"""Extraction's peak memory, measured in a fresh process (what grows with N, after a warm-up)."""

from __future__ import annotations

import subprocess
import sys

_PEAK_SCRIPT = """
import sys, threading, time
import torch
from workbench.models import load_model
from workbench.instructions import queries
from workbench.extract import record_last_token

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

m = load_model(sys.argv[1], device=sys.argv[3] or None, dtype=sys.argv[4])
qs = [q.text for q in queries()]
qs = (qs * (int(sys.argv[2]) // len(qs) + 1))[: int(sys.argv[2])]
record_last_token(m, qs[:16], batch_size=16)  # warm up allocator and kernels on one batch
if m.device.type == "cuda":  # the device's own peak: the RSS of the host says nothing
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    record_last_token(m, qs, batch_size=16)
    print((torch.cuda.max_memory_allocated() - base) / 1e6)
    sys.exit(0)
base, peak, done = rss(), [0], [False]

def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

t = threading.Thread(target=sample)
t.start()
record_last_token(m, qs, batch_size=16)
done[0] = True
t.join()
print((max(peak[0], rss()) - base) / 1e6)
"""


def extraction_peak(model_name: str, n: int, device: str | None, dtype: str) -> float:
    """Peak RSS growth (MB) while recording all layers for n prompts, in a fresh process, after a
    one-batch warm-up: what grows with n is the [n, layers, d_model] result, never a full cache."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, model_name, str(n), device or "", dtype],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])
