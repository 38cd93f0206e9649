"""The failure frontier: outcomes per configuration and absolute learning rate, the critical learning rate
and the LR sensitivity (pure pandas; no TensorFlow, no MLflow).

- A configuration is a preset (arms such as warmup or SGD are presets of their own), trained at one model
  size: every table groups by (configuration, size), the size named with its parameter count; a rate is the
  run's effective learning rate (param optim.effective_lr).
- The edge is defined by divergence alone (EDGE): a run that froze or did not learn is counted beside it in
  the outcome table but does not move the edge.
- Critical learning rate: where half of the seeds diverge. The point estimate interpolates, in log rate,
  between the last rate whose failure fraction is below 1/2 and the first at or above it. Its interval runs
  from the highest rate below the point whose 95 % Wilson interval lies wholly below 1/2 to the lowest rate
  above it whose interval lies wholly above 1/2; where no measured rate is that clear the side stays open
  (one seed per rate never is: a 0/1 interval reaches 0.79).
- LR sensitivity (Wortsman et al. 2023): the mean over the grid's rates of min(final loss, initial loss)
  minus the best final loss of the configuration over the grid. The loss is the validation postnet L1; a
  run without a final loss (diverged) counts as its initial loss; several seeds at one rate are averaged.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import roles
from analysis.stats import fisher_exact_greater, smallest_detectable_rate, wilson_interval
from analysis.tables import as_documented, column, number, numeric, preset_order, setting, tag
from myxtts import record
from myxtts.models.settings import PARAMETERS, size_label
from myxtts.training.settings import LegacyTanhSettings

HALF = 0.5
EDGE = (record.DIVERGED,)   # the outcomes that define the edge
LAST_CALM, FIRST_DIVERGING = "last lr without divergence", "first diverging lr"
GRID_MIN_RATES = 2   # a preset trained at this many distinct absolute rates makes the experiment a rate grid


def rates(runs: pd.DataFrame) -> pd.Series:
    """The absolute rate each run trained at (optim.lr × optim.lr_multiplier)."""
    return number(runs, "optim.effective_lr")


SIZE_OF_LABEL = {size_label(name): name for name in PARAMETERS}


def judged(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with a verdict, with their rate (`lr`), preset (`configuration`) and model size (`size`,
    named with its parameter count) as columns."""
    outcome = tag(runs, record.OUTCOME).astype(str)
    keep = runs[outcome.isin(record.VERDICTS) & (column(runs, "status") == "FINISHED")].copy()  # one block
    keep["lr"] = rates(keep)
    keep["configuration"] = tag(keep, record.PRESET).astype(str)
    keep["size"] = setting(keep, "model.size", "tiny").astype(str).map(size_label)
    return keep


def groups(done: pd.DataFrame):
    """(configuration, size) and its runs, configurations in the report's order, sizes from small to large."""
    order = {label: PARAMETERS.get(name, 0) for label, name in SIZE_OF_LABEL.items()}
    for preset in preset_order(done):
        mine = done[done["configuration"] == preset]
        for size in sorted(mine["size"].unique(), key=lambda label: (order.get(label, 0), label)):
            yield (preset, size), mine[mine["size"] == size]


def is_grid(runs: pd.DataFrame) -> bool:
    """True when a configuration was trained at several absolute rates (multiplier stresses such as
    sweep=lr_stress keep their own report)."""
    done = judged(runs)
    if done.empty or (number(done, "optim.lr_multiplier", 1.0) != 1.0).any():
        return False
    if len(as_documented(done)):   # runs at their documented settings: a comparison with a probe beside it
        return False
    return int(done.groupby(["configuration", "size"])["lr"].nunique().max()) >= GRID_MIN_RATES


OUTCOME_COLUMNS = ["configuration", "size", "lr", "runs", *map(str, record.VERDICTS), "spiky", "divergence rate", "95% CI low",
                   "95% CI high"]


