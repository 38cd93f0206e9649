"""The rules that turn measurements into verdicts, each written once, with the text a report prints made from
the same thresholds.

Prevention (a stabilizer prevents failures its control suffers) is judged in a fixed order:
1. only failures after both systems can act count (before that neither weight has moved, so neither system can
   have prevented anything): none counted for the control -> not testable here, for either system;
2. a one-sided Fisher exact test that the control fails more often: p <= ALPHA -> holds;
3. otherwise "does not hold" only when the design had power >= POWER for the claimed effect (the control's
   measured rate against none under the treatment); else not testable, with the smallest rate it could detect.
"""
from __future__ import annotations

from dataclasses import dataclass

from analysis.stats import ALPHA, POWER, fisher_exact_greater, fisher_power, smallest_detectable_rate

HOLDS, FAILS, NOT_TESTABLE = "holds", "does not hold", "not testable here"


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
    counted_c = sum(step >= acts_from for step in control_steps)
    counted_t = sum(step >= acts_from for step in treatment_steps)
    early = len(control_steps) + len(treatment_steps) - counted_c - counted_t
    if counted_c == 0:
        why = (f"{early} failure(s), all before step {acts_from}, where neither system can act yet" if early
               else "the control never failed")
        return Prevention(NOT_TESTABLE, f"{why}: nothing either system could prevent")
    p = fisher_exact_greater(counted_c, control_runs, counted_t, treatment_runs)
    power = fisher_power(counted_c / control_runs, control_runs, 0.0, treatment_runs)
    counts = f"{counted_c}/{control_runs} against {counted_t}/{treatment_runs} failures after step {acts_from}"
    if p <= ALPHA:
        return Prevention(HOLDS, f"{counts}, one-sided Fisher p = {p:.3g} <= {ALPHA}", p, power)
    if power >= POWER:
        return Prevention(FAILS, f"{counts}, p = {p:.3g}; the design had power {power:.2f} >= {POWER} to detect the "
                                 f"claimed effect (the control's rate against none)", p, power)
    detectable = smallest_detectable_rate(control_runs, treatment_runs)
    return Prevention(NOT_TESTABLE, f"{counts}, p = {p:.3g}; power {power:.2f} < {POWER} for the claimed effect "
                                    f"(this design detects a control rate of {detectable:.0%} or more against none)",
                      p, power)
