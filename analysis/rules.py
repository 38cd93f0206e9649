"""The rules that turn measurements into verdicts, each written once, with the text a report prints made from
the same thresholds. Every claim row (analysis/claims.py) is judged by `judge`, in this fixed order:

1. precondition not met -> not testable here: no runs of an arm the claim needs; absolute values of another
   model and data; arms that do not differ in the factor the claim is about, or differ in more than it; a value
   the runs did not record;
2. the mechanism the claim is about never acted in the runs -> not reproduced on this proxy (the same for either
   system: the old tanh weight that never left its floor, the new controller that never adjusted), or not
   reproduced at this horizon when the runs were too short for it to act at all;
3. a rate comparison (a stabilizer prevents failures, advice avoids them) -> the two-group rule below;
4. a part the runs could not reach (an epoch not trained, a horizon short of the claim's) and nothing reached
   contradicts -> not reproduced at this horizon; a part reached and outside its comparison -> does not hold;
   an interval that straddles the claimed side -> not testable (within the seed noise); otherwise holds.

Two groups (prevention): only failures after both systems can act count (before that neither weight has moved,
so neither system can have prevented anything); a one-sided Fisher exact test that the control fails more
often: p <= ALPHA -> holds; otherwise "does not hold" only when the design had power >= POWER for the claimed
effect (the control's measured rate against none); else not testable, with the smallest rate it could detect.
When only the group claimed to be safer failed, "does not hold" needs the reverse one-sided test at p <= ALPHA.
Advice ("keep X in range"): the same test, runs outside the range against runs inside; none of at least
ADVICE_MINIMUM runs outside failing -> does not hold (on this proxy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from analysis.stats import ALPHA, POWER, fisher_exact_greater, fisher_power, smallest_detectable_rate

HOLDS, FAILS = "holds", "does not hold"
NOT_REPRODUCED, NOT_TESTABLE = "not reproduced at this horizon", "not testable here"
PROXY = "not reproduced on this proxy"
VERDICTS = (HOLDS, FAILS, NOT_REPRODUCED, PROXY, NOT_TESTABLE)

# A claim that something happens by about epoch E is refuted by its absence only in runs that trained through
# E x (1 + HORIZON_TOLERANCE) epochs.
HORIZON_TOLERANCE = 0.5
ADVICE_MINIMUM = 10   # runs outside an advised range, none failing, that refute the advice


# --- comparisons: one function and one sentence each ----------------------------------------------------

def _range(claimed) -> tuple[float, float]:
    low, high = claimed
    return float(low), float(high)


COMPARISONS = {
    # name: (passes(value, claimed, tolerance), text(claimed, tolerance))
    "within": (lambda v, c, t: math.isfinite(v) and abs(v / c - 1) <= t + 1e-12,
               lambda c, t: f"within ±{t:.0%} of {c:g}"),
    "near": (lambda v, c, t: math.isfinite(v) and abs(v - c) <= t + 1e-12,
             lambda c, t: f"within ±{t:g} of {c:g}"),
    "range": (lambda v, c, t: _range(c)[0] * (1 - t) - 1e-12 <= v <= _range(c)[1] * (1 + t) + 1e-12,
              lambda c, t: f"in {_range(c)[0]:g}–{_range(c)[1]:g}" + (f" (±{t:.0%})" if t else "")),
    "at least": (lambda v, c, t: v >= c * (1 - t) - 1e-12, lambda c, t: f"≥ {c * (1 - t):g}"),
    "at most": (lambda v, c, t: v <= c * (1 + t) + 1e-12, lambda c, t: f"≤ {c * (1 + t):g}"),
    "above": (lambda v, c, t: v > c, lambda c, t: f"> {c:g}"),
    "below": (lambda v, c, t: v < c, lambda c, t: f"< {c:g}"),
    # an interval claim: holds when the whole interval lies below 0, does not hold when above, else noise
    "interval below 0": (lambda v, c, t: v < 0, lambda c, t: "the 95 % interval of the difference below 0"),
    # a rate comparison (two groups), judged by `two_groups`
    "higher rate": (lambda v, c, t: True, lambda c, t: f"a higher failure rate (one-sided Fisher exact p ≤ {ALPHA}, "
                                                       f"'does not hold' only at power ≥ {POWER})"),
}


def passes(compare: str, value: float, claimed, tolerance: float) -> bool:
    return bool(COMPARISONS[compare][0](value, claimed, tolerance))


def describe(compare: str, claimed, tolerance: float) -> str:
    return COMPARISONS[compare][1](claimed, tolerance)


def needed_epochs(horizon: float, about: bool) -> float:
    """The epochs runs must train for their silence to speak against a claim about `horizon` epochs."""
    return horizon * (1 + HORIZON_TOLERANCE) if about else horizon


# --- what a measurement hands the rules ----------------------------------------------------------------

@dataclass
class Part:
    """One measured number and what the claim says it is. `reached` is False when the runs cannot show it yet
    (an epoch not trained, a horizon short of the claim's)."""
    label: str
    value: float
    claimed: object
    compare: str | None = None          # default: the claim's comparison
    reached: bool = True
    settled: bool = False               # an event already seen: more training cannot change the value
    rises: bool = False                 # the value can only rise with more training (a failure rate)
    interval: tuple[float, float] | None = None


@dataclass
class Groups:
    """A two-group rate comparison: `a` is claimed to fail more often than `b`; steps are failure steps."""
    a_steps: list[int]
    a_runs: int
    b_steps: list[int]
    b_runs: int
    acts_from: int = 0            # only failures at or after this step count (0: all)
    advice: bool = False
    a_name: str = "the group expected to fail"


@dataclass
class Measurement:
    text: str = ""                           # what was measured, for the report's "measured" column
    evidence: str = ""                       # which runs (or formula, replay, benchmark) it comes from
    parts: list[Part] = field(default_factory=list)
    groups: Groups | None = None
    missing: str = ""                        # a precondition not met: why
    idle: str = ""                           # the mechanism never acted: which and why
    idle_short: bool = False                 # ... because the runs were too short for it to act at all
    trained: float = math.nan                # epochs the runs trained


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def two_groups(g: Groups) -> Verdict:
    counted_a = sum(step >= g.acts_from for step in g.a_steps)
    counted_b = sum(step >= g.acts_from for step in g.b_steps)
    after = f" after step {g.acts_from}" if g.acts_from else ""
    counts = f"{counted_a}/{g.a_runs} against {counted_b}/{g.b_runs} failures{after}"
    if not g.a_runs:
        return Verdict(NOT_TESTABLE, f"no run in {g.a_name}")
    if counted_a == 0:
        early = len(g.a_steps) + len(g.b_steps) - counted_a - counted_b
        if g.advice and g.a_runs >= ADVICE_MINIMUM:
            return Verdict(FAILS, f"{counts}: none of {g.a_runs} runs outside the advice failed")
        if counted_b and g.b_runs:
            reverse = fisher_exact_greater(counted_b, g.b_runs, 0, g.a_runs)
            if reverse <= ALPHA:
                return Verdict(FAILS, f"{counts}: only the group claimed to be safer failed, significantly more often "
                                      f"(one-sided Fisher p = {reverse:.3g} ≤ {ALPHA})")
        why = (f"{early} failure(s), all before step {g.acts_from}, where neither system can act yet" if early
               else f"{g.a_name} never failed")
        return Verdict(NOT_TESTABLE, f"{counts}: {why}: nothing to prevent")
    if not g.b_runs:
        return Verdict(NOT_TESTABLE, f"{counts}: no runs to compare with")
    p = fisher_exact_greater(counted_a, g.a_runs, counted_b, g.b_runs)
    power = fisher_power(counted_a / g.a_runs, g.a_runs, 0.0, g.b_runs)
    if p <= ALPHA:
        return Verdict(HOLDS, f"{counts}, one-sided Fisher p = {p:.3g} ≤ {ALPHA}")
    if power >= POWER:
        return Verdict(FAILS, f"{counts}, p = {p:.3g}; the design had power {power:.2f} ≥ {POWER} for the claimed "
                              f"effect (the first group's rate against none)")
    detectable = smallest_detectable_rate(g.a_runs, g.b_runs)
    return Verdict(NOT_TESTABLE, f"{counts}, p = {p:.3g}; power {power:.2f} < {POWER} for the claimed effect (this "
                                 f"design detects a rate of {detectable:.0%} or more against none)")


def judge(claim, m: Measurement) -> Verdict:
    """The verdict of one claim row on one measurement, by the rules above in their order."""
    if m.missing:
        return Verdict(NOT_TESTABLE, m.missing)
    if not claim.comparable:
        return Verdict(NOT_TESTABLE, claim.not_comparable_because)
    if m.idle:
        return Verdict(NOT_REPRODUCED if m.idle_short else PROXY, m.idle)
    if m.groups is not None:
        return two_groups(m.groups)
    if not m.parts:
        return Verdict(NOT_TESTABLE, "nothing measured")
    failed, short, noisy, unmeasured = [], [], [], []
    for part in m.parts:
        compare = part.compare or claim.compare
        ok = passes(compare, part.value, part.claimed, claim.tolerance)
        if part.interval is not None and compare == "interval below 0":
            low, high = part.interval
            if low > 0:
                failed.append(part.label)
            elif high >= 0:
                noisy.append(part.label)
            continue
        # a value that can only rise with more training (a failure rate) is final once it fails an upper bound
        # or meets a lower one, however short the runs
        final = part.rises and ((compare in ("at most", "below") and not ok) or (compare in ("at least", "above") and ok))
        if not (part.reached or part.settled or final):
            short.append(part.label)
        elif math.isnan(part.value):
            unmeasured.append(part.label)
        elif not ok:
            failed.append(part.label)
    if unmeasured:
        return Verdict(NOT_TESTABLE, f"not measured (no value in the runs): {', '.join(unmeasured)}")
    if failed:
        return Verdict(FAILS, f"outside the claim: {', '.join(failed)}")
    if short:
        return Verdict(NOT_REPRODUCED, f"not reached by the runs: {', '.join(short)}")
    if noisy:
        return Verdict(NOT_TESTABLE, f"the interval includes 0 (within the seed noise): {', '.join(noisy)}")
    return Verdict(HOLDS, "every part as claimed")


# --- prevention in the late-failure search (analysis/late.py) ----------------------------------------

@dataclass(frozen=True)
class Prevention:
    verdict: str
    reason: str
    p: float | None = None
    power: float | None = None


def prevention(control_steps: list[int], control_runs: int, treatment_steps: list[int], treatment_runs: int,
               acts_from: int) -> Prevention:
    """control_steps / treatment_steps: the failure step of every failed run of each arm; acts_from: the first
    step at which both systems can act. Only failures at or after it count."""
    found = two_groups(Groups(control_steps, control_runs, treatment_steps, treatment_runs, acts_from,
                              a_name="the control"))
    counted_c = sum(step >= acts_from for step in control_steps)
    counted_t = sum(step >= acts_from for step in treatment_steps)
    if not (counted_c and control_runs and treatment_runs):
        return Prevention(found.verdict, found.reason)
    return Prevention(found.verdict, found.reason, fisher_exact_greater(counted_c, control_runs, counted_t, treatment_runs),
                      fisher_power(counted_c / control_runs, control_runs, 0.0, treatment_runs))
