"""The late-failure search (docs/plans/2026-12-07-late-failure-search.md): when each failure happened, whether
it came after both adaptive weights can act, and the preregistered criterion for a positive control.

Pure pandas over the runs frame; the thresholds are written once here and the report's text is made from them.
"""
from __future__ import annotations

import pandas as pd

from analysis import frontier
from analysis.stats import wilson_interval
from analysis.tables import number, numeric, setting, tag
from myxtts import record
from myxtts.training.settings import LegacyTanhSettings, StableSettings

# A failure is late when it happens after both systems can act: the old tanh weight's first possible move
# off its floor, and the end of the new controller's warmup.
OLD_CAN_ACT = LegacyTanhSettings().first_step_off_floor()
NEW_CAN_ACT = StableSettings().min_warmup_steps
LATE_AFTER = max(OLD_CAN_ACT, NEW_CAN_ACT)
SEARCH_SEEDS = (0, 1, 2)           # stage 1's seeds: they make a candidate and are never counted to confirm it
CONFIRM_SEEDS = 10                 # a candidate is confirmed on this many fresh seeds (plan, amendment 1)
CRITERION_LOW, CRITERION_HIGH = 0.3, 0.8   # ... when this share of them fail late


def failure_step(facts: record.RunFacts | None) -> int | None:
    """The step at which a diverged run first went wrong: its first non-finite step or, when its loss exploded
    while finite, the step its divergence was declared, whichever is earlier; None for a run that did not diverge."""
    if facts is None or facts.outcome != record.DIVERGED:
        return None
    steps = [s for s in (facts.first_nonfinite_step, facts.diverged_at_step) if s is not None]
    return min(steps) if steps else facts.steps_completed


MOVED = f"old weight moved after step {LATE_AFTER}"   # in how many old-system runs its mechanism acted late
SEARCH_COLUMNS = ["configuration", "system", "size", "lr", "steps", "runs", *map(str, record.VERDICTS),
                  "late failures", "late rate", "95% CI low", "95% CI high", "failure steps",
                  "stage-1 late", "confirmation late", MOVED, "training hours"]


def _moved_late(history: pd.DataFrame | None, run_ids) -> set[str]:
    """The runs whose old tanh weight changed after LATE_AFTER (its mechanism acted where a failure would count)."""
    if history is None or history.empty:
        return set()
    weights = history[(history["metric"] == record.WEIGHT_MEL) & history["run_id"].isin(run_ids)]
    moved = set()
    for run_id, part in weights.groupby("run_id"):
        values = part.sort_values("step")
        changed = values["value"].diff().abs() > 1e-6
        if (changed & (values["step"] > LATE_AFTER)).any():
            moved.add(run_id)
    return moved


