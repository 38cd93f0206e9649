"""The report's figures (matplotlib, Agg backend, fixed sizes so the same data gives the same PNG)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import tables  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "myxtts", "figure.dpi": 100})


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
    return path


def _by_preset(runs: pd.DataFrame, wide: pd.DataFrame):
    """(preset, its runs, their columns in `wide`) for every preset with data, in report order."""
    presets = tables.column(runs, "tag.preset", "?").astype(str)
    for preset in tables.preset_order(runs):
        mine = runs[presets == preset]
        ids = [i for i in mine["run_id"] if i in wide]
        if ids:
            yield preset, mine, ids


def weight_evolution(runs: pd.DataFrame, history: pd.DataFrame, path: Path) -> Path | None:
    """Mel weight relative to each preset's base weight, so static, old and new systems share one axis."""
    wide = tables.series(history, "weight/mel")
    if wide.empty:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    for preset, mine, ids in _by_preset(runs, wide):
        scale = tables.numeric(tables.column(mine, "param.loss.mel_loss_weight")).iloc[0]
        values = wide[ids].replace([np.inf, -np.inf], np.nan) / (scale if scale and np.isfinite(scale) else 1.0)
        label = f"{preset} ({tables.column(mine, 'param.weighting.name', '?').iloc[0]})"
        line, = axis.plot(values.index, values.median(axis=1), label=label)
        axis.fill_between(values.index, values.min(axis=1), values.max(axis=1), alpha=0.2, color=line.get_color())
    axis.set_xlabel("step")
    axis.set_ylabel("mel weight / base weight")
    axis.set_title("Mel weight over training (median over seeds; band: range)")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    return _save(figure, path)


def loss_curves(runs: pd.DataFrame, history: pd.DataFrame, path: Path) -> Path | None:
    wide = tables.series(history, "loss/undamped")
    if wide.empty:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    for preset, mine, ids in _by_preset(runs, wide):
        values = wide[ids].where(np.isfinite(wide[ids]))
        line, = axis.plot(values.index, values.median(axis=1), label=preset)
        diverged = tables.numeric(tables.column(mine, "tag.diverged_at_step")).dropna()
        for step in diverged:
            finite = values.loc[:step].stack()
            axis.plot([step], [finite.iloc[-1] if len(finite) else 1.0], marker="x", markersize=9,
                      color=line.get_color(), linestyle="none")
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("total loss (before dampening/clip)")
    axis.set_title("Loss per preset (median over seeds; x = diverged)")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3, which="both")
    return _save(figure, path)


def lr_frontier(frontier: pd.DataFrame, path: Path) -> Path | None:
    if frontier.empty:
        return None
    figure, axis = plt.subplots(figsize=(7, 4), constrained_layout=True)
    multipliers = [c for c in frontier.columns if c.startswith("x")]
    x = [float(c[1:]) for c in multipliers]
    markers = "osD^vP*X"
    for index, (_, row) in enumerate(frontier.iterrows()):
        # A small vertical offset per preset keeps equal rates (often all 0 %) from hiding each other.
        offset = 0.012 * (index - (len(frontier) - 1) / 2)
        axis.plot(x, [row[c] + offset for c in multipliers], marker=markers[index % len(markers)], alpha=0.85,
                  label=row["preset"])
    axis.set_xscale("log", base=2)
    axis.set_xticks(x, [f"{v:g}x" for v in x])
    axis.set_ylim(-0.08, 1.08)
    axis.set_xlabel("learning-rate multiplier")
    axis.set_ylabel("divergence rate")
    axis.set_title("Learning-rate stress frontier")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return _save(figure, path)
