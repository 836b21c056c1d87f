"""A sweep on Ray actors (a local Ray instance, two one-CPU workers, the tiny model) gives the local
run's rows exactly; a worker killed mid-batch costs that batch only; a driver interrupted mid-run
resumes. Skipped without the ``ray`` extra."""

import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
from tqdm.auto import tqdm

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'workbench[ray]'")

from ray import cloudpickle  # noqa: E402  (Ray's own copy: the one that pickles tasks)

from workbench.models import TINY_MODEL, tiny_model  # noqa: E402
from workbench.sweep import SweepConfig, run_sweep  # noqa: E402
from workbench.sweep.cluster import RayExecutor  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module

CONFIG = dict(
    model=TINY_MODEL,
    instructions=("one_sentence", "lowercase"),
    layers=(1, 2),
    coefficients=(1.0, 4.0),
    n_train=8,
    n_prompts=3,
    max_new_tokens=6,
)


def load_tiny(device):
    return tiny_model()  # the `tiny` fixture's weights (seed 0)


def judge(prompt: str, response: str) -> float:
    return (len(response) % 7) / 7


class KillOnce:
    """A judge whose worker process kills itself (SIGKILL) the first time it scores, mid-batch."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __call__(self, prompt: str, response: str) -> float:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return judge(prompt, response)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return run_sweep(tiny, SweepConfig(**CONFIG), out, progress=False, judge=judge, rows_per_batch=12).table


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.slow  # Ray clusters of real worker processes (20-200 s each): make test runs them, make test-fast not
@pytest.mark.parametrize("workers", [1, 2])
def test_ray_rows_equal_local_rows(cluster, tiny, local, tmp_path, workers):
    executor = RayExecutor(workers=workers, load=load_tiny)
    table = run_sweep(
        tiny, SweepConfig(**CONFIG), tmp_path, progress=False, judge=judge, rows_per_batch=12, executor=executor
    ).table
    _same(table, local)
    assert executor.stats["workers"] == workers and executor.stats["retries"] == 0
    assert f"on {workers} Ray workers" in executor.summary()


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_only_that_batch(cluster, tiny, local, tmp_path):
    executor = RayExecutor(workers=2, load=load_tiny)
    table = run_sweep(
        tiny,
        SweepConfig(**CONFIG),
        tmp_path / "out",
        progress=False,
        judge=KillOnce(tmp_path / "killed"),
        rows_per_batch=12,
        executor=executor,
    ).table
    assert (tmp_path / "killed").exists() and executor.stats["retries"] == 1
    _same(table, local)  # every unit once: no duplicate rows, none missing
    assert (
        len(list((tmp_path / "out" / "units").glob("*.jsonl")))
        == local.groupby(["instruction", "with_instruction", "layer"], dropna=False).ngroups
    )


class StopAfter(tqdm):
    """A progress bar that interrupts the driver after ``n`` updates, as Ctrl-C would."""

    def __init__(self, n: int):
        super().__init__(disable=True)
        self.n = n

    def update(self, k: int) -> None:
        if k and self.n == 0:
            raise KeyboardInterrupt
        self.n -= bool(k)


@pytest.mark.slow
def test_an_interrupted_driver_resumes_to_the_local_table(cluster, tiny, local, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            tiny,
            SweepConfig(**CONFIG),
            tmp_path,
            judge=judge,
            rows_per_batch=12,
            bar=StopAfter(2),
            executor=RayExecutor(workers=2, load=load_tiny),
        )
    done = len(list((tmp_path / "units").glob("*.jsonl")))
    assert 0 < done < local.groupby(["instruction", "with_instruction", "layer"], dropna=False).ngroups
    _same(
        run_sweep(
            tiny,
            SweepConfig(**CONFIG),
            tmp_path,
            progress=False,
            judge=judge,
            rows_per_batch=12,
            executor=RayExecutor(workers=2, load=load_tiny),
        ).table,
        local,
    )


def test_without_ray_a_one_line_error_names_the_extra(monkeypatch):
    from workbench.errors import WorkbenchError
    from workbench.sweep.cluster import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(WorkbenchError, match=r"pip install 'workbench\[ray\]'"):
        require_ray()


def test_cli_ray_flag_without_ray_fails_in_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    from workbench.apps.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "sweep"
    assert main(["sweep", "one_sentence", "--model", TINY_MODEL, "--ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'workbench[ray]'" in err[0] and not out.exists()


@pytest.mark.parametrize(
    "argv, address, workers", [(["--ray"], None, None), (["--ray", "auto", "--ray-workers", "8"], "auto", 8)]
)
def test_cli_ray_flag_reaches_the_executor(argv, address, workers):
    from workbench.apps.cli.commands import _executor
    from workbench.apps.cli.main import build_parser

    for command in (["sweep", "one_sentence"], ["evaluate", "--data", "x.jsonl"], ["demo"]):
        executor = _executor(build_parser().parse_args(command + argv))
        assert isinstance(executor, RayExecutor) and (executor.address, executor.workers) == (address, workers)
