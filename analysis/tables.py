"""The report's tables, computed from the tidy frames (pure pandas; no TensorFlow, no MLflow)."""
from __future__ import annotations

import math
import operator

import numpy as np
import pandas as pd

from analysis import roles
from analysis.stats import wilson_interval
from myxtts import record

INITIAL_WINDOW = 10  # "initial loss" = mean over the first steps, like an epoch-1 figure on a tiny corpus


def column(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    """A run column with missing values as `default` ("" when none is given), never NaN."""
    fill = "" if default is None else default
    if name not in runs:
        return pd.Series([fill] * len(runs), index=runs.index, dtype=object)
    return runs[name].astype(object).where(runs[name].notna(), fill)


def setting(runs: pd.DataFrame, path: str, default=None) -> pd.Series:
    """What each run trained with at `path` ("optim.lr", "weighting.name", or a derived property such as
    "optim.effective_lr"), typed, from its `config` (the TrainingSettings analysis/load.py read back);
    `default` for a run without one or whose strategy has no such setting."""
    configs = runs["config"] if "config" in runs else pd.Series([None] * len(runs), index=runs.index)
    getter = operator.attrgetter(path)

    def one(config):
        try:
            return default if config is None else getter(config)
        except AttributeError:
            return default

    return pd.Series([one(c) for c in configs], index=runs.index, dtype=object)


def number(runs: pd.DataFrame, path: str, default: float = math.nan) -> pd.Series:
    """A numeric setting of each run as floats (`default` where a run has none)."""
    return pd.to_numeric(setting(runs, path, default), errors="coerce").astype(float)


NOT_FINISHED_COLUMNS = ["run", "preset", "seed", "state", "steps logged", "reason"]


def not_finished(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Runs that have no verdict (failed, killed, still or orphaned RUNNING, untagged): named, not counted."""
    verdict = tag(runs, record.OUTCOME).astype(str).isin(record.VERDICTS) & (column(runs, "status") == "FINISHED")
    last = history.groupby("run_id")["step"].max() if len(history) else pd.Series(dtype=float)
    rows = []
    for _, run in runs[~verdict].iterrows():
        reached = last.get(run["run_id"])
        rows.append({"run": run.get("run_name", run["run_id"]), "preset": run.get(record.tag_column(record.PRESET), ""),
                     "seed": run.get(record.tag_column(record.SEED), ""), "state": run.get("state", run.get("status", "")),
                     "steps logged": int(reached) + 1 if reached is not None and pd.notna(reached) else 0,
                     "reason": run.get(record.tag_column(record.ERROR), "")
                     or ("no outcome recorded" if not run.get(record.tag_column(record.OUTCOME)) else "")})
    return pd.DataFrame(rows, columns=NOT_FINISHED_COLUMNS)


def tag(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    """A run tag's column (a name from the record catalogue), as `column` gives it."""
    return column(runs, record.tag_column(name), default)


def numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.replace("", np.nan), errors="coerce")


def series(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Wide frame step × run_id for one metric."""
    part = history[history["metric"] == metric]
    return part.pivot_table(index="step", columns="run_id", values="value", aggfunc="last", dropna=False)


def overridden(runs: pd.DataFrame) -> pd.Series:
    """Per run, the overrides that make it no evidence for its preset's claims ("" when none): the runner's
    tag, and for runs recorded before it a learning-rate multiplier other than 1 or a deliberate fault."""
    multiplier = number(runs, "optim.lr_multiplier", 1.0)
    fault = setting(runs, "fault.kind", "none")
    inferred = pd.Series([" ".join(([f"optim.lr_multiplier={m:g}"] if m != 1.0 else []) +
                                   ([f"fault.kind={f}"] if f != "none" else []))
                          for m, f in zip(multiplier, fault)], index=runs.index, dtype=object)
    tagged = tag(runs, record.OVERRIDDEN).astype(str)
    return tagged.where(tagged != "", inferred)


def as_documented(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that are evidence for their preset's documented claims (nothing overridden)."""
    return runs[overridden(runs) == ""]


def rate_probe(runs: pd.DataFrame) -> pd.Series:
    """True for runs whose only override is an absolute learning rate (an edge probe beside documented runs)."""
    return overridden(runs).map(lambda text: bool(text) and all(o.startswith("optim.lr=") for o in text.split()))


def overridden_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs not used for the claims, counted per preset and override."""
    reason = overridden(runs)
    rest = runs[reason != ""]
    if rest.empty:
        return pd.DataFrame(columns=["preset", "overridden", "runs"])
    frame = pd.DataFrame({"preset": tag(rest, record.PRESET).astype(str), "overridden": reason[rest.index]})
    return frame.groupby(["preset", "overridden"], sort=False).size().rename("runs").reset_index()


def at_multiplier_one(runs: pd.DataFrame) -> pd.DataFrame:
    multiplier = number(runs, "optim.lr_multiplier", 1.0)
    return runs[multiplier == 1.0]


def preset_order(runs: pd.DataFrame) -> list[str]:
    """The presets of these runs in the order every table lists them: by the role they play (roles.ROLES), then
    by system (record.SYSTEMS: old before new), then by name."""
    systems = tag(runs, record.SYSTEM).astype(str)
    keys = pd.DataFrame({"role": roles.role(runs).map(roles.rank),
                         "system": systems.map(lambda s: record.SYSTEMS.index(s) if s in record.SYSTEMS
                                               else len(record.SYSTEMS)),
                         "preset": tag(runs, record.PRESET, "?").astype(str)})
    first = keys.groupby("preset", sort=False)[["role", "system"]].min().reset_index()
    return first.sort_values(["role", "system", "preset"], kind="stable")["preset"].tolist()


CONFIGURATION_TAGS = {"system": record.SYSTEM, "source": record.SOURCE}
CONFIGURATION_SETTINGS = {
    "features": "data.features.scale", "precision": "trainer.precision", "lr": "optim.lr",
    "mel w": "loss.mel_loss_weight", "kl w": "loss.kl_loss_weight", "stop w": "loss.stop_loss_weight",
    "stop pos w": "loss.stop_positive_weight", "grad clip": "optim.clip_norm",
    "loss clip": "loss.total_loss_clip", "weighting": "weighting.name",
    "smoothing": "loss.label_smoothing", "huber": "loss.huber",
    "non-finite steps": "guards.nonfinite", "dampening": "guards.spike_dampening"}


def configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """Per preset, what its first run was set to, as the run recorded it (str of each setting)."""
    rows = []
    for preset in preset_order(runs):
        first = runs[tag(runs, record.PRESET).astype(str) == preset].iloc[[0]]
        rows.append({"preset": preset, "role": roles.role(first).iloc[0],
                     **{name: tag(first, key).iloc[0] for name, key in CONFIGURATION_TAGS.items()},
                     **{name: str(setting(first, path, "").iloc[0]) for name, path in CONFIGURATION_SETTINGS.items()}})
    return pd.DataFrame(rows)


def first_nonfinite_steps(runs: pd.DataFrame) -> pd.Series:
    return numeric(tag(runs, record.FIRST_NONFINITE_STEP))


def failures(runs: pd.DataFrame) -> pd.DataFrame:
    """The pull request's success-rate table and the small-dataset test's table, measured: per preset over seeds."""
    rows = []
    outcome = tag(runs, record.OUTCOME, "").astype(str)
    for preset in preset_order(runs):
        mine = tag(runs, record.PRESET).astype(str) == preset
        finished = mine & outcome.isin(record.VERDICTS)
        n = int(finished.sum())
        diverged = int((mine & (outcome == record.DIVERGED)).sum())
        low, high = wilson_interval(diverged, n)
        nonfinite = first_nonfinite_steps(runs[mine]).dropna()
        nonfinite_epochs = epochs_of(runs[mine], first_nonfinite_steps(runs[mine])).dropna()
        best = numeric(tag(runs[mine], record.BEST_VALIDATION)).dropna()
        rows.append({
            "preset": preset, "runs": n, "diverged": diverged,
            "divergence rate": diverged / n if n else math.nan, "95% CI low": low, "95% CI high": high,
            "median first non-finite step": float(nonfinite.median()) if len(nonfinite) else math.nan,
            "median first non-finite epoch": float(nonfinite_epochs.median()) if len(nonfinite_epochs) else math.nan,
            "runs with non-finite loss": len(nonfinite),
            "skipped steps": float(numeric(tag(runs[mine], record.SKIPPED_STEPS)).sum()),
            "spikes dampened": float(numeric(tag(runs[mine], record.DAMPENED_STEPS)).sum()),
            "best val L1 mean": float(best.mean()) if len(best) else math.nan,
            "best val L1 std": float(best.std(ddof=1)) if len(best) > 1 else math.nan,
            "failed/killed": int((mine & outcome.isin([record.FAILED, record.KILLED])).sum()),
            "other outcomes": ", ".join(f"{int((mine & (outcome == str(o))).sum())} {o}" for o in record.VERDICTS
                                        if o not in (record.STABLE, record.DIVERGED) and (mine & (outcome == str(o))).any()),
        })
    return pd.DataFrame(rows)


def window_of(runs: pd.DataFrame) -> pd.Series:
    """Per run, the steps of its first epoch (INITIAL_WINDOW where the run did not record its epoch size)."""
    per_epoch = numeric(tag(runs, record.STEPS_PER_EPOCH))
    return per_epoch.where(per_epoch > 0, INITIAL_WINDOW).fillna(INITIAL_WINDOW).astype(int)


def initial_losses(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The small-dataset test's 'epoch 1' form: loss, mel and stop averaged over each run's first epoch
    (its first INITIAL_WINDOW steps when the epoch size is unknown), mean over seeds."""
    window = dict(zip(runs["run_id"], window_of(runs))) if len(runs) else {}
    early = history[history["step"] < history["run_id"].map(window).fillna(INITIAL_WINDOW)]
    means = early.groupby(["run_id", "metric"])["value"].mean().unstack()
    rows = []
    for preset in preset_order(runs):
        ids = runs.loc[tag(runs, record.PRESET).astype(str) == preset, "run_id"]
        part = means.reindex(ids)
        row = {name: float(part[key].mean()) if key in part else math.nan
               for name, key in (("initial loss", record.LOSS_UNDAMPED), ("mel", record.raw("mel")),
                                 ("stop", record.raw("stop")))}
        steps = sorted(set(window_of(runs[runs["run_id"].isin(ids)])))
        rows.append({"preset": preset, **row, "runs": int(part.notna().any(axis=1).sum()),
                     "steps averaged": ", ".join(map(str, steps))})
    return pd.DataFrame(rows)


def epoch_values(runs: pd.DataFrame, history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Wide frame epoch (1-based) × run_id: the mean of `metric` over each epoch's steps. Runs without an
    epoch size count INITIAL_WINDOW steps as an epoch. A non-finite step makes its epoch non-finite."""
    part = history[(history["metric"] == metric) & history["run_id"].isin(runs["run_id"])]
    if part.empty:
        return pd.DataFrame()
    window = dict(zip(runs["run_id"], window_of(runs)))
    epoch = part["step"] // part["run_id"].map(window) + 1
    return part.assign(epoch=epoch).pivot_table(index="epoch", columns="run_id", values="value", aggfunc="mean",
                                                dropna=False)


def horizon_epochs(runs: pd.DataFrame) -> float:
    """The epochs every one of these runs was set to train (NaN when an epoch size is missing)."""
    epochs = number(runs, "trainer.steps") / numeric(tag(runs, record.STEPS_PER_EPOCH))
    return float(epochs.min()) if len(epochs) and epochs.notna().all() else math.nan


def progression(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The three-digit-loss note's 'loss at epoch 1/10/50/100' form: total loss averaged over those epochs,
    median over seeds. Runs without an epoch size fall back to single steps at fixed fractions of the run."""
    horizon = horizon_epochs(runs)
    if math.isfinite(horizon):
        marks = [e for e in (1, 10, 50, 100, 500, 1000) if e <= horizon] + ([int(horizon)] if horizon % 1 == 0
                                                                           and int(horizon) not in (1, 10, 50, 100,
                                                                                                    500, 1000) else [])
        wide, label = epoch_values(runs, history, record.LOSS_UNDAMPED), "epoch {}"
    else:
        steps = int(number(runs, "trainer.steps").max()) if len(runs) else 0
        marks = sorted({0, max(steps // 10 - 1, 0), max(steps // 2 - 1, 0), max(steps - 1, 0)})
        wide, label = series(history, record.LOSS_UNDAMPED), "step {}"
    rows = []
    for preset in preset_order(runs):
        ids = [i for i in runs.loc[tag(runs, record.PRESET).astype(str) == preset, "run_id"] if i in wide]
        row: dict[str, object] = {"preset": preset}
        for mark in marks:
            values = wide.loc[mark, ids] if mark in wide.index and ids else pd.Series(dtype=float)
            row[label.format(mark)] = _median_with_nonfinite(values) if ids else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _median_with_nonfinite(values: pd.Series) -> float:
    """Median that ranks NaN/inf as the worst value, so a diverged seed never drops out of the median."""
    ranked = np.sort(pd.Series(values, dtype=float).fillna(np.inf).to_numpy())
    if not len(ranked):
        return math.nan
    return float(ranked[(len(ranked) - 1) // 2: len(ranked) // 2 + 1].mean())


def weight_changes(history: pd.DataFrame, run_ids) -> pd.DataFrame:
    """Per run: adjustments, largest relative change per adjustment, min and max mel weight."""
    wide = series(history, record.WEIGHT_MEL).reindex(columns=list(run_ids))
    rows = []
    for run_id in wide.columns:
        weights = wide[run_id].dropna().to_numpy()
        if len(weights) < 2:
            continue
        finite = weights[np.isfinite(weights)]
        ratio = weights[1:] / weights[:-1]
        changed = np.isfinite(ratio) & (ratio != 1.0)
        rows.append({"run_id": run_id, "adjustments": int(changed.sum()),
                     "first change step": float(np.argmax(changed) + 1) if changed.any() else math.nan,
                     "largest change %": float(np.max(np.abs(ratio[changed] - 1)) * 100) if changed.any() else 0.0,
                     "min weight": float(finite.min()) if len(finite) else math.nan,
                     "max weight": float(finite.max()) if len(finite) else math.nan,
                     "first": float(weights[0])})
    return pd.DataFrame(rows, columns=["run_id", "adjustments", "first change step", "largest change %", "min weight",
                                       "max weight", "first"])


def weight_summary(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Per preset (one weighting strategy each): adjustments, largest change per adjustment, weight range."""
    rows = []
    presets = tag(runs, record.PRESET, "?").astype(str)
    strategies = setting(runs, "weighting.name", "?")
    for preset in preset_order(runs):
        changes = weight_changes(history, runs.loc[presets == preset, "run_id"])
        if changes.empty:
            continue
        rows.append({"preset": preset, "strategy": strategies[presets == preset].iloc[0], "runs": len(changes),
                     "adjustments per run": float(changes["adjustments"].mean()),
                     "runs that moved": int((changes["adjustments"] > 0).sum()),
                     "median first change step": float(changes["first change step"].median()),
                     "largest change per adjustment %": float(changes["largest change %"].max()),
                     "min weight": float(changes["min weight"].min()), "max weight": float(changes["max weight"].max())})
    return pd.DataFrame(rows)


def strategy_summary(summary: pd.DataFrame, strategy: str) -> dict | None:
    """weight_summary rows of one strategy folded together (for the claims about a strategy)."""
    rows = summary[summary["strategy"] == strategy] if len(summary) else summary
    if rows.empty:
        return None
    return {"runs": int(rows["runs"].sum()), "runs that moved": int(rows["runs that moved"].sum()),
            "adjustments per run": float((rows["adjustments per run"] * rows["runs"]).sum() / rows["runs"].sum()),
            "largest change per adjustment %": float(rows["largest change per adjustment %"].max()),
            "min weight": float(rows["min weight"].min()), "max weight": float(rows["max weight"].max())}


def weight_table(runs: pd.DataFrame, history: pd.DataFrame, every: int = 50) -> pd.DataFrame:
    """The design note's 'step → weight' table: median mel weight per preset at steps 0, 50, 100, ..."""
    wide = series(history, record.WEIGHT_MEL)
    if wide.empty:
        return pd.DataFrame()
    presets = tag(runs, record.PRESET, "?").astype(str)
    marks = list(range(0, int(wide.index.max()) + 1, every))
    table: dict[str, list] = {"step": marks}
    for preset in preset_order(runs):
        ids = [i for i in runs.loc[presets == preset, "run_id"] if i in wide]
        if ids:
            table[preset] = [float(wide.loc[m, ids].median()) if m in wide.index else math.nan for m in marks]
    return pd.DataFrame(table)


def epochs_of(runs: pd.DataFrame, steps: pd.Series) -> pd.Series:
    """Steps counted from 0 → epochs completed after that step (NaN where a run did not record its epoch size)."""
    per_epoch = numeric(tag(runs, record.STEPS_PER_EPOCH))
    return (steps + 1) / per_epoch


ABLATION_COLUMNS = ["base", "factor", "direction", "runs", "diverged", "divergence rate", "95% CI low",
                    "95% CI high", "median first non-finite epoch", "median best val L1", "median update norm",
                    "same runs as"]


def ablation(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """sweep=ablation: one row per (base preset, factor flipped), divergence over seeds with its interval. A run
    stands for its own arm and for every arm whose configuration is its own (tag `ablation_aliases`); column
    `same runs as` names the preset that trained an arm's borrowed runs."""
    identity = (record.ABLATION_BASE, record.ABLATION_FACTOR, record.ABLATION_DIRECTION)
    columns = {name: tag(runs, name).astype(str) for name in (*identity, record.ABLATION_ALIASES, record.PRESET)}
    members: dict[str, list] = {}
    trained_as: dict[str, set[str]] = {}
    for index in runs.index:
        own = record.ablation_arms({name: columns[name][index] for name in identity})
        for name in record.ablation_arms({name: values[index] for name, values in columns.items()}):
            members.setdefault(name, []).append(index)
            trained_as.setdefault(name, set()).add("" if name in own else columns[record.PRESET][index])
    if not any("" in sources for sources in trained_as.values()):   # no run of an ablation arm of its own
        return pd.DataFrame(columns=ABLATION_COLUMNS)
    outcome = tag(runs, record.OUTCOME).astype(str)
    updates = history[history["metric"] == record.UPDATE_NORM].groupby("run_id")["value"].median()
    first_epoch = epochs_of(runs, first_nonfinite_steps(runs))
    rows = []
    for name, indices in members.items():
        base, factor, direction = name.split(":")
        mine = runs.index.isin(indices)
        judged = mine & outcome.isin(record.VERDICTS)
        n, diverged = int(judged.sum()), int((mine & (outcome == record.DIVERGED)).sum())
        low, high = wilson_interval(diverged, n)
        epochs = first_epoch[mine].dropna()
        best = numeric(tag(runs[mine], record.BEST_VALIDATION)).dropna()
        update = updates.reindex(runs.loc[mine, "run_id"]).dropna()
        others = sorted(filter(None, trained_as[name]))
        rows.append({"base": base, "factor": factor, "direction": direction, "runs": n, "diverged": diverged,
                     "divergence rate": diverged / n if n else math.nan, "95% CI low": low, "95% CI high": high,
                     "median first non-finite epoch": float(epochs.median()) if len(epochs) else math.nan,
                     "median best val L1": float(best.median()) if len(best) else math.nan,
                     "median update norm": float(update.median()) if len(update) else math.nan,
                     "same runs as": ", ".join(others)})
    order = {"none": 0}
    return pd.DataFrame(rows, columns=ABLATION_COLUMNS).sort_values(
        ["base", "factor"], key=lambda s: s.map(lambda v: (order.get(v, 1), v))).reset_index(drop=True)


def lr_frontier(runs: pd.DataFrame) -> pd.DataFrame:
    multiplier = number(runs, "optim.lr_multiplier", 1.0)
    if multiplier.nunique() < 2:
        return pd.DataFrame()
    outcome = tag(runs, record.OUTCOME, "").astype(str)
    rows = []
    for preset in preset_order(runs):
        row: dict[str, object] = {"preset": preset}
        for value in sorted(multiplier.unique()):
            mine = (tag(runs, record.PRESET).astype(str) == preset) & (multiplier == value) & \
                outcome.isin(record.VERDICTS)
            n = int(mine.sum())
            row[f"x{value:g}"] = float((outcome[mine] == record.DIVERGED).sum() / n) if n else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# Where divergence starts: a signal "warns" when it exceeds WARNING_FACTOR × the largest |value| it had in
# the first BASELINE_FRACTION of the steps before the run's first non-finite step. Both are fixed in
# advance, never fitted to a run.
WARNING_FACTOR, BASELINE_FRACTION = 3.0, 0.25
ORIGIN_COLUMNS = ["preset", "runs", "runs with a non-finite step", "origin located", "origin (layer: op × runs)",
                  "earliest warning signal (runs)", "median steps of warning"]


def first_bad_steps(runs: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """Each run's first step with a non-finite loss or gradient: the replayed one (tag), else the earliest of
    its first non-finite loss and its first step flagged guard/nonfinite (NaN when there is none)."""
    flagged = history[(history["metric"] == record.GUARD_NONFINITE) & (history["value"] > 0)]
    first_flag = flagged.groupby("run_id")["step"].min() if len(flagged) else pd.Series(dtype=float)
    flags = pd.Series(runs["run_id"].map(first_flag).to_numpy(dtype=float), index=runs.index)
    recorded = pd.concat([first_nonfinite_steps(runs), flags], axis=1).min(axis=1)
    return numeric(tag(runs, record.NAN_ORIGIN_STEP)).fillna(recorded)


def earliest_warning(history: pd.DataFrame, run_id: str, bad_step: float) -> tuple[str, float] | None:
    """(signal, steps ahead of bad_step) of the diag/ signal that first crossed its warning level."""
    part = history[(history["run_id"] == run_id) & history["metric"].str.startswith(record.DIAG_PREFIX)
                   & (history["step"] < bad_step)]
    best = None
    for metric, values in part.groupby("metric"):
        values = values.sort_values("step")
        early = values[values["step"] < max(bad_step * BASELINE_FRACTION, values["step"].iloc[0] + 1)]
        level = WARNING_FACTOR * float(np.nanmax(np.abs(early["value"]))) if len(early) else math.nan
        later = values[(values["step"] > early["step"].max()) & (values["value"].abs() > level)]
        if math.isfinite(level) and len(later):
            step = float(later["step"].iloc[0])
            if best is None or step < best[1]:
                best = (metric.removeprefix(record.DIAG_PREFIX), step)
    return (best[0], bad_step - best[1]) if best else None


def divergence_origins(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Per preset: where the first non-finite value appeared (the replay's tags), and which per-layer signal
    crossed its warning level first, how many steps ahead."""
    presets = tag(runs, record.PRESET, "?").astype(str)
    bad = first_bad_steps(runs, history)
    rows = []
    for preset in preset_order(runs):
        mine = runs[presets == preset]
        hit = mine[bad[presets == preset].notna()]
        if hit.empty:
            continue
        located = hit[tag(hit, record.NAN_ORIGIN_LAYER).astype(str) != ""]
        origins = (tag(located, record.NAN_ORIGIN_LAYER).astype(str) + ": " +
                   tag(located, record.NAN_ORIGIN_OP).astype(str)).value_counts()
        found = [earliest_warning(history, run_id, step) for run_id, step in zip(hit["run_id"], bad[hit.index])]
        warnings = [w for w in found if w is not None]
        signals = pd.Series([w[0] for w in warnings]).value_counts() if warnings else pd.Series(dtype=int)
        rows.append({"preset": preset, "runs": len(mine), "runs with a non-finite step": len(hit),
                     "origin located": len(located),
                     "origin (layer: op × runs)": "; ".join(f"{o} × {n}" for o, n in origins.items())
                     or "— (not replayed)",
                     "earliest warning signal (runs)": "; ".join(f"{s} ({n})" for s, n in signals.items()) or "none",
                     "median steps of warning": float(np.median([w[1] for w in warnings])) if warnings else math.nan})
    return pd.DataFrame(rows, columns=ORIGIN_COLUMNS)
