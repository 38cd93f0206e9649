"""The loss traces of the design note's worked examples, as data, for replaying them through the strategies."""
from __future__ import annotations

import numpy as np

# (step, mel loss) points printed in the design note's scenario-1 table; linear in between.
SCENARIO_1_POINTS = ((0, 10.0), (50, 8.0), (100, 6.0), (150, 4.0), (200, 2.0), (250, 1.0), (300, 0.5),
                     (349, 0.5), (351, 0.5), (400, 2.0), (500, 1.5))


def decreasing_then_spike(steps: int = 501) -> np.ndarray:
    """Scenario 1: mel loss falls from 10 to 0.5 over 300 steps, a spike to 100 at step 350, recovery."""
    xs, ys = zip(*SCENARIO_1_POINTS)
    loss = np.interp(np.arange(steps), xs, ys).astype(np.float32)
    if steps > 350:
        loss[350] = 100.0
    return loss


def plateau_spike_recovery(steps: int = 200) -> np.ndarray:
    """Scenario 2: mel loss 2.0, a spike to 100.0 at step 101, then 2.0 again."""
    loss = np.full(steps, 2.0, np.float32)
    if steps > 101:
        loss[101] = 100.0
    return loss


SCENARIOS = {"decreasing_then_spike": decreasing_then_spike, "plateau_spike_recovery": plateau_spike_recovery}
