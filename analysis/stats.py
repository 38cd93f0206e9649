"""The few statistics the report needs, in plain Python/NumPy (no SciPy): intervals and two-sample tests."""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959964


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial proportion."""
    if trials == 0:
        return (math.nan, math.nan)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def fisher_exact_greater(events_a: int, trials_a: int, events_b: int, trials_b: int) -> float:
    """One-sided Fisher exact p-value that group a has a higher event rate than group b.

    With the margins fixed, the number of a's events is hypergeometric; p = P(X >= events_a).
    """
    if not (0 <= events_a <= trials_a and 0 <= events_b <= trials_b) or trials_a + trials_b == 0:
        raise ValueError("events must lie between 0 and their trials")
    total, events = trials_a + trials_b, events_a + events_b
    denominator = math.comb(total, trials_a)
    top = min(events, trials_a)
    return min(1.0, sum(math.comb(events, k) * math.comb(total - events, trials_a - k)
                        for k in range(events_a, top + 1)) / denominator)


def bootstrap_mean_difference(a, b, rounds: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) − mean(b) with a 95 % percentile bootstrap interval (fixed seed: the same data, the same
    interval). NaN when either sample is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = (rng.choice(a, (rounds, len(a))).mean(axis=1) - rng.choice(b, (rounds, len(b))).mean(axis=1))
    low, high = np.percentile(draws, [2.5, 97.5])
    return (float(a.mean() - b.mean()), float(low), float(high))
