from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    """Everything under tests/steering_in_vllm loads vLLM and the embedded model: marked vllm and slow,
    and skipped with the reason where vLLM is not usable (asked once, only when such a test is collected)."""
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    missing = vllm_missing() if ours else None
    for item in ours:
        item.add_marker(pytest.mark.vllm)
        item.add_marker(pytest.mark.slow)
        if missing:
            item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture(scope="session")
def engine():
    """The embedded SmolLM2 in vLLM, float32, eager, loaded once for every test here (~20 s on a CPU),
    with a 2 GiB KV cache (an in-process engine otherwise takes a quarter of the host's RAM less what
    this process already holds). Small steps (48 tokens, 4 requests) make vLLM chunk prefills, queue
    requests and mix one request's prompt tokens with another's generated ones in a step: the token
    map is tested where it is hardest."""
    from workbench.engines.vllm.engine import VLLMEngine

    return VLLMEngine(
        "smollm2-135m-instruct",
        dtype="float32",
        max_num_batched_tokens=48,
        max_num_seqs=4,
        kv_cache_memory_bytes=2 << 30,
    )


@pytest.fixture(scope="session")
def compiled():
    """The same, compiled (``enforce_eager=False``: minutes on a CPU the first time, then vLLM's cache),
    with a 1 GiB KV cache. Session-scoped as well: closing an in-process vLLM engine tears down
    process-wide state the other engine still uses; so at most these two engines ever hold memory."""
    from workbench.engines.vllm.engine import VLLMEngine

    return VLLMEngine(
        "smollm2-135m-instruct",
        dtype="float32",
        enforce_eager=False,
        max_num_batched_tokens=48,
        max_num_seqs=4,
        kv_cache_memory_bytes=1 << 30,
    )


@pytest.fixture(scope="module")
def french(smol):
    from workbench.store import cached_vector

    return cached_vector(smol, "french", n_pairs=32, progress=False)


@pytest.fixture(scope="module")
def one_sentence(smol):
    from workbench.store import cached_vector

    return cached_vector(smol, "one_sentence", n_pairs=32, progress=False)


def vllm_missing() -> str | None:
    """Why vLLM cannot run here (the workbench's one-line reason), or None."""
    from workbench.engines.vllm.options import import_vllm
    from workbench.errors import WorkbenchError

    try:
        import_vllm()
    except WorkbenchError as exc:
        return str(exc)
    return None
