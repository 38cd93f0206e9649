"""The report's figures (matplotlib, Agg backend, fixed sizes so the same data gives the same PNG)."""
from __future__ import annotations

import math

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import tables
from myxtts import record

plt.rcParams.update({"svg.hashsalt": "myxtts", "figure.dpi": 100})


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
    return path


def _by_preset(runs: pd.DataFrame, wide: pd.DataFrame):
    """(preset, its runs, their columns in `wide`) for every preset with data, in report order."""
    presets = tables.tag(runs, record.PRESET, "?").astype(str)
    for preset in tables.preset_order(runs):
        mine = runs[presets == preset]
        ids = [i for i in mine["run_id"] if i in wide]
        if ids:
            yield preset, mine, ids


def _epoch_size(runs: pd.DataFrame) -> float:
    """The experiment's steps per epoch when its runs agree on one, else NaN (the axes stay in steps)."""
    sizes = set(tables.numeric(tables.tag(runs, record.STEPS_PER_EPOCH)).dropna())
    return sizes.pop() if len(sizes) == 1 else np.nan


def weight_evolution(runs: pd.DataFrame, history: pd.DataFrame, path: Path) -> Path | None:
    """Small multiples, one panel per preset: every seed's mel weight relative to the preset's base weight
    (thin), the median (thick) and the step where the weight first moved, so no line hides another."""
    wide = tables.series(history, record.WEIGHT_MEL)
    if wide.empty:
        return None
    panels = list(_by_preset(runs, wide))
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), sharex=True,
                                constrained_layout=True, squeeze=False)
    for axis, (preset, mine, ids) in zip(axes.flat, panels):
        scale = tables.number(mine, "loss.mel_loss_weight").iloc[0]
        values = wide[ids].replace([np.inf, -np.inf], np.nan) / (scale if scale and np.isfinite(scale) else 1.0)
        axis.plot(values.index, values.to_numpy(), color="tab:blue", alpha=0.25, linewidth=0.8)
        axis.plot(values.index, values.median(axis=1), color="tab:blue", linewidth=1.8)
        changes = tables.weight_changes(history, ids)["first change step"].dropna()
        if len(changes):
            first = float(changes.min())
            axis.axvline(first, color="tab:red", linestyle=":", linewidth=1)
            note = f"first moves at step {first:.0f}"
        else:
            note = "never moves"
        strategy = tables.setting(mine, "weighting.name", "?").iloc[0]
        axis.set_title(f"{preset} ({strategy}): {note}", fontsize=9)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("step")
    for axis in axes[:, 0]:
        axis.set_ylabel("weight / base")
    figure.suptitle("Mel weight over training, every seed (thin) and the median (thick)", fontsize=10)
    return _save(figure, path)


# Every series of a figure gets its own colour and line style (never two alike).
STYLES = [(color, style) for style in ("-", "--", ":") for color in plt.rcParams["axes.prop_cycle"].by_key()["color"]]
MAX_SERIES_PER_AXIS = 8   # more lines than this on one axis cannot be told apart: small multiples instead


def _loss_panels(runs: pd.DataFrame, wide: pd.DataFrame) -> list[tuple[str, list]]:
    """(title, [(preset, runs, ids)]) per panel: one panel per feature scale (losses on different scales never share
    an axis); a scale with more than MAX_SERIES_PER_AXIS presets becomes one panel per preset (small multiples)."""
    scales: dict[str, list] = {}
    for preset, mine, ids in _by_preset(runs, wide):
        scale = str(tables.setting(mine, "data.features.scale", "standardized").iloc[0])
        scales.setdefault(scale, []).append((preset, mine, ids))
    panels = []
    for scale, members in scales.items():
        if len(members) <= MAX_SERIES_PER_AXIS:
            panels.append((f"{scale} features", members))
        else:
            panels += [(f"{member[0]} ({scale} features)", [member]) for member in members]
    return panels


