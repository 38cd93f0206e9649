"""The loss traces of seed 000's worked examples, as data, for replaying them through the strategies."""
from __future__ import annotations

import numpy as np


def decreasing_then_spike(steps: int = 400) -> np.ndarray:
    """Scenario 1: mel loss falls from 10 to 0.5 over 300 steps, stays, spikes to 100 at step 350."""
    loss = np.full(steps, 0.5, np.float32)
    loss[:301] = np.linspace(10.0, 0.5, 301, dtype=np.float32)
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
