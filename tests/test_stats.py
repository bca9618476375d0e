"""Intervals over seeds, cosine similarity of maps, threshold crossings."""
import math

from grokcircuits.analysis import cosine
from grokcircuits.stats import first_crossing, mean_interval


def test_mean_interval_is_a_student_t_interval_clipped_to_the_unit_range():
    m, lo, hi = mean_interval([0.2, 0.4, 0.6], bounds=None)
    half = 4.303 * 0.2 / math.sqrt(3)                    # t(0.975, 2) * sd / sqrt(n)
    assert math.isclose(m, 0.4) and math.isclose(lo, 0.4 - half) and math.isclose(hi, 0.4 + half)
    assert mean_interval([0.2, 0.4, 0.6]) == (m, 0.0, 0.4 + half)
    assert mean_interval([0.7, 0.7]) == (0.7, 0.7, 0.7)                # no spread: a point


def test_one_seed_gives_no_interval():
    """A 95% interval from one value is unbounded: the whole of the bounds, or infinite without them."""
    assert mean_interval([0.7]) == (0.7, 0.0, 1.0)
    assert mean_interval([0.7], bounds=None) == (0.7, -math.inf, math.inf)
    assert all(math.isnan(x) for x in mean_interval([]))


def test_first_crossing_and_cosine():
    assert first_crossing([0, 10, 20], [0.1, 0.6, 0.95], 0.5) == 10
    assert first_crossing([0, 10], [0.1, 0.2], 0.5) is None
    assert math.isclose(cosine([[1, 0], [0, 0]], [[2, 0], [0, 0]]), 1.0)
    assert cosine([1, 0], [0, 1]) == 0.0 and math.isnan(cosine([0, 0], [1, 0]))
