"""The size axis's fit: log critical rate against log parameter count (docs/plans/2026-12-07-scaling.md).

A critical rate is a bracket more often than a number, and often open on one side. So besides the
least-squares slope through the point estimates, the fit gives the range of slopes of every line that passes
through every size's bracket (a linear program in intercept and slope: each closed side of a bracket is one
inequality), and predictions as the range over those lines. No line through every bracket means the points do
not fit a line, and the report says so instead of extrapolating. Pure numpy/scipy over the critical table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from myxtts.models.settings import PARAMETERS


@dataclass(frozen=True)
class Fit:
    sizes: int                        # sizes with a point estimate (the least-squares fit's points)
    slope: float                      # least-squares slope of log10(critical lr) on log10(parameters); NaN if < 2
    intercept: float
    slope_low: float                  # the range of slopes of every line inside every bracket (±inf: open)
    slope_high: float
    consistent: bool                  # some line passes through every bracket

    def predict(self, parameters: float) -> float:
        if not math.isfinite(self.slope):
            return math.nan
        exponent = self.intercept + self.slope * math.log10(parameters)
        return float(10 ** exponent) if abs(exponent) < 300 else (math.inf if exponent > 0 else 0.0)


def _brackets(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.log10(table["parameters"].to_numpy(float))
    low = np.log10(table["interval low"].to_numpy(float))      # NaN (open) stays NaN
    high = np.log10(table["interval high"].to_numpy(float))
    return x, low, high


def _constraints(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A_ub @ (intercept, slope) <= b_ub for every closed side: low <= a + b x <= high."""
    rows, bounds = [], []
    for xi, lo, hi in zip(x, low, high):
        if math.isfinite(lo):
            rows.append([-1.0, -xi])
            bounds.append(-lo)
        if math.isfinite(hi):
            rows.append([1.0, xi])
            bounds.append(hi)
    return np.asarray(rows, float).reshape(-1, 2), np.asarray(bounds, float)


def _extreme(objective: list[float], a_ub: np.ndarray, b_ub: np.ndarray) -> float | None:
    """The minimum of objective @ (a, b) over the feasible lines: -inf when unbounded, None when infeasible."""
    if not len(a_ub):
        return -math.inf
    result = linprog(objective, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None), (None, None)], method="highs")
    if result.status == 2:
        return None
    if result.status == 3:
        return -math.inf
    return float(result.fun)


def fit(table: pd.DataFrame) -> Fit:
    """table: one configuration's rows with `parameters`, `critical lr` (a number or NaN), `interval low` and
    `interval high` (NaN for an open side)."""
    x, low, high = _brackets(table)
    points = table["critical lr"].to_numpy(float)
    have = np.isfinite(points)
    if have.sum() >= 2 and np.ptp(x[have]) > 0:
        slope, intercept = np.polyfit(x[have], np.log10(points[have]), 1)
        slope = 0.0 if abs(slope) < 1e-9 else slope    # equal points: a flat line, not rounding noise
    else:
        slope, intercept = math.nan, math.nan
    a_ub, b_ub = _constraints(x, low, high)
    lowest = _extreme([0.0, 1.0], a_ub, b_ub)
    highest = _extreme([0.0, -1.0], a_ub, b_ub)
    if lowest is None or highest is None:
        return Fit(int(have.sum()), float(slope), float(intercept), math.nan, math.nan, False)
    return Fit(int(have.sum()), float(slope), float(intercept), lowest, -highest, True)


def prediction_range(table: pd.DataFrame, parameters: float) -> tuple[float, float]:
    """The critical rate at `parameters` over every line through every bracket: (low, high), 0 or inf where
    a side is open, NaN when no line passes through every bracket."""
    x, low, high = _brackets(table)
    a_ub, b_ub = _constraints(x, low, high)
    at = math.log10(parameters)
    lowest = _extreme([1.0, at], a_ub, b_ub)
    highest = _extreme([-1.0, -at], a_ub, b_ub)
    if lowest is None or highest is None:
        return (math.nan, math.nan)
    return (float(10 ** lowest) if math.isfinite(lowest) else 0.0,
            float(10 ** -highest) if math.isfinite(highest) else math.inf)


MAX_PARAMETER_EXPONENT = 15   # a line that reaches a rate only beyond 1e15 parameters is said to, not computed


def unsafe_from(configuration: str, points: pd.DataFrame, found: Fit, rates: dict[str, float]) -> list[dict]:
    """Per documented rate: measured, the smallest size whose whole critical-rate interval lies below it (else "not
    up to" the largest size); and where the least-squares line reaches it, marked as an extrapolation."""
    ordered = points.sort_values("parameters")
    rows = []
    for label, rate in rates.items():
        below = ordered[ordered["interval high"] < rate]
        measured = below["size"].iloc[0] if len(below) else f"not up to {ordered['size'].iloc[-1]}"
        line = "—"
        if math.isfinite(found.slope) and found.slope < 0 and found.consistent:
            exponent = (math.log10(rate) - found.intercept) / found.slope
            line = (f"{10 ** exponent:.3g} parameters" if exponent < MAX_PARAMETER_EXPONENT
                    else f"beyond 1e{MAX_PARAMETER_EXPONENT} parameters")
        rows.append({"configuration": configuration, "documented rate": label, "unsafe from (measured)": measured,
                     "least-squares line reaches it at (extrapolated)": line})
    return rows


def predictions(configuration: str, points: pd.DataFrame, found: Fit, shapes: dict[str, int]) -> list[dict]:
    """Per untrained shape (name -> parameter count): the least-squares line's critical rate there and the range
    over every line through every bracket; none where no line passes through every bracket (no extrapolation)."""
    if not found.consistent:
        return [{"configuration": configuration, "shape": name, "parameters": count,
                 "least-squares prediction": math.nan, "range through every bracket": "no line passes through every "
                 "bracket: not extrapolated"} for name, count in shapes.items()]
    rows = []
    for name, count in shapes.items():
        low, high = prediction_range(points, count)
        rows.append({"configuration": configuration, "shape": name, "parameters": count,
                     "least-squares prediction": found.predict(count),
                     "range through every bracket": f"[{low:.3g}, {high:.3g}]"})
    return rows


def critical_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (configuration, size): the parameter count, the critical rate's point and its bracket as numbers."""
    from analysis import frontier

    rows = []
    for (configuration, size), mine in frontier.outcome_table(runs).groupby(["configuration", "size"], sort=False):
        found = frontier.critical_rate(mine)
        rows.append({"configuration": configuration, "size": size,
                     "parameters": float(PARAMETERS.get(frontier.SIZE_OF_LABEL.get(size, size), math.nan)),
                     "critical lr": found["critical lr"], "interval low": found["interval low"],
                     "interval high": found["interval high"]})
    return pd.DataFrame(rows, columns=["configuration", "size", "parameters", "critical lr", "interval low",
                                       "interval high"])
