"""VLLMOptions are checked where they are built; vLLM's refusals of a memory setting become one line
naming the workbench's knobs (they were reported as "an unexpected error (a bug)"). No vLLM needed."""

import pytest

from workbench import WorkbenchError
from workbench.engines.vllm.options import VLLMOptions, memory_refusal

# vLLM 0.32's own messages (vllm/v1/core/kv_cache_utils.py), as it raises them
TOO_LONG = (
    "To serve at least one request with the model's max seq len (32768), (0.38 GiB KV cache is needed, which is "
    "larger than the available KV cache memory (0.12 GiB). Based on the available memory, the estimated maximum "
    "model length is 10432. Try increasing `gpu_memory_utilization` (which also controls CPU memory on the CPU "
    "backend) or decreasing `max_model_len` when initializing the engine. See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
)
NO_MEMORY = (
    "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the "
    "engine (this flag also controls CPU memory reservation on the CPU backend, despite its name). See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
)


LONGER_THAN_THE_MODEL = (  # vllm/config/model.py, inside pydantic's ValidationError (a ValueError)
    "1 validation error for ModelConfig\n  Value error, User-specified max_model_len (65536) is greater than the "
    "derived max_model_len (max_position_embeddings=8192 or model_max_length=None in model's config.json). To "
    "allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. VLLM_ALLOW_LONG_MAX_MODEL_LEN "
    "must be used with extreme caution."
)


def test_a_context_longer_than_the_model_is_not_called_a_memory_problem():
    err = memory_refusal(ValueError(LONGER_THAN_THE_MODEL), VLLMOptions(max_model_len=65536))
    text = str(err)
    assert text.startswith("vLLM refuses max_model_len=65536:") and "derived max_model_len" in text
    assert "KV cache" not in text and "VLLM_ALLOW_LONG" not in text and "\n" not in text


CPU_SHARE_TOO_SMALL = (  # vllm/v1/worker/cpu_worker.py, met with --vllm-memory 0.0001 on this machine
    "Available memory on node 0 (21.99/23.54 GiB) on kv cache allocation is less than requested memory for kv "
    "(-1.68/0.0 GiB). Reduce CPU memory used by other processes."
)
CPU_SHARE_TOO_LARGE = (  # the same file, at start-up
    "Available memory on node 0 (10.00/23.54 GiB) on startup is less than desired CPU memory utilization (0.92, "
    "21.66 GiB). On the CPU backend, the `--gpu-memory-utilization` flag controls the fraction of CPU memory "
    "reserved (despite its name). To resolve: decrease `--gpu-memory-utilization` (e.g. `--gpu-memory-utilization "
    "0.5`) or reduce CPU memory used by other processes."
)


@pytest.mark.parametrize("message", [TOO_LONG, NO_MEMORY, CPU_SHARE_TOO_SMALL, CPU_SHARE_TOO_LARGE])
def test_a_kv_cache_refusal_is_one_line_naming_the_knobs(message):
    options = VLLMOptions(gpu_memory_utilization=0.05, max_model_len=32768)
    err = memory_refusal(ValueError(message), options)
    assert isinstance(err, WorkbenchError)
    text = str(err)
    assert "\n" not in text and "https://" not in text
    assert "gpu_memory_utilization=0.05" in text and "max_model_len=32768" in text
    assert "--vllm-memory" in text and "--vllm-max-len" in text


def test_the_estimated_length_vllm_offers_survives():
    assert "estimated maximum model length is 10432" in str(memory_refusal(ValueError(TOO_LONG), VLLMOptions()))


@pytest.mark.parametrize("exc", [ValueError("shape mismatch in layer 3"), RuntimeError("KV cache: CUDA error")])
def test_other_errors_are_left_alone(exc):
    assert memory_refusal(exc, VLLMOptions()) is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("gpu_memory_utilization", 0.0),
        ("gpu_memory_utilization", 1.5),
        ("gpu_memory_utilization", -0.2),
        ("gpu_memory_utilization", float("nan")),
        ("max_model_len", 0),
        ("slots", 0),
    ],
)
def test_bad_options_are_refused_where_they_are_built(field, value):
    """Values of the right type but out of range (a wrong type is the type checker's, in tests too)."""
    with pytest.raises(WorkbenchError, match=field):
        VLLMOptions(**{field: value})


def test_good_options_are_kept():
    options = VLLMOptions(gpu_memory_utilization=1.0, max_model_len=2048, slots=2)
    assert (options.gpu_memory_utilization, options.max_model_len, options.slots) == (1.0, 2048, 2)


def test_the_cli_hands_the_memory_flags_to_vllm(monkeypatch, capsys):
    from workbench.apps.cli.main import main

    seen = {}

    def fake_use_vllm(model, **options):
        seen.update(options)
        raise WorkbenchError("stop here")  # the flags arrived; nothing more to run

    monkeypatch.setattr("workbench.engines.vllm.engine.import_vllm", lambda: None)
    monkeypatch.setattr("workbench.engines.vllm.engine.use_vllm", fake_use_vllm)
    argv = ["steer", "Hello", "--vector", "french@1:1", "--model", "tiny-random", "--engine", "vllm"]
    assert main([*argv, "--vllm-memory", "0.5", "--vllm-max-len", "4096"]) == 2
    assert seen == {"gpu_memory_utilization": 0.5, "max_model_len": 4096} and "stop here" in capsys.readouterr().err


def test_the_memory_flags_without_engine_vllm_are_refused_before_loading(monkeypatch, capsys):
    from workbench.apps.cli.main import main

    monkeypatch.setattr("workbench.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["steer", "Hello", "--vector", "french@1:1", "--vllm-max-len", "4096"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --vllm-max-len needs --engine vllm"] or (len(err) == 1 and "needs --engine vllm" in err[0])
    with pytest.raises(SystemExit) as stop:  # argparse's own refusal of a share out of range
        main(["steer", "Hello", "--vector", "french@1:1", "--engine", "vllm", "--vllm-memory", "0"])
    assert stop.value.code == 2 and "above 0" in capsys.readouterr().err
