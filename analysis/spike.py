"""A loss spike injected into real training (fault=spike): is the loss non-finite on the next step, does the
run recover, and what the mel weight does around it (pure pandas; no TensorFlow, no MLflow).

The rules, fixed before any spike sweep (never fitted to a result):
- The spike step is fault.step: every raw loss term is multiplied by fault.factor in that one step.
- *NaN next step*: the optimised loss (loss/total) is non-finite at the first logged step after the spike.
- *Recovered*: the run did not diverge, and at some step after the spike its loss/total is back at or below
  RECOVERY_FACTOR x its median over the PRE_WINDOW steps before the spike; *steps to recover* counts from the
  spike step to that step.
- The weight's response: the mel weight's largest one-step relative change from the step before the spike
  to RESPONSE_WINDOW steps after it, and the weight before the spike and at the end.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import roles
from analysis.stats import wilson_interval
from analysis.tables import column, overridden, preset_order, setting, tag
from myxtts import record

PRE_WINDOW = 50
RECOVERY_FACTOR = 1.1
RESPONSE_WINDOW = 10
SPIKE = "spike"


def spiked_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with a verdict whose only deviation from their preset is the spike fault: the evidence
    for the documents' spike claims."""
    kind = setting(runs, "fault.kind", "none")
    only_fault = overridden(runs).map(lambda text: all(o.startswith("fault") for o in str(text).split()))
    verdict = tag(runs, record.OUTCOME).astype(str).isin(record.VERDICTS)
    return runs[(kind == SPIKE) & only_fault & verdict & (column(runs, "status") == "FINISHED")]


COLUMNS = ["run_id", "preset", "role", "system", "seed", "outcome", "spike step", "loss before", "loss at spike",
           "undamped at spike", "nan next step", "recovered", "steps to recover", "weight before",
           "largest weight change %", "weight at end", "val before", "val at end"]


def _at(values: pd.Series, step: int) -> float:
    return float(values.loc[step]) if step in values.index else math.nan


def _last_before(values: pd.Series, step: int) -> float:
    earlier = values[values.index < step].dropna()
    return float(earlier.iloc[-1]) if len(earlier) else math.nan


def per_run(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per spiked run: the loss around the spike, the rules' facts and the mel weight's response."""
    spiked = spiked_runs(runs)
    if spiked.empty:
        return pd.DataFrame(columns=COLUMNS)
    mine = history[history["run_id"].isin(spiked["run_id"])]
    curves = {key: part.set_index("step")["value"].sort_index()
              for key, part in mine.groupby(["run_id", "metric"], sort=False)}
    empty = pd.Series(dtype=float)
    rows = []
    for (_, run), role in zip(spiked.iterrows(), roles.role(spiked)):
        rid, at = run["run_id"], int(run["config"].fault.step)
        total, undamped, weight, val = (curves.get((rid, m), empty) for m in (
            record.LOSS_TOTAL, record.LOSS_UNDAMPED, record.WEIGHT_MEL, record.VAL_POSTNET))
        weight, val = weight.dropna(), val.dropna()
        before = total[(total.index < at) & (total.index >= at - PRE_WINDOW)]
        baseline = float(np.nanmedian(before)) if before.notna().any() else math.nan
        after = total[total.index > at]
        nan_next = bool(len(after)) and not math.isfinite(float(after.iloc[0]))
        outcome = str(run.get(record.tag_column(record.OUTCOME), ""))
        back = after[np.isfinite(after) & (after <= RECOVERY_FACTOR * baseline)]
        recovered = outcome != record.DIVERGED and len(back) > 0
        around = weight[(weight.index >= at - 1) & (weight.index <= at + RESPONSE_WINDOW)].to_numpy()
        ratios = around[1:] / around[:-1] if len(around) > 1 else np.array([])
        ratios = ratios[np.isfinite(ratios)]
        rows.append({"run_id": rid, "preset": str(run.get(record.tag_column(record.PRESET), "")), "role": role,
                     "system": str(run.get(record.tag_column(record.SYSTEM), "")),
                     "seed": str(run.get(record.tag_column(record.SEED), "")), "outcome": outcome, "spike step": at,
                     "loss before": baseline, "loss at spike": _at(total, at), "undamped at spike": _at(undamped, at),
                     "nan next step": nan_next, "recovered": recovered,
                     "steps to recover": float(back.index[0] - at) if recovered else math.nan,
                     "weight before": _last_before(weight, at),
                     "largest weight change %": float(np.max(np.abs(ratios - 1)) * 100) if len(ratios) else math.nan,
                     "weight at end": float(weight.iloc[-1]) if len(weight) else math.nan,
                     "val before": _last_before(val, at + 1), "val at end": float(val.iloc[-1]) if len(val) else math.nan})
    return pd.DataFrame(rows, columns=COLUMNS)


SUMMARY_COLUMNS = ["preset", "role", "system", "runs", "nan next step", "diverged", "recovered", "95% CI low", "95% CI high",
                   "median steps to recover", "median loss before", "median loss at spike", "median undamped at spike",
                   "largest weight change %", "median val before", "median val at end"]


def summary(facts: pd.DataFrame) -> pd.DataFrame:
    """Per preset: how many spiked runs went non-finite on the next step, diverged and recovered (95 % Wilson
    interval on the recovered fraction), and the medians of the per-run facts."""
    rows = []
    as_tags = {"preset": record.PRESET, "role": record.ROLE, "system": record.SYSTEM}
    for preset in preset_order(facts.rename(columns={k: record.tag_column(v) for k, v in as_tags.items()})) \
            if len(facts) else []:
        mine = facts[facts["preset"] == preset]
        n, recovered = len(mine), int(mine["recovered"].sum())
        low, high = wilson_interval(recovered, n)
        rows.append({"preset": preset, "role": mine["role"].iloc[0], "system": mine["system"].iloc[0], "runs": n,
                     "nan next step": int(mine["nan next step"].sum()),
                     "diverged": int((mine["outcome"] == record.DIVERGED).sum()), "recovered": recovered,
                     "95% CI low": low, "95% CI high": high,
                     "median steps to recover": float(mine["steps to recover"].median()),
                     "median loss before": float(mine["loss before"].median()),
                     "median loss at spike": float(mine["loss at spike"].median()),
                     "median undamped at spike": float(mine["undamped at spike"].median()),
                     "largest weight change %": float(mine["largest weight change %"].max()),
                     "median val before": float(mine["val before"].median()),
                     "median val at end": float(mine["val at end"].median())})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
