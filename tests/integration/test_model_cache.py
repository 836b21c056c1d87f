"""The embedded model's cache under concurrency: two first loads at once both succeed and share one
folder; a temp folder left by a killed build is cleaned by the next one (regression: one load
crashed with `OSError: Directory not empty` and left a 517 MB temp folder)."""

import os
import subprocess
import sys

BUILD = "from workbench.models import dequantized_folder; print(dequantized_folder('smollm2-135m-instruct'))"


def test_two_first_loads_at_once_share_one_folder(tmp_path):
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    models = tmp_path / "models"
    models.mkdir()
    stale = models / ".smollm2-135m-instruct.killed"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a file")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    assert len({out.strip() for out, _ in results}) == 1
    leftovers = sorted(p.name for p in models.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))
    assert leftovers == [] and (models / "smollm2-135m-instruct" / "config.json").exists()
