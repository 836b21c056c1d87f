import pytest

from workbench.models import tiny_model


@pytest.fixture(scope="session")
def tiny():
    """A randomly initialised 4-layer, 64-wide Llama: no weights, loads in about a second."""
    return tiny_model()


@pytest.fixture(scope="session")
def smol():
    """The embedded SmolLM2-135M-Instruct (integration tests)."""
    from workbench.models import load_model

    return load_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_vector(tiny):
    from workbench.extract import compute_vector

    return compute_vector(tiny, "one_sentence", n_pairs=12)