def loss_curves(runs: pd.DataFrame, history: pd.DataFrame, path: Path) -> Path | None:
    """Median loss per preset with the band between the seeds' 25th and 75th percentiles, over epochs; x marks the
    step where a run was declared diverged (with the count where several coincide). One panel per feature scale."""
    wide = tables.series(history, record.LOSS_UNDAMPED)
    if wide.empty:
        return None
    per_epoch = _epoch_size(runs)
    to_x = (lambda step: (np.asarray(step, dtype=float) + 1) / per_epoch) if np.isfinite(per_epoch) else \
        (lambda step: np.asarray(step, dtype=float))
    panels = _loss_panels(runs, wide)
    style = {preset: STYLES[i % len(STYLES)] for i, (preset, _, _) in enumerate(_by_preset(runs, wide))}
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.2 * rows), constrained_layout=True,
                                squeeze=False)
    for axis, (title, members) in zip(axes.flat, panels):
        for preset, mine, ids in members:
            color, line_style = style[preset]
            values = wide[ids].where(np.isfinite(wide[ids]))
            x = to_x(values.index)
            axis.plot(x, values.median(axis=1), label=f"{preset} ({len(ids)} seeds)", linewidth=1.3, color=color,
                      linestyle=line_style)
            if len(ids) > 1:
                axis.fill_between(x, values.quantile(0.25, axis=1), values.quantile(0.75, axis=1), alpha=0.15,
                                  color=color, linewidth=0)
            marks: dict[tuple[float, float], int] = {}
            for step in tables.numeric(tables.tag(mine, record.DIVERGED_AT_STEP)).dropna():
                finite = values.loc[:step].stack()
                where = (float(to_x([step])[0]), float(finite.iloc[-1]) if len(finite) else 1.0)
                marks[where] = marks.get(where, 0) + 1
            for (mx, my), count in marks.items():
                axis.plot([mx], [my], marker="x", markersize=9, color=color, linestyle="none")
                if count > 1:
                    axis.annotate(f"{count} diverged", (mx, my), textcoords="offset points", xytext=(4, 4), fontsize=7,
                                  color=color)
        axis.set_yscale("log")
        axis.set_xlabel(f"epoch ({per_epoch:g} steps each)" if np.isfinite(per_epoch) else "step")
        axis.set_ylabel("total loss (before dampening/clip)")
        axis.set_title(title, fontsize=9)
        axis.legend(loc="best", fontsize=7)
        axis.grid(alpha=0.3, which="both")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("Loss per preset: median over seeds, band = 25th–75th percentile, x = diverged", fontsize=10)
    return _save(figure, path)


def attention_logits(runs: pd.DataFrame, history: pd.DataFrame, path: Path) -> Path | None:
    """The largest attention logit of any block per logged step: median over seeds per preset (band: range)."""
    part = history[history["metric"].str.startswith(record.diag("attention", ""))]
    if part.empty:
        return None
    wide = part.groupby(["step", "run_id"])["value"].max().unstack()
    figure, axis = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    for index, (preset, _mine, ids) in enumerate(_by_preset(runs, wide)):
        values = wide[ids].where(np.isfinite(wide[ids]))
        color, line_style = STYLES[index % len(STYLES)]
        axis.plot(values.index, values.median(axis=1), label=f"{preset} ({len(ids)} seeds)", color=color,
                  linestyle=line_style)
        if len(ids) > 1:
            axis.fill_between(values.index, values.min(axis=1), values.max(axis=1), alpha=0.15, color=color,
                              linewidth=0)
    axis.set_xlabel("step")
    axis.set_ylabel("max attention logit (any block)")
    axis.set_title("Largest attention logit per preset: median over seeds, band = range", fontsize=10)
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
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


OUTCOME_MARKERS = {"diverged": "x", "frozen": "s", "not_learning": "^"}




