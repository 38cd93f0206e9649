"""Feeds the design note's loss traces through every weighting strategy, without a model.

    python -m myxtts.training.replay [--base-weight 2.5]     (JSON on stdout)

Only the mel term is present, so strategies that learn from a model (uncertainty's log-variances,
GradNorm's gradient norms) or balance several terms (DWA) keep their starting weights here; the
replay shows what the old and new mel-weight formulas themselves do with the documented traces.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from myxtts.backend import tf
from myxtts.training.guards import SpikeDampener
from myxtts.training.losses import TERMS
from myxtts.training.scenarios import SCENARIOS
from myxtts.training.weighting import DECISIONS, MEL_TERMS, STRATEGIES, StableWeighting, build_weighting
from myxtts import record


def replay(trace: np.ndarray, strategy: str, base_weight: float, dampening: bool) -> dict:
    weighting = build_weighting(strategy, {"mel": base_weight, "stop": 0.0, "kl": 0.0, "attention": 0.0}, TERMS)
    dampener = SpikeDampener(2.0, 10, enabled=dampening)

    @tf.function
    def step(value):
        # The trace drives both mel terms (they share the mel weight); the other terms are absent.
        raw = {term: (value if term in MEL_TERMS else tf.zeros_like(value)) for term in TERMS}
        effective, metrics = weighting(raw, tf.constant(-1.0))
        damped, _, _ = dampener(value)
        decision = metrics.get(record.WEIGHTING_DECISION, tf.constant(-1))
        return effective["mel"], damped, decision

    weights, weighted, decisions = [], [], []
    for loss in trace:
        weight, damped, code = (float(x) for x in step(tf.constant(float(loss))))
        weights.append(weight)
        weighted.append(weight * damped)
        decisions.append(DECISIONS[int(code)] if code >= 0 else "")
    return {"weight": weights, "weighted_loss": weighted, "decision": decisions}


def replay_all(base_weight: float) -> dict:
    """{"base_weight", "scenarios": {name: {"loss", "strategies"}}, "safety_checks": the stable weighting's}."""
    result = {}
    for name, make in SCENARIOS.items():
        trace = make()
        result[name] = {"loss": trace.tolist(), "strategies": {
            strategy: replay(trace, strategy, base_weight, dampening=(strategy == "stable"))
            for strategy in sorted(STRATEGIES)}}
    return {"base_weight": base_weight, "scenarios": result,
            "safety_checks": [f"{what} ({method})" for what, method in StableWeighting.SAFETY_CHECKS]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m myxtts.training.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--base-weight", type=float, default=2.5)
    args = parser.parse_args(argv)
    if not 0 < args.base_weight < float("inf"):
        parser.error(f"--base-weight: must be a finite number > 0, got {args.base_weight}")
    json.dump(replay_all(args.base_weight), sys.stdout, allow_nan=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
