"""Shared fixtures. Every jaxtyping annotation in the package is checked at run time in the tests
(shapes and dtypes, through beartype), so a wrong shape fails where it enters, not three calls later."""

from jaxtyping import install_import_hook

install_import_hook("workbench", "beartype.beartype")  # before the first import of workbench

import pytest  # noqa: E402

from workbench.models import tiny_model  # noqa: E402


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
