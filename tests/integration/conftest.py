import pytest


def pytest_collection_modifyitems(items):
    """Everything under tests/integration runs the embedded model: marked slow (`-m "not slow"` skips it)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.slow)
