"""Intervals over seeds, cosine similarity of maps, threshold crossings."""
import math

from grokcircuits.pages.analysis import cosine
from grokcircuits.science.stats import first_crossing, mean_interval


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


def test_wilson_interval_matches_known_values():
    """Wilson score 95% intervals (z = 1.96), as tabulated (e.g. Newcombe 1998; R's binom.confint)."""
    from grokcircuits.science.stats import wilson_interval
    for (k, n), (low, high) in {(3, 3): (0.4385, 1.0), (5, 5): (0.5655, 1.0), (4, 4): (0.5101, 1.0),
                                (0, 3): (0.0, 0.5615), (0, 5): (0.0, 0.4345), (1, 10): (0.0179, 0.4042),
                                (5, 10): (0.2366, 0.7634), (3, 5): (0.2307, 0.8824), (81, 263): (0.2553, 0.3662)}.items():
        share, lo, hi = wilson_interval(k, n)
        assert share == k / n and math.isclose(lo, low, abs_tol=5e-5) and math.isclose(hi, high, abs_tol=5e-5), (k, n)


def test_wilson_interval_of_no_seed_says_nothing_and_bad_counts_are_refused():
    import numpy as np
    import pytest
    from grokcircuits.science.stats import wilson_interval
    share, lo, hi = wilson_interval(0, 0)
    assert math.isnan(share) and (lo, hi) == (0.0, 1.0)
    assert wilson_interval(np.int64(2), np.int64(4))[0] == 0.5            # numpy counts are counts
    for k, n in ((4, 3), (-1, 3), (0.5, 3)):
        with pytest.raises(ValueError, match="0 <= k <= n"):
            wilson_interval(k, n)


def test_seeds_to_clear_a_share():
    import pytest
    from grokcircuits.science.stats import seeds_to_clear
    assert seeds_to_clear(0.5) == 4 and seeds_to_clear(0.4) == 3 and seeds_to_clear(0.0) == 1
    with pytest.raises(ValueError):
        seeds_to_clear(1.0)
