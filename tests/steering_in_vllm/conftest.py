from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    """Everything under tests/steering_in_vllm loads vLLM and the embedded model: marked vllm and slow."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.vllm)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def engine():
    """The embedded SmolLM2 in vLLM, float32, loaded once for every test here (~20 s on a CPU; each
    engine holds a quarter of the host's RAM for its KV cache, so one is all a 24 GB machine affords
    beside a Ray worker's). Small steps
    (48 tokens, 4 requests) make vLLM chunk prefills, queue requests and mix one request's prompt
    tokens with another's generated ones in a step: the token map is tested where it is hardest."""
    from workbench.vllm_engine import VLLMEngine

    return VLLMEngine("smollm2-135m-instruct", dtype="float32", max_num_batched_tokens=48, max_num_seqs=4)


@pytest.fixture(scope="module")
def french(smol):
    from workbench.store import cached_vector

    return cached_vector(smol, "french", n_pairs=32, progress=False)


@pytest.fixture(scope="module")
def one_sentence(smol):
    from workbench.store import cached_vector

    return cached_vector(smol, "one_sentence", n_pairs=32, progress=False)
