"""The few statistics the report needs, from scipy.stats: a binomial interval, a one-sided exact test and a
bootstrap interval of a difference in means."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 10_000


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval for a binomial proportion (NaN for no trials)."""
    if trials == 0:
        return (math.nan, math.nan)
    interval = stats.binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return (float(interval.low), float(interval.high))


def fisher_exact_greater(events_a: int, trials_a: int, events_b: int, trials_b: int) -> float:
    """One-sided Fisher exact p-value that group a has a higher event rate than group b: with the margins
    fixed, P(X >= events_a) for the hypergeometric count of a's events."""
    if not (0 <= events_a <= trials_a and 0 <= events_b <= trials_b) or trials_a + trials_b == 0:
        raise ValueError("events must lie between 0 and their trials")
    table = [[events_a, trials_a - events_a], [events_b, trials_b - events_b]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def bootstrap_mean_difference(a, b, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) − mean(b) with a 95 % percentile bootstrap interval (fixed seed: the same data, the same
    interval). NaN when either sample is empty. A sample of one value resamples to itself, so it enters as a
    constant (scipy resamples only samples of two or more)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return (math.nan, math.nan, math.nan)
    difference = float(a.mean() - b.mean())
    varied = [sample for sample in (a, b) if len(sample) > 1]
    if not varied:
        return (difference, difference, difference)

    def statistic(*resampled, axis=-1):
        means = iter(np.mean(sample, axis=axis) for sample in resampled)
        return ((next(means) if len(a) > 1 else a[0]) - (next(means) if len(b) > 1 else b[0]))

    result = stats.bootstrap(tuple(varied), statistic, n_resamples=rounds, vectorized=True, method="percentile",
                             confidence_level=CONFIDENCE, rng=np.random.default_rng(seed))
    return (difference, float(result.confidence_interval.low), float(result.confidence_interval.high))


ALPHA, POWER = 0.05, 0.8


def fisher_power(rate_a: float, trials_a: int, rate_b: float, trials_b: int, alpha: float = ALPHA) -> float:
    """Power of the one-sided Fisher exact test that group a fails more often than group b, when their true
    failure rates are rate_a and rate_b: the probability, summed exactly over both binomials, that the test
    rejects at `alpha`."""
    if trials_a < 1 or trials_b < 1 or not (0 <= rate_a <= 1 and 0 <= rate_b <= 1):
        raise ValueError("trials must be >= 1 and rates in [0, 1]")
    a, b = np.arange(trials_a + 1), np.arange(trials_b + 1)
    chance = np.outer(stats.binom.pmf(a, trials_a, rate_a), stats.binom.pmf(b, trials_b, rate_b))
    rejects = np.array([[fisher_exact_greater(int(i), trials_a, int(j), trials_b) <= alpha for j in b] for i in a])
    return float(chance[rejects].sum())


def seeds_for_power(rate: float, power: float = POWER, alpha: float = ALPHA, minimum: int = 2,
                    maximum: int = 200) -> int | None:
    """The fewest seeds per group (equal groups, at least `minimum`) at which a control failing at `rate` is
    told apart from a treatment that never fails with `power`; None when even `maximum` is not enough."""
    for n in range(minimum, maximum + 1):
        if fisher_power(rate, n, 0.0, n, alpha) >= power:
            return n
    return None


def smallest_detectable_rate(trials_a: int, trials_b: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest failure rate of group a (to 0.01) that this design tells apart from a group b that never
    fails, with `power`: the smallest effect a one-sided Fisher test of these sizes can detect. NaN for no
    trials; inf when not even a certain failure is detected (the test cannot reach alpha at these sizes)."""
    if trials_a < 1 or trials_b < 1:
        return math.nan
    for rate in np.arange(0.01, 1.0001, 0.01):
        if fisher_power(float(rate), trials_a, 0.0, trials_b, alpha) >= power:
            return round(float(rate), 2)
    return math.inf
