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
    # the tests train tiny runs into that fresh store: a no-train mode left in the shell (`make book`
    # exports it at the cpu profile) must not reach them; tests of that mode set it themselves
    os.environ.pop("GROKCIRCUITS_NO_TRAIN", None)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow tier: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadscope` (make test: two pytest-xdist workers) every golden notebook's cells run
    on one worker, in order, in that worker's one results store: chapter 04 reads the runs chapters
    00-03 trained. Every other test module goes to whichever worker is free. (A scheduler, not
    `xdist_group` marks: pytest 9.2 ignores the node-id suffix `--dist loadgroup` relies on.)"""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GoldenNotebooksTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid) or super()._split_scope(nodeid)

    return GoldenNotebooksTogether(config, log)


def xdist_scope(nodeid: str) -> str | None:
    """The one scope of every golden notebook's cells; None for any other test (its module's scope)."""
    return "golden notebooks" if nodeid.split("::", 1)[0].endswith(".ipynb") else None


@pytest.fixture
def one_thread():
    """Toy models are far too small to gain from threads, and on a CPU shared with other work spinning
    threads make each step many times slower."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