def final_loss_vs_lr(losses: pd.DataFrame, path: Path) -> Path | None:
    """The field's LR-sensitivity figure (Wortsman et al. 2023, Fig. 1's form): final validation loss against
    learning rate (log x), mean over seeds of the capped final loss, failing runs marked by their outcome. One
    line per configuration on one axis when there is one model size and few configurations; otherwise one panel
    per configuration with one line per size. No two lines on an axis share a colour."""
    if losses.empty or losses["capped"].dropna().empty:
        return None
    sizes = list(dict.fromkeys(losses["size"])) if "size" in losses else [""]
    configurations = list(dict.fromkeys(losses["configuration"]))
    multiples = len(sizes) > 1 or len(configurations) > MAX_SERIES_PER_AXIS
    panels = configurations if multiples else [None]
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 1, 3.4 * rows + 0.6), squeeze=False,
                                sharex=True, sharey=True, constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, panel in zip(axes.flat, panels):
        mine = losses if panel is None else losses[losses["configuration"] == panel]
        key = "configuration" if panel is None else "size"
        for index, (name, series) in enumerate(mine.groupby(key, sort=False)):
            colour = colours[index % len(colours)]
            line = series.groupby("lr")["capped"].mean().dropna()
            axis.plot(line.index, line.to_numpy(), marker="o", markersize=3, color=colour, alpha=0.85, label=name)
            for outcome, marker in OUTCOME_MARKERS.items():
                bad = series[series["outcome"] == outcome].dropna(subset=["capped"])
                if len(bad):
                    axis.scatter(bad["lr"], bad["capped"], marker=marker, s=40, color=colour, zorder=3)
        present = set(mine["outcome"])
        for outcome, marker in OUTCOME_MARKERS.items():
            if outcome in present:
                axis.scatter([], [], marker=marker, color="grey", label=outcome)
        axis.set_xscale("log")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7, ncol=2 if panel is None else 1)
        if panel is not None:
            axis.set_title(panel, fontsize=9)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.supxlabel("learning rate")
    figure.supylabel("final validation postnet L1 (failed: capped at initial)")
    figure.suptitle("Final loss against learning rate")
    return _save(figure, path)


def critical_rate_vs_size(points: pd.DataFrame, fits: dict, documented: dict[str, float], path: Path) -> Path | None:
    """Critical learning rate against parameter count (log-log): each configuration's points with their
    brackets (an open side drawn as an arrow), its least-squares line, and the documents' rates as horizontal
    lines."""
    values = points[["critical lr", "interval low", "interval high"]].to_numpy(float) if len(points) else np.empty(0)
    if points.empty or points["parameters"].dropna().empty or not np.isfinite(values).any():
        return None
    figure, axis = plt.subplots(figsize=(8, 5), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    span = np.geomspace(points["parameters"].min() / 2, points["parameters"].max() * 2, 50)
    for index, (name, mine) in enumerate(points.groupby("configuration", sort=False)):
        colour = colours[index % len(colours)]
        shift = 1.0 + 0.06 * (index - (points["configuration"].nunique() - 1) / 2)   # side by side, not on top
        x = mine["parameters"].to_numpy(float) * shift
        centre = mine["critical lr"].to_numpy(float)
        low, high = mine["interval low"].to_numpy(float), mine["interval high"].to_numpy(float)
        shown = np.where(np.isfinite(centre), centre, np.where(np.isfinite(low), low, high))
        axis.scatter(x, shown, color=colour, label=name, zorder=3)
        for xi, yi, lo, hi in zip(x, shown, low, high):
            if not math.isfinite(yi):
                continue
            axis.plot([xi, xi], [lo if math.isfinite(lo) else yi, hi if math.isfinite(hi) else yi], color=colour)
            if not math.isfinite(hi):
                axis.annotate("", (xi, yi * 2.5), (xi, yi), arrowprops={"arrowstyle": "->", "color": colour})
            if not math.isfinite(lo):
                axis.annotate("", (xi, yi / 2.5), (xi, yi), arrowprops={"arrowstyle": "->", "color": colour})
        found = fits.get(name)
        if found is not None and math.isfinite(found.slope):
            axis.plot(span, [found.predict(p) for p in span], color=colour, linestyle="--", linewidth=1)
    for index, (label, rate) in enumerate(documented.items()):
        axis.axhline(rate, color="grey", linestyle=[":", "-.", "--", (0, (1, 3))][index % 4], linewidth=1,
                     label=f"documented: {label}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("parameters")
    axis.set_ylabel("critical learning rate (half the seeds diverge)")
    axis.set_title("Critical learning rate against model size (dashed: least-squares fit)")
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3, which="both")
    return _save(figure, path)
