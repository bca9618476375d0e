"""make test's two workers: every golden notebook on one worker (tests/conftest.py)."""
from conftest import xdist_scope as scope_of


def test_every_golden_notebook_shares_one_scope_and_other_tests_keep_their_module():
    cells = ["tests/golden/00_task.ipynb::Cell 0", "tests/golden/04_cost.ipynb::Cell 12"]
    assert {scope_of(c) for c in cells} == {"golden notebooks"}
    assert scope_of("tests/test_stats.py::test_interval_is_unbounded_for_one_seed") is None
    assert scope_of("tests/test_book.py::test_x[a.ipynb::b]") is None
