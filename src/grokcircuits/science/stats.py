"""Intervals over a small number of seeds (a mean's t interval; a share's Wilson interval), and
threshold crossings of a curve."""
from __future__ import annotations

import math
import numbers

import numpy as np

# two-sided 95% Student t quantiles, by degrees of freedom
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(df: int) -> float:
    if df >= 30:
        return 1.96 if df > 120 else 2.0
    return _T975[max(k for k in _T975 if k <= df)]


def mean_interval(values, bounds: tuple[float, float] | None = (0.0, 1.0)) -> tuple[float, float, float]:
    """(mean, low, high): a 95% Student t interval over seeds, clipped to `bounds` (rates and
    similarities live in [0, 1]). One value says nothing about the spread: its interval is the
    whole of `bounds` (unbounded without them), so no verdict can rest on a single seed."""
    v = np.asarray(list(values), dtype=float)
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if len(v) == 1:
        return (m, bounds[0], bounds[1]) if bounds is not None else (m, -math.inf, math.inf)
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (m, lo, hi)


def first_crossing(steps, values, threshold: float):
    """The first step at which `values` reaches `threshold`, or None."""
    for s, v in zip(steps, values):
        if v is not None and v >= threshold:
            return int(s)
    return None


Z95 = 1.959964   # the two-sided 95% quantile of the standard normal


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(share, low, high): the share k/n of seeds that show an outcome, with its 95% Wilson score
    interval. Unlike a t interval over 0/1 values it stays inside [0, 1] and is never a point: 3 of 3
    gives [0.44, 1], 5 of 5 [0.57, 1]. No seed (n = 0) says nothing: (NaN, 0, 1)."""
    if not (isinstance(k, numbers.Integral) and isinstance(n, numbers.Integral) and 0 <= k <= n):
        raise ValueError(f"k={k!r}, n={n!r}: a count of seeds needs 0 <= k <= n")
    if n == 0:
        return (math.nan, 0.0, 1.0)
    k, n = int(k), int(n)
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (p, max(0.0, centre - half), min(1.0, centre + half))


def seeds_to_clear(share_at: float, z: float = Z95) -> int:
    """The fewest seeds whose share, all of them agreeing, has a Wilson interval wholly above
    `share_at` (0.5: 4, since 3 of 3 reaches only 0.44)."""
    if not 0 <= share_at < 1:
        raise ValueError(f"share_at={share_at!r} must be in [0, 1)")
    n = 1
    while wilson_interval(n, n, z)[1] <= share_at:
        n += 1
    return n