def outcome_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, size and rate: counts of every verdict, the spiky flag, the divergence rate."""
    done = judged(runs)
    rows = []
    outcome = tag(done, record.OUTCOME).astype(str)
    spiky = tag(done, record.SPIKY).astype(str) == "true"
    for (preset, size), group in groups(done):
        for lr in sorted(group["lr"].unique()):
            mine = done.index.isin(group.index[group["lr"] == lr])
            n = int(mine.sum())
            failed = int((mine & outcome.isin(EDGE)).sum())
            low, high = wilson_interval(failed, n)
            rows.append({"configuration": preset, "size": size, "lr": float(lr), "runs": n,
                         **{str(v): int((mine & (outcome == v)).sum()) for v in record.VERDICTS},
                         "spiky": int((mine & spiky).sum()), "divergence rate": failed / n,
                         "95% CI low": low, "95% CI high": high})
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


TIMING_COLUMNS = ["configuration", "size", "lr", "failed", "failed at step", "first", "last",
                  "at or after the old weight can move"]


def failure_timing(runs: pd.DataFrame) -> pd.DataFrame:
    """When the failures happened, per configuration and rate with any: the step each failed run stopped or
    was judged at (a divergence's step; the steps trained for frozen and not_learning), and how many failed
    at or after the step from which the old tanh weight can first leave its floor (the documents' slow
    mechanism; a failure before it cannot be that mechanism's)."""
    done = judged(runs)
    can_move = LegacyTanhSettings().first_step_off_floor()
    facts = done["facts"] if "facts" in done else pd.Series([None] * len(done), index=done.index)
    rows = []
    for (preset, size), group in groups(done):
        for lr in sorted(group["lr"].unique()):
            mine = done.index.isin(group.index[group["lr"] == lr])
            failed = [f for f in facts[mine] if f is not None and f.outcome in record.FAILURES]
            if not failed:
                continue
            steps = sorted(f.steps_completed if f.diverged_at_step is None else f.diverged_at_step for f in failed)
            rows.append({"configuration": preset, "size": size, "lr": float(lr), "failed": f"{len(failed)}/{int(mine.sum())}",
                         "failed at step": ", ".join(map(str, steps)), "first": steps[0], "last": steps[-1],
                         "at or after the old weight can move": f"{sum(s >= can_move for s in steps)} (step ≥ {can_move})"})
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def _interpolate(lr_a: float, p_a: float, lr_b: float, p_b: float) -> float:
    if p_b == p_a:
        return math.sqrt(lr_a * lr_b)
    t = (HALF - p_a) / (p_b - p_a)
    return float(10 ** (math.log10(lr_a) + t * (math.log10(lr_b) - math.log10(lr_a))))


def critical_rate(rows: pd.DataFrame) -> dict:
    """rows: one configuration's outcome_table rows. The critical rate, its interval and its bracket."""
    rows = rows.sort_values("lr").reset_index(drop=True)
    lr, p = rows["lr"].to_numpy(float), rows["divergence rate"].to_numpy(float)
    at_or_above = np.flatnonzero(p >= HALF)
    calm = rows[rows["divergence rate"] == 0]
    result = {LAST_CALM: float(calm["lr"].max()) if len(calm) else math.nan,
              FIRST_DIVERGING: float(rows.loc[rows["divergence rate"] > 0, "lr"].min())
              if (rows["divergence rate"] > 0).any() else math.nan}
    if not len(at_or_above):
        point, text = math.nan, f"> {lr[-1]:.3g} (no rate diverged in half its seeds)"
    elif at_or_above[0] == 0:
        point, text = math.nan, f"<= {lr[0]:.3g} (the lowest rate already diverged in half its seeds)"
    else:
        i = int(at_or_above[0])
        point = _interpolate(lr[i - 1], p[i - 1], lr[i], p[i])
        text = f"{point:.3g}"
    below = rows[(rows["95% CI high"] < HALF) & (rows["lr"] < (point if math.isfinite(point) else np.inf))]
    above = rows[(rows["95% CI low"] > HALF) & (rows["lr"] > (point if math.isfinite(point) else 0))]
    low = float(below["lr"].max()) if len(below) else math.nan
    high = float(above["lr"].min()) if len(above) else math.nan
    if math.isfinite(point) or math.isfinite(low) or math.isfinite(high):
        interval = f"[{f'{low:.3g}' if math.isfinite(low) else 'open'}, {f'{high:.3g}' if math.isfinite(high) else 'open'}]"
    else:
        interval = "—"
    return {"critical lr": point, "critical lr (text)": text, "interval": interval,
            "interval low": low, "interval high": high, **result}


def final_losses(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: rate, initial and final validation loss, and the capped final loss the sensitivity uses."""
    done = judged(runs)
    initial = numeric(tag(done, record.INITIAL_VALIDATION))
    final = numeric(tag(done, record.FINAL_VALIDATION))
    capped = pd.concat([final.fillna(initial), initial], axis=1).min(axis=1, skipna=False)
    return pd.DataFrame({"configuration": done["configuration"], "size": done["size"], "lr": done["lr"],
                         "outcome": tag(done, record.OUTCOME).astype(str),
                         "initial": initial, "final": final, "capped": capped})


SENSITIVITY_COLUMNS = ["configuration", "size", "rates", "best final loss", "at lr", "LR sensitivity"]


def sensitivity(runs: pd.DataFrame, grid: list[float] | None = None) -> pd.DataFrame:
    """Wortsman et al.'s LR sensitivity per configuration over the rates in `grid` (default: every rate a
    configuration was trained at)."""
    losses = final_losses(runs)
    rows = []
    for (preset, size), group in groups(judged(runs)):
        mine = losses.loc[group.index]
        if grid is not None:
            mine = mine[np.isclose(mine["lr"].to_numpy(float)[:, None], np.asarray(grid, float)[None, :]).any(axis=1)]
        per_rate = mine.groupby("lr")["capped"].mean()
        finals = mine.groupby("lr")["final"].mean().dropna()
        if per_rate.dropna().empty or finals.empty:
            continue
        best = float(finals.min())
        rows.append({"configuration": preset, "size": size, "rates": int(per_rate.notna().sum()), "best final loss": best,
                     "at lr": float(finals.idxmin()), "LR sensitivity": float((per_rate.dropna() - best).mean())})
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def grid_rates(runs: pd.DataFrame) -> list[float]:
    """The rates every (configuration, size) of the experiment was trained at (the shared absolute grid)."""
    per_group = [set(group["lr"]) for _, group in groups(judged(runs))]
    return sorted(set.intersection(*per_group)) if per_group else []


def refinement_plan(runs: pd.DataFrame, points: int = 2) -> dict[tuple[str, str], list[float]]:
    """Per (configuration, size), `points` rates spaced evenly in log rate strictly between its last grid rate
    without divergence and the first grid rate above it with one: where the refinement's seeds go."""
    table = outcome_table(runs)
    grid = grid_rates(runs)
    table = table[np.isclose(table["lr"].to_numpy(float)[:, None], np.asarray(grid or [np.nan])[None, :]).any(axis=1)]
    plan = {}
    for key, rows in table.groupby(["configuration", "size"], sort=False):
        rows = rows.sort_values("lr")
        failing = rows[rows["divergence rate"] > 0]
        if failing.empty:
            continue
        first = float(failing["lr"].iloc[0])
        stable_below = rows[(rows["lr"] < first) & (rows["divergence rate"] == 0)]
        if stable_below.empty:
            continue
        last = float(stable_below["lr"].iloc[-1])
        span = math.log10(first) - math.log10(last)
        plan[key] = [float(f"{10 ** (math.log10(last) + span * k / (points + 1)):.3g}") for k in range(1, points + 1)]
    return plan


def critical_table(runs: pd.DataFrame) -> pd.DataFrame:
    table = outcome_table(runs)
    rows = []
    for (preset, size), mine in table.groupby(["configuration", "size"], sort=False):
        found = critical_rate(mine)
        rows.append({"configuration": preset, "size": size, LAST_CALM: found[LAST_CALM],
                     FIRST_DIVERGING: found[FIRST_DIVERGING], "critical lr": found["critical lr (text)"],
                     "interval": found["interval"], "seeds at the bracket": int(
                         mine.loc[(mine["lr"] >= found[LAST_CALM]) & (mine["lr"] <= found[FIRST_DIVERGING]),
                                  "runs"].sum()) if math.isfinite(found[FIRST_DIVERGING]) else 0})
    return pd.DataFrame(rows)


WARNING_COLUMNS = ["configuration", "size", "failed runs", "with a non-finite step", "warned before it",
                   "median lead (steps)", "earliest signals", "non-failing runs", "false alarms", "false-alarm rate"]


def early_warning(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The per-layer warning (tables.earliest_warning, its fixed factor and baseline) validated: its lead
    time before each failing run's first non-finite step, and how often it fires in runs that do not fail."""
    from analysis.tables import earliest_warning, first_bad_steps

    done = judged(runs)
    if done.empty or not history["metric"].str.startswith(record.DIAG_PREFIX).any():
        return pd.DataFrame(columns=WARNING_COLUMNS)
    bad = first_bad_steps(done, history)
    last = history.groupby("run_id")["step"].max()
    outcome = tag(done, record.OUTCOME).astype(str)
    rows = []
    for (preset, size), mine in groups(done):
        failing = mine[outcome[mine.index].isin(record.FAILURES)]
        hit = failing[bad[failing.index].notna()]
        leads = [w for w in (earliest_warning(history, r, bad[i]) for i, r in zip(hit.index, hit["run_id"])) if w]
        calm = mine[outcome[mine.index] == record.STABLE]
        alarms = sum(earliest_warning(history, r, float(last.get(r, 0)) + 1) is not None for r in calm["run_id"])
        signals = pd.Series([w[0] for w in leads]).value_counts() if leads else pd.Series(dtype=int)
        rows.append({"configuration": preset, "size": size, "failed runs": len(failing), "with a non-finite step": len(hit),
                     "warned before it": len(leads),
                     "median lead (steps)": float(np.median([w[1] for w in leads])) if leads else math.nan,
                     "earliest signals": "; ".join(f"{s} ({n})" for s, n in signals.head(3).items()) or "—",
                     "non-failing runs": len(calm), "false alarms": int(alarms),
                     "false-alarm rate": alarms / len(calm) if len(calm) else math.nan})
    return pd.DataFrame(rows, columns=WARNING_COLUMNS)


def _rate(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "none"


def findings(outcomes: pd.DataFrame, critical: pd.DataFrame, sensitivities: pd.DataFrame) -> list[str]:
    """The frontier report's opening lines, from its own tables."""
    if outcomes.empty:
        return ["- No finished run yet."]
    totals = {v: int(outcomes[v].sum()) for v in record.VERDICTS}
    lines = [f"- {int(outcomes['runs'].sum())} runs at {outcomes['lr'].nunique()} learning rates: "
             + ", ".join(f"{n} {v}" for v, n in totals.items()) + f"; {int(outcomes['spiky'].sum())} spiky."]
    merged = critical.merge(sensitivities, on=["configuration", "size"], how="left")
    for _, row in merged.iterrows():
        sens = row.get("LR sensitivity")
        lines.append(f"- {row['configuration']} at {row['size']}: no divergence up to {_rate(row[LAST_CALM])}, "
                     f"first divergence at {_rate(row[FIRST_DIVERGING])}; critical lr {row['critical lr']} "
                     f"(interval {row['interval']})"
                     + (f"; LR sensitivity {sens:.3g}" if isinstance(sens, float) and math.isfinite(sens) else ""))
    return lines


# The stabilizers compared at the same stress: the control, its treatment and the other arms the experiment's design
# names (conf/sweep/*.yaml `roles`), each described by its preset.
COMPARED_ROLES = ("control", "treatment", "arm")
STABILIZER_COLUMNS = ["configuration", "size", "role", "description", "critical lr", "interval", "x control",
                      "LR sensitivity", "x control sensitivity"]


def controls(runs: pd.DataFrame) -> list[str]:
    """The configurations that play the control in these runs' experiment, in table order."""
    mine = set(tag(roles.with_role(runs, "control"), record.PRESET).astype(str))
    return [preset for preset in preset_order(runs) if preset in mine]


def stabilizer_table(critical: pd.DataFrame, sensitivities: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The documents' stabilizer against the literature's, each at the same rates and size as the control:
    critical rate and LR sensitivity, and each as a factor of the control's at that size (NaN where either is
    not a number, or where no control ran at that size). Empty when nothing in these runs plays the control."""
    if critical.empty or not controls(runs):
        return pd.DataFrame(columns=STABILIZER_COLUMNS)
    merged = critical.merge(sensitivities, on=["configuration", "size"], how="left").set_index(["configuration", "size"])
    points = {key: critical_rate(rows)["critical lr"]
              for key, rows in outcome_table(runs).groupby(["configuration", "size"])}
    presets = tag(runs, record.PRESET).astype(str)
    role, described = roles.role(runs), roles.description(runs)
    compared = [p for p in preset_order(runs) if role[presets == p].iloc[0] in COMPARED_ROLES]
    rows = []
    for size in dict.fromkeys(critical["size"]):
        control = next((c for c in controls(runs) if (c, size) in merged.index), None)
        for name in compared:
            if (name, size) not in merged.index:
                continue
            row = merged.loc[(name, size)]
            ratio = points.get((name, size), math.nan) / points.get((control, size), math.nan)
            base = merged["LR sensitivity"].get((control, size), math.nan)
            rows.append({"configuration": name, "size": size, "role": role[presets == name].iloc[0],
                         "description": described[presets == name].iloc[0],
                         "critical lr": row["critical lr"], "interval": row["interval"], "x control": ratio,
                         "LR sensitivity": row.get("LR sensitivity"),
                         "x control sensitivity": row.get("LR sensitivity") / base if base else math.nan})
    return pd.DataFrame(rows, columns=STABILIZER_COLUMNS)


PREVENTION_MIN_SEEDS = 5   # the refinement's seeds per rate: fewer cannot make a one-sided test significant


def prevention_table(runs: pd.DataFrame, control: str | None = None) -> pd.DataFrame:
    """At every (size, rate) where a control (`control`, default: every configuration playing the control) and
    another configuration each have at least PREVENTION_MIN_SEEDS finished runs: failures of both, the one-sided
    Fisher exact p that the control fails more often (the prevention test, where the control really fails) and
    that it fails less often (the change hurts), and the smallest control failure rate this design detects
    against 0 with power 0.8 (alpha 0.05, one-sided)."""
    table = outcome_table(runs)
    table = table[table["runs"] >= PREVENTION_MIN_SEEDS]
    rows = []
    for name in [control] if control is not None else controls(runs):
        for _, row in table[table["configuration"] != name].iterrows():
            ours = table[(table["configuration"] == name) & (table["size"] == row["size"])
                         & np.isclose(table["lr"].to_numpy(float), row["lr"], rtol=1e-6)]
            if ours.empty:
                continue
            ours = ours.iloc[0]
            n_c, f_c = int(ours["runs"]), int(ours["runs"] - ours["stable"])
            n_o, f_o = int(row["runs"]), int(row["runs"] - row["stable"])
            rows.append({"size": row["size"], "lr": row["lr"], "control": name, "configuration": row["configuration"],
                         "control failed": f"{f_c}/{n_c}", "failed": f"{f_o}/{n_o}",
                         "p (control fails more)": fisher_exact_greater(f_c, n_c, f_o, n_o),
                         "p (control fails less)": fisher_exact_greater(f_o, n_o, f_c, n_c),
                         "detectable at power 0.8": smallest_detectable_rate(n_c, n_o)})
    return pd.DataFrame(rows).sort_values(["size", "lr", "control", "configuration"], kind="stable") \
        .reset_index(drop=True) if rows else pd.DataFrame()