def search_table(runs: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (configuration, size, rate, horizon): every outcome, the late failures (failure step after
    LATE_AFTER) with a Wilson interval, each failure's step, in how many old-system runs the old weight moved after
    LATE_AFTER (from `history`; "—" for a new-system arm), and the arm's cost in core-hours of training."""
    done = frontier.judged(runs)
    done["steps"] = number(done, "trainer.steps")
    outcome = tag(done, record.OUTCOME).astype(str)
    system = tag(done, record.SYSTEM).astype(str)
    seconds = numeric(tag(done, record.TRAIN_SECONDS)).fillna(0.0)
    steps_of = [failure_step(f) for f in done.get("facts", pd.Series([None] * len(done), index=done.index))]
    done["failure step"] = pd.Series(steps_of, index=done.index, dtype=object)
    stage_one = numeric(tag(done, record.SEED)).isin(SEARCH_SEEDS)
    old = done[setting(done, "weighting.name") == "legacy_tanh"]
    moved = _moved_late(history, old["run_id"])
    rows = []
    for (preset, size), group in frontier.groups(done):
        for (lr, steps), mine in group.groupby(["lr", "steps"], sort=True):
            failed = [int(s) for s in mine["failure step"] if s is not None]
            late = sum(s > LATE_AFTER for s in failed)
            is_late = mine["failure step"].map(lambda s: s is not None and int(s) > LATE_AFTER)
            first, fresh = stage_one[mine.index], ~stage_one[mine.index]
            low, high = wilson_interval(late, len(mine))
            rows.append({"configuration": preset, "system": "/".join(sorted(set(system[mine.index]))), "size": size,
                         "lr": float(lr), "steps": int(steps), "runs": len(mine),
                         **{str(v): int((outcome[mine.index] == v).sum()) for v in record.VERDICTS},
                         "late failures": late, "late rate": late / len(mine), "95% CI low": low, "95% CI high": high,
                         "failure steps": ", ".join(map(str, sorted(failed))) or "—",
                         "stage-1 late": f"{int(is_late[first].sum())}/{int(first.sum())}",
                         "confirmation late": f"{int(is_late[fresh].sum())}/{int(fresh.sum())}",
                         MOVED: (f"{sum(r in moved for r in mine['run_id'])}/{len(mine)}"
                                                             if mine["run_id"].isin(old["run_id"]).all() else "—"),
                         "training hours": float(seconds[mine.index].sum()) / 3600})
    return pd.DataFrame(rows, columns=SEARCH_COLUMNS)


def meets_criterion(late: int, seeds: int) -> bool:
    """The plan's criterion: at least CONFIRM_SEEDS fresh seeds, CRITERION_LOW..CRITERION_HIGH of them failing late."""
    return seeds >= CONFIRM_SEEDS and CRITERION_LOW <= late / seeds <= CRITERION_HIGH


def criterion_text() -> str:
    return (f"the control fails late (after step {LATE_AFTER}: the old weight can first move at step {OLD_CAN_ACT}, "
            f"the new controller's warmup ends at step {NEW_CAN_ACT}) in {CRITERION_LOW:.0%}-{CRITERION_HIGH:.0%} "
            f"of at least {CONFIRM_SEEDS} fresh seeds at a rate where a stage-1 seed "
            f"({', '.join(map(str, SEARCH_SEEDS))}) failed late")


def search_outcome(table: pd.DataFrame, control_system: str = "old", still_training: int = 0) -> dict:
    """What the search found among the control's arms (system `control_system`): the candidates (any late
    failure), the confirmed settings (meets_criterion), and the statement the report opens with."""
    control = table[table["system"] == control_system]
    first = control["stage-1 late"].str.split("/").str[0].astype(int) if len(control) else pd.Series(dtype=int)
    candidates = control[first > 0]
    fresh = candidates["confirmation late"].str.split("/", expand=True).astype(int) if len(candidates) \
        else pd.DataFrame(columns=[0, 1])
    confirmed = candidates[[meets_criterion(int(late), int(seeds)) for late, seeds in zip(fresh[0], fresh[1])]]
    if len(confirmed):
        best = confirmed.sort_values(["late failures", "lr"], ascending=[False, True]).iloc[0]
        said = (f"found: {best['configuration']} at {best['size']}, lr {best['lr']:g}, {best['steps']} steps — "
                f"{best['confirmation late']} fresh seeds failed late")
    elif len(candidates):
        said = ("no setting confirmed yet: candidates with a late failure in stage 1 need "
                f"{CONFIRM_SEEDS} fresh seeds — " + "; ".join(
                    f"{r['configuration']} at {r['size']}, lr {r['lr']:g}: stage 1 {r['stage-1 late']}, "
                    f"fresh {r['confirmation late']}" for _, r in candidates.iterrows()))
    elif still_training:
        said = (f"no late failure in the {len(control)} control arm-rate(s) run so far; {still_training} run(s) still "
                f"training, and the plan's other arms may not have run yet")
    else:
        said = (f"no late failure in the {len(control)} control arm-rate(s) run; this is the search's answer only "
                f"once every arm of its plan has run")
    return {"candidates": candidates, "confirmed": confirmed, "statement": said,
            "hours": float(table["training hours"].sum()) if len(table) else 0.0,
            "searched": len(control)}
