"""Test tiers: fast by default; `--runslow` adds the slow tier (make test passes it).
Every session gets a fresh, empty results store, so nothing is loaded from an earlier run."""
import os
import tempfile

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer tests (training on a CPU); run with --runslow")
    os.environ["GROKCIRCUITS_RESULTS"] = tempfile.mkdtemp(prefix="grokcircuits-test-results-")
    os.environ.setdefault("GROKCIRCUITS_DEVICE", "cpu")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow tier: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """Toy models are far too small to gain from threads, and on a CPU shared with other work spinning
    threads make each step many times slower."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
