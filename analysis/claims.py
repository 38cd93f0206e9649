"""Every quantitative claim of the source documents, kept as data with the rule that judges it.

Six verdicts, used the same way for every claim:
- holds: the evidence shows what the claim says, in the setting the row names;
- does not hold: the evidence covers what the claim is about (its horizon, its setting) and shows otherwise;
- not reproduced at this horizon: the claim is about more epochs than the runs trained, and within
  the epochs they did train nothing contradicts or confirms it;
- not reproduced on this proxy: the mechanism the claim is about never acted in these runs (the reason
  names it: the old tanh weight never left its floor, float16 overflow skipped before the update);
- not applicable: the claim is about another feature scale, and the faithful-scale arm is judged instead;
- not testable here: nothing here can say (the reason is given: nothing diverged under either system,
  no run of a preset, absolute values of another model and data, wall time on other hardware, a
  difference smaller than the seed noise).

Each row says what kind of evidence judges it: runs (their outcomes and metrics), the replay of the
documents' printed traces, the step-time benchmark, analytic (the formula's own bounds, whatever the
losses) or by construction (true of the code whatever happens; shown so that nobody reads it as a
measurement). Run evidence names the runs (seeds, steps and epochs, training utterances, feature scale,
precision, mel loss, stop weight) and the measured number with its interval where one applies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from analysis import spike, stats, tables
from myxtts import record
from myxtts.training.settings import (CHECK_DECISIONS, DECISIONS, GuardSettings, LegacyTanhSettings, LossSettings,
                                      StableSettings)
import itertools

HOLDS, FAILS = "holds", "does not hold"
NOT_REPRODUCED, UNTESTABLE = "not reproduced at this horizon", "not testable here"
PROXY, NOT_APPLICABLE = "not reproduced on this proxy", "not applicable"
VERDICTS = (HOLDS, FAILS, NOT_REPRODUCED, PROXY, NOT_APPLICABLE, UNTESTABLE)
RUNS, REPLAY, BENCHMARK, ANALYTIC, BY_CONSTRUCTION = "runs", "replay", "benchmark", "analytic", "by construction"
KINDS = (RUNS, REPLAY, BENCHMARK, ANALYTIC, BY_CONSTRUCTION)
SIGNIFICANCE = 0.05
# One horizon rule for every claim that a failure happens by about epoch E: its absence refutes the claim
# only in runs that trained through E x (1 + HORIZON_TOLERANCE) epochs.
HORIZON_TOLERANCE = 0.5

# The source documents, by subject.
DOCUMENTS = {
    "design": "design note on the stable adaptive weight",
    "summary": "fix summary (Persian)",
    "pr": "refactoring pull request",
    "test": "30-utterance NaN test report",
    "weights": "three-digit-loss fix note",
}

# The settings a claim is judged in, most faithful to the documents' conditions last: the presets as the
# documents list them, then the same values on the upstream code base's log-mel features and stop loss.
OLD_SYSTEM = (("enhanced",), ("upstream",))
WEIGHT_FIX = (("legacy", "legacy_fixed"), ("legacy_log", "legacy_fixed_log"))


@dataclass(frozen=True)
class Finding:
    verdict: str
    measured: str
    evidence: str = ""
    kind: str = RUNS


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    sources: tuple[str, ...]
    rule: str
    check: Callable[[Evidence], list[Finding]]


@dataclass
class Evidence:
    runs: pd.DataFrame                 # runs at learning-rate multiplier 1
    history: pd.DataFrame
    benchmark: dict | None = None      # reports/bench/step_time.json
    replay: dict | None = None         # reports/replay/replay.json
    stress: pd.DataFrame | None = None  # every run, other learning-rate multipliers included
    spikes: pd.DataFrame | None = None  # analysis.spike.per_run: runs whose only override is the spike fault

    def judged(self, preset: str) -> pd.DataFrame:
        """Finished runs of a preset with a verdict (stable or diverged)."""
        runs = self.runs
        mine = tables.tag(runs, record.PRESET).astype(str) == preset
        return runs[mine & tables.tag(runs, record.OUTCOME).astype(str).isin(record.VERDICTS)]

    def has(self, presets: Iterable[str]) -> bool:
        return all(len(self.judged(p)) for p in presets)


# --- describing evidence ---------------------------------------------------------------------------

def _compact(values: Iterable[str]) -> str:
    numbers = sorted({int(v) for v in values if str(v).lstrip("-").isdigit()})
    if not numbers:
        return "?"
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"{numbers[0]}–{numbers[-1]}"
    return ", ".join(map(str, numbers))


def _joined(values: pd.Series, default: str) -> str:
    """The distinct values as the runs recorded them, "a/b" ("" and unset left out), or `default`."""
    found = sorted(set(values.map(str)) - {"", "None", "nan"})
    return "/".join(found) or default


def describe(runs: pd.DataFrame) -> str:
    """One line of evidence: what these runs are and in which setting they ran."""
    if runs.empty:
        return "no runs"
    presets = ", ".join(dict.fromkeys(tables.tag(runs, record.PRESET).astype(str)))
    epochs = tables.horizon_epochs(runs)
    def values(path: str, default: str) -> str:
        return _joined(tables.setting(runs, path, ""), default)

    huber = {"True": "Huber", "False": "L1"}.get(values("loss.huber", "False"), "mixed (Huber and L1)")
    return (f"{presets}: {len(runs)} runs, seeds {_compact(tables.tag(runs, record.SEED))}, "
            f"{values('trainer.steps', '?')} steps = "
            f"{f'{epochs:g}' if math.isfinite(epochs) else '?'} epochs of "
            f"{_joined(tables.tag(runs, record.TRAIN_UTTERANCES), '?')} utterances; "
            f"{values('data.features.scale', 'standardized')} features, "
            f"{values('trainer.precision', 'float32')}, "
            f"{huber} mel loss, "
            f"stop positive weight {values('loss.stop_positive_weight', '1.0')}")


def _settings(evidence: Evidence, settings: tuple[tuple[str, ...], ...],
              judge: Callable[[tuple[str, ...]], Finding]) -> list[Finding]:
    found = [judge(s) for s in settings if evidence.has(s)]
    if found:
        return found
    names = " or ".join("+".join(s) for s in settings)
    return [Finding(UNTESTABLE, f"no finished runs of {names} in this experiment")]


def _on_scale(evidence: Evidence, settings: tuple[tuple[str, ...], ...],
              judge: Callable[[tuple[str, ...]], Finding]) -> list[Finding]:
    """A claim about loss totals on the documents' feature scale (the three-digit-loss note's): where the
    faithful log-scale arm has runs it is judged there, and the standardized arm is not applicable."""
    if settings is not WEIGHT_FIX or not evidence.has(WEIGHT_FIX[1]):
        return _settings(evidence, settings, judge)
    standardized, faithful = WEIGHT_FIX
    found = []
    if evidence.has(standardized):
        found.append(Finding(NOT_APPLICABLE, f"standardized features make other totals than the documents' log-mel "
                                             f"scale; judged on {'+'.join(faithful)} instead",
                             describe(pd.concat([evidence.judged(p) for p in standardized]))))
    return [*found, judge(faithful)]


def _epochs_of_failure(runs: pd.DataFrame) -> pd.Series:
    return tables.epochs_of(runs, tables.first_nonfinite_steps(runs)).dropna()


def _outcomes(runs: pd.DataFrame) -> tuple[int, int]:
    """(runs, diverged) among runs with a verdict."""
    outcome = tables.tag(runs, record.OUTCOME).astype(str)
    return int(outcome.isin(record.VERDICTS).sum()), int((outcome == "diverged").sum())


def _span(horizon: float) -> str:
    return f"{horizon:g}" if math.isfinite(horizon) else "?"


def _within(measured: float, claimed: float, tolerance: float) -> bool:
    return math.isfinite(measured) and abs(measured / claimed - 1) <= tolerance


def _first_epoch(evidence: Evidence, runs: pd.DataFrame, metric: str) -> float:
    wide = tables.epoch_values(runs, evidence.history, metric)
    return float(wide.loc[1].median()) if len(wide) and 1 in wide.index else math.nan


def _epoch(evidence: Evidence, runs: pd.DataFrame, metric: str, epoch: int) -> float:
    wide = tables.epoch_values(runs, evidence.history, metric)
    return tables._median_with_nonfinite(wide.loc[epoch]) if len(wide) and epoch in wide.index else math.nan


# stable_adaptive changes three things at once (the weighting, the non-finite skip, the spike dampener);
# this arm changes only the weighting, so claims about the controller are judged on it where it has runs.
CONTROLLER_ARM = "stable_weight_only"


def _on_controller_arm(check: Callable[[Evidence], list[Finding]]):
    def wrapped(evidence: Evidence) -> list[Finding]:
        if not evidence.has((CONTROLLER_ARM,)):
            return check(evidence)
        runs = evidence.judged(CONTROLLER_ARM)
        return check(Evidence(runs, evidence.history[evidence.history["run_id"].isin(runs["run_id"])],
                              evidence.benchmark, evidence.replay))
    return wrapped


# --- the mechanisms the old system's failure claims are about ------------------------------------------

def _legacy_settings(runs: pd.DataFrame) -> LegacyTanhSettings:
    """The old weight's settings these runs used (their first run's; the presets never vary them)."""
    used = [w for w in tables.setting(runs, "weighting") if isinstance(w, LegacyTanhSettings)]
    return used[0] if used else LegacyTanhSettings()


def _old_mechanism_idle(evidence: Evidence, runs: pd.DataFrame) -> str | None:
    """Why the old system's failure mechanism never acted in these runs, or None when it did. Its
    claimed failure comes from the tanh weight moving (and, upstream, from float16 overflow)."""
    old = runs[tables.setting(runs, "weighting.name") == "legacy_tanh"]
    if old.empty:
        return None
    settings = _legacy_settings(old)
    changes = tables.weight_changes(evidence.history, old["run_id"])
    if len(changes) and (changes["adjustments"] > 0).any():
        return None
    trained = tables.numeric(tables.tag(old, record.STEPS_COMPLETED)).max()
    trained = int(trained) if math.isfinite(trained) else 0
    first = settings.first_step_off_floor()
    could = "cannot leave" if trained < first else "never left"
    reasons = [f"the old tanh weight {could} its floor ({settings.tanh_factor_min:g} x base) in {len(old)} runs of "
               f"≤ {trained} steps: it can first move at step {first}, on a loss ≥ {settings.floor_ratio():.2f}x its "
               f"running mean, which the mean's {settings.ramp_steps}-step ramp prevents earlier"]
    precision = set(tables.setting(old, "trainer.precision", "").map(str))
    overflow = set(tables.setting(old, "trainer.overflow", "").map(str)) - {"", "None", "nan"}
    if "mixed_float16" in precision and overflow <= {"skip"}:
        reasons.append("float16 overflow is skipped before the update (trainer.overflow=skip), so upstream's "
                       "overflow path never acts either")
    return "; ".join(reasons)


# --- failure and success claims -----------------------------------------------------------------------

def _all_fail(epoch: float):
    """'0 of 10 runs succeed' at a horizon of `epoch` epochs."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = evidence.judged(setting[0])
            n, diverged = _outcomes(runs)
            horizon = tables.horizon_epochs(runs)
            low, high = stats.wilson_interval(n - diverged, n)
            measured = (f"{n - diverged}/{n} runs stable (95 % CI {low:.0%}–{high:.0%}), "
                        f"{diverged} diverged")
            idle = _old_mechanism_idle(evidence, runs)
            if idle:
                return Finding(PROXY, f"{measured}; {idle}", describe(runs))
            if diverged == n:
                return Finding(HOLDS, measured, describe(runs))
            needed = epoch * (1 + HORIZON_TOLERANCE)
            if math.isfinite(horizon) and horizon >= needed:
                return Finding(FAILS, measured + f" through {_span(horizon)} epochs", describe(runs))
            return Finding(NOT_REPRODUCED, measured + f" within {_span(horizon)} epochs; the claim needs ≥ {needed:g}",
                           describe(runs))
        return _settings(evidence, OLD_SYSTEM, one)
    return check


def _nan_at_epoch(epoch: float, tolerance: float = HORIZON_TOLERANCE):
    """'NaN at epoch ~E': the median first non-finite epoch lies within ±tolerance of E."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = evidence.judged(setting[0])
            epochs = _epochs_of_failure(runs)
            horizon = tables.horizon_epochs(runs)
            idle = _old_mechanism_idle(evidence, runs)
            if idle:
                return Finding(PROXY, f"first non-finite loss in {len(epochs)}/{len(runs)} runs; {idle}",
                               describe(runs))
            if len(epochs):
                median = float(epochs.median())
                measured = (f"first non-finite loss in {len(epochs)}/{len(runs)} runs, median epoch {median:.3g} "
                            f"(range {epochs.min():.3g}–{epochs.max():.3g})")
                return Finding(HOLDS if _within(median, epoch, tolerance) else FAILS, measured, describe(runs))
            measured = f"no non-finite loss in {len(runs)} runs through {_span(horizon)} epochs"
            if math.isfinite(horizon) and horizon >= epoch * (1 + tolerance):
                return Finding(FAILS, measured, describe(runs))
            return Finding(NOT_REPRODUCED, measured, describe(runs))
        return _settings(evidence, OLD_SYSTEM, one)
    return check


def _survives(presets: tuple[str, ...], epochs: float):
    """'Completes E epochs without NaN': a divergence refutes it; surviving fewer epochs does not confirm it."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = pd.concat([evidence.judged(p) for p in setting])
            n, diverged = _outcomes(runs)
            horizon = tables.horizon_epochs(runs)
            measured = f"{diverged}/{n} runs diverged within {_span(horizon)} epochs"
            if diverged:
                return Finding(FAILS, measured, describe(runs))
            return Finding(HOLDS if horizon >= epochs else NOT_REPRODUCED, measured
                           + ("" if horizon >= epochs else f"; the claim is about {epochs:g}"), describe(runs))
        return _settings(evidence, (presets,), one)
    return check


def _prevents(old: str, new: str):
    """A prevention claim: in the same setting the old system must fail measurably more often."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            before, after = evidence.judged(old), evidence.judged(new)
            n_old, d_old = _outcomes(before)
            n_new, d_new = _outcomes(after)
            low, high = stats.wilson_interval(n_new - d_new, n_new)
            counts = (f"{old}: {d_old}/{n_old} diverged; {new}: {d_new}/{n_new} diverged "
                      f"({n_new - d_new}/{n_new} stable, 95 % CI {low:.0%}–{high:.0%})")
            evidence_text = describe(pd.concat([before, after]))
            if d_old + d_new == 0:
                return Finding(UNTESTABLE, counts + "; not tested: nothing diverged under either system", evidence_text)
            p = stats.fisher_exact_greater(d_old, n_old, d_new, n_new)
            effect = d_old / n_old - d_new / n_new
            measured = counts + f"; one-sided Fisher exact p = {p:.3g}, rate difference {effect:+.0%}"
            if p < SIGNIFICANCE and d_new == 0:
                return Finding(HOLDS, measured, evidence_text)
            if d_new and d_new / n_new >= d_old / n_old:
                return Finding(FAILS, measured, evidence_text)
            if p < SIGNIFICANCE:
                return Finding(FAILS, measured + f"; fewer failures, but {d_new} remain", evidence_text)
            return Finding(UNTESTABLE, measured + f"; the difference is not significant at n = {n_old}, {n_new}",
                           evidence_text)
        return _settings(evidence, ((old, new),), one)
    return check


# --- weight dynamics --------------------------------------------------------------------------------

def _moves(evidence: Evidence, strategy: str) -> dict | None:
    summary = tables.weight_summary(evidence.runs, evidence.history)
    return tables.strategy_summary(summary, strategy)


def _strategy_runs(evidence: Evidence, strategy: str) -> pd.DataFrame:
    runs = evidence.runs
    return runs[tables.setting(runs, "weighting.name") == strategy]


def _observed_change(evidence: Evidence, strategy: str) -> tuple[str, pd.DataFrame]:
    """What the runs show of a weight's changes: a clause for the measured column, and the runs."""
    row, runs = _moves(evidence, strategy), _strategy_runs(evidence, strategy)
    if row is None:
        return f"no run used the {strategy} weighting", runs
    if row["runs that moved"] == 0:
        return f"in the runs the {strategy} weight never moved ({row['runs']} runs, held at {row['min weight']:.3g})", runs
    return (f"in the runs: largest change per step {row['largest change per adjustment %']:.2f} % over {row['runs']} "
            f"runs ({row['runs that moved']} moved, {row['adjustments per run']:.1f} changes per run, weight "
            f"{row['min weight']:.3g}–{row['max weight']:.3g})"), runs


def _rollbacks(evidence: Evidence, runs: pd.DataFrame) -> pd.Series:
    """Each stable-weighting run's last rollback count."""
    history = evidence.history
    return history[(history["metric"] == record.WEIGHTING_ROLLBACKS) & history["run_id"].isin(runs["run_id"])] \
        .groupby("run_id")["value"].last()


def _stable_change(limit: float):
    """'At most ±limit % per adjustment': the controller clips every adjustment to it, so only a rollback
    (a return to the previous or base weight) can exceed it; the runs judge it only when one fired."""
    def check(evidence: Evidence) -> list[Finding]:
        observed, runs = _observed_change(evidence, "stable")
        fired = int(_rollbacks(evidence, runs).gt(0).sum()) if len(runs) else 0
        row = _moves(evidence, "stable")
        if not fired or row is None or not row["runs that moved"]:
            return [Finding(HOLDS, f"every adjustment is clipped to ±{StableSettings().max_change_percent:.0%} in the "
                                   f"code and no rollback fired: true by construction; {observed}",
                            describe(runs) if len(runs) else "the stable controller's clip", BY_CONSTRUCTION)]
        largest = float(row["largest change per adjustment %"])
        ok = largest <= limit + 1e-3  # float32 weights: 5 % reads as 5.00001 %
        return [Finding(HOLDS if ok else FAILS, f"{fired} runs rolled back a weight; {observed}", describe(runs))]
    return check


def _old_change(low: float, high: float):
    """'The old weight changes by ±low–high % per step': the formula bounds every step's change (analytic)."""
    def check(evidence: Evidence) -> list[Finding]:
        observed, runs = _observed_change(evidence, "legacy_tanh")
        settings = _legacy_settings(runs) if len(runs) else LegacyTanhSettings()
        rise, fall = settings.largest_step_changes()
        ok = all(low <= round(100 * x, 9) <= high for x in (rise, fall))  # 1 − 0.8 / 1.0 is 0.19999… in floats
        measured = (f"factor 0.5 + 0.5·tanh(ratio − 1) ∈ (0, 1) clipped to [{settings.tanh_factor_min:g}, "
                    f"{settings.tanh_factor_max:g}]: the weight lies in [{settings.tanh_factor_min:g}, "
                    f"{min(settings.tanh_factor_max, 1.0):g}] x base, so one step changes it by at most +{rise:.0%} / "
                    f"−{fall:.0%}, and only from step {settings.first_step_off_floor()} on a ≥ "
                    f"{settings.floor_ratio():.2f}x loss spike; {observed}")
        return [Finding(HOLDS if ok else FAILS, measured, "the old formula with the factor bounds in force", ANALYTIC)]
    return check


def _more_conservative(factor: float):
    """Old largest possible change per step over the new one's (analytic, from both formulas' bounds)."""
    def check(evidence: Evidence) -> list[Finding]:
        _, runs = _observed_change(evidence, "legacy_tanh")
        settings = _legacy_settings(runs) if len(runs) else LegacyTanhSettings()
        old = max(settings.largest_step_changes())
        new = StableSettings().max_change_percent
        ratio = old / new
        measured = (f"largest possible change per step: old {old:.0%} (the tanh factor's bounds "
                    f"[{settings.tanh_factor_min:g}, {min(settings.tanh_factor_max, 1.0):g}]), new {new:.0%} (its "
                    f"clip) → {ratio:.2f}x at most; the {factor:g}x assumes 30 %, which the old formula cannot reach")
        return [Finding(HOLDS if ratio >= factor * 0.75 else FAILS, measured, "both formulas' bounds", ANALYTIC)]
    return check


def _rollback(evidence: Evidence) -> list[Finding]:
    runs = _strategy_runs(evidence, "stable")
    if runs.empty:
        return [Finding(UNTESTABLE, "no run used the stable weighting")]
    last = _rollbacks(evidence, runs)
    rolled = last[last > 0]
    if rolled.empty:
        return [Finding(UNTESTABLE, f"no rollback was triggered in {len(runs)} runs", describe(runs))]
    outcome = dict(zip(runs["run_id"], tables.tag(runs, record.OUTCOME).astype(str)))
    recovered = sum(outcome.get(run_id) == "stable" for run_id in rolled.index)
    measured = f"{int(rolled.sum())} rollbacks in {len(rolled)} runs; {recovered}/{len(rolled)} of them ended stable"
    return [Finding(HOLDS if recovered == len(rolled) else FAILS, measured, describe(runs))]


# --- the old formula's arithmetic (analytic) and the new controller's schedule in the runs --------------

def _old_factor(ratio: float) -> float:
    return 0.5 + 0.5 * math.tanh(ratio - 1.0)


def _feedback(evidence: Evidence) -> list[Finding]:
    """'Loss falls → weight rises': the factor grows with loss / running mean, so the opposite holds."""
    settings = LegacyTanhSettings()
    measured = (f"the factor 0.5 + 0.5·tanh(ratio − 1) increases with ratio = loss / running mean: a falling loss "
                f"(ratio < 1) gives a factor below 0.5, clipped to the floor {settings.tanh_factor_min:g}, so the weight "
                f"falls to or stays at {settings.tanh_factor_min:g} x base; it rises only on a loss ≥ "
                f"{settings.floor_ratio():.2f}x its running mean")
    return [Finding(FAILS, measured, "the old formula as documented", ANALYTIC)]


def _factor_example(evidence: Evidence) -> list[Finding]:
    """The design note's walk-through: ratio 1.04 → factor 0.52 → 'weight changed by 52 %'."""
    settings = LegacyTanhSettings()
    factor = _old_factor(1.04)
    clipped = min(max(factor, settings.tanh_factor_min), settings.tanh_factor_max)
    base = 2.5
    weight = min(max(base * clipped, 1.0), 5.0)
    measured = (f"0.5 + 0.5·tanh(0.04) = {factor:.3f}, clipped to [{settings.tanh_factor_min:g}, "
                f"{settings.tanh_factor_max:g}] → {clipped:g}, so the weight is {base:g} x {clipped:g} = {weight:g}: "
                f"{abs(weight / base - 1):.0%} below the base, not 52 % (the note clips the weight 1.3 instead of the factor)")
    return [Finding(FAILS, measured, "the old formula as documented, base weight 2.5", ANALYTIC)]


def _factor_range(evidence: Evidence) -> list[Finding]:
    """'The factor can range 0.7–1.3': 0.5 + 0.5·tanh(·) never exceeds 1, whatever the clip bounds."""
    rows = []
    for bounds in ((0.8, 1.2), (0.7, 1.3)):
        settings = LegacyTanhSettings(tanh_factor_min=bounds[0], tanh_factor_max=bounds[1])
        low, high = settings.factor_range()
        rise, fall = settings.largest_step_changes()
        rows.append(f"clip [{bounds[0]:g}, {bounds[1]:g}] → factor in [{low:g}, {high:g}], at most +{rise:.0%} / "
                    f"−{fall:.0%} per step, from step {settings.first_step_off_floor()}")
    measured = ("0.5 + 0.5·tanh(·) lies in (0, 1), so no factor above 1 is reachable: " + "; ".join(rows)
                + "; the worked example's old weight 3.5 on base 2.5 is outside [2.0, 2.5] likewise")
    return [Finding(FAILS, measured, "the old formula with both documented clip bounds", ANALYTIC)]


def _dampening_arithmetic(evidence: Evidence) -> list[Finding]:
    """Worked example 2, the new system: loss 100 against a mean of 2 → dampened to 4.0, weighted 10.0."""
    threshold = GuardSettings().spike_threshold
    loss, mean, weight = 100.0, 2.0, 2.5
    dampened = loss * threshold / (loss / mean)   # the dampener scales a spike back to threshold x recent mean
    ok = math.isclose(dampened, 4.0) and math.isclose(weight * dampened, 10.0)
    measured = (f"the dampener scales a spike by threshold / ratio: {loss:g} x {threshold:g} / {loss / mean:g} = "
                f"{dampened:g}, weighted {weight:g} x {dampened:g} = {weight * dampened:g} (printed 4.0 and 10.0)")
    return [Finding(HOLDS if ok else FAILS, measured, f"guards.spike_threshold = {threshold:g}, as the code applies it",
                    ANALYTIC)]


def _change_steps(evidence: Evidence, runs: pd.DataFrame) -> dict[str, list[int]]:
    """Per run, the steps at which the controller adjusted the weight (decision increase or decrease)."""
    history = evidence.history
    codes = history[(history["metric"] == record.WEIGHTING_DECISION) & history["run_id"].isin(runs["run_id"])]
    adjusting = {DECISIONS.index("increase"), DECISIONS.index("decrease")}
    return {run_id: sorted(int(step) + 1 for step, code in zip(part["step"], part["value"]) if int(code) in adjusting)
            for run_id, part in codes.groupby("run_id")}


def _schedule(evidence: Evidence) -> list[Finding]:
    """'Warmup 100 steps, cooling 50 between changes' as run behaviour: the first adjustment after step 100,
    adjustments at least 50 steps apart."""
    runs = _strategy_runs(evidence, "stable")
    if runs.empty:
        return [Finding(UNTESTABLE, "no run used the stable weighting")]
    settings = StableSettings()
    changes = {k: v for k, v in _change_steps(evidence, runs).items() if v}
    if not changes:
        return [Finding(UNTESTABLE, f"the controller never adjusted the weight in {len(runs)} runs", describe(runs))]
    first = min(v[0] for v in changes.values())
    gaps = [b - a for v in changes.values() for a, b in itertools.pairwise(v)]
    ok = first > settings.min_warmup_steps and all(g >= settings.cooling_period for g in gaps)
    measured = (f"{sum(map(len, changes.values()))} adjustments in {len(changes)}/{len(runs)} runs; first at step {first}, "
                f"closest two {min(gaps) if gaps else '—'} steps apart")
    return [Finding(HOLDS if ok else FAILS, measured, describe(runs))]


def _weight_bands(bands: tuple[tuple[int, int, float, float], ...], slack: float = 0.05):
    """'Weight 2.3–2.5 over epochs 201–400, 2.2–2.4 over 401–600': the new weight's median over seeds per epoch
    stays within each band (± slack); needs runs through the band's last epoch."""
    def check(evidence: Evidence) -> list[Finding]:
        runs = evidence.judged("stable_adaptive")
        if runs.empty:
            return [Finding(UNTESTABLE, "no finished runs of stable_adaptive")]
        horizon = tables.horizon_epochs(runs)
        last = max(b[1] for b in bands)
        if not (math.isfinite(horizon) and horizon >= last):
            return [Finding(NOT_REPRODUCED, f"the runs stop at epoch {_span(horizon)}; the bands reach epoch {last}",
                            describe(runs))]
        wide = tables.epoch_values(runs, evidence.history, record.WEIGHT_MEL).median(axis=1)
        parts, ok = [], True
        for start, end, low, high in bands:
            part = wide.loc[start:end]
            ok &= bool(len(part)) and part.min() >= low - slack and part.max() <= high + slack
            parts.append(f"epochs {start}–{end}: {part.min():.3g}–{part.max():.3g} (claimed {low:g}–{high:g})")
        return [Finding(HOLDS if ok else FAILS, "; ".join(parts), describe(runs))]
    return check


# --- the design note's spike scenario in real training (fault=spike) ------------------------------------

def _spike_in_training(system: str):
    """Worked example 2 trained for real: every raw term x fault.factor at one step. The old system must be
    non-finite on the next step in at least half its runs; the new one must recover in every run."""
    def check(evidence: Evidence) -> list[Finding]:
        facts = evidence.spikes
        mine = facts[facts["system"] == system] if facts is not None and len(facts) else pd.DataFrame()
        if mine.empty:
            return [Finding(UNTESTABLE, f"no {system}-system run with only the spike fault overridden "
                                        f"(python -m runner -m sweep=spike_recovery)")]
        n, nan_next, recovered = len(mine), int(mine["nan next step"].sum()), int(mine["recovered"].sum())
        low, high = stats.wilson_interval(recovered, n)
        steps = ", ".join(f"{s:g}" for s in sorted(set(mine["spike step"])))
        moved = mine["largest weight change %"].max()
        measured = (f"spike at step {steps}: loss/total {mine['loss before'].median():.3g} before, "
                    f"{mine['loss at spike'].median():.3g} at the spike (median); non-finite on the next step in "
                    f"{nan_next}/{n}, recovered in {recovered}/{n} (95 % CI {low:.0%}–{high:.0%}), median "
                    f"{mine['steps to recover'].median():g} steps; largest mel-weight change around the spike "
                    f"{moved:.3g} %")
        runs = (evidence.stress if evidence.stress is not None else evidence.runs)
        described = describe(runs[runs["run_id"].isin(mine["run_id"])])
        if system == "old":
            if not (moved > 0):
                return [Finding(PROXY, measured + "; the old tanh weight never moved at the spike", described)]
            return [Finding(HOLDS if nan_next * 2 >= n else FAILS, measured, described)]
        return [Finding(HOLDS if recovered == n else FAILS, measured, described)]
    return check


# --- the design note's worked tables (from the replay) ------------------------------------------------

def _worked_table(scenario: str, column: str, tolerance: float = 0.1):
    def check(evidence: Evidence) -> list[Finding]:
        replay = evidence.replay
        if not replay or scenario not in replay.get("scenarios", {}):
            return [Finding(UNTESTABLE, "no replay results (python -m analysis.replay writes reports/replay/)")]
        data = replay["scenarios"][scenario]
        printed = data["printed"][column]
        strategy = "legacy_tanh" if column.startswith("old") else "stable"
        computed = data["strategies"][strategy]["weight"]
        misses = []
        for step, value in sorted(((int(k), v) for k, v in printed.items())):
            got = computed[step]
            same = (not math.isfinite(got)) if value is None or not math.isfinite(value) else abs(got - value) <= tolerance
            if not same:
                misses.append(f"step {step}: printed {'NaN' if value is None else value}, computed {got:.3g}")
        measured = (f"{len(printed) - len(misses)}/{len(printed)} printed weights reproduced"
                    + (f"; {'; '.join(misses[:3])}" + (" …" if len(misses) > 3 else "") if misses else ""))
        return [Finding(FAILS if misses else HOLDS, measured,
                        f"the printed loss trace replayed through the {strategy} formula, base weight "
                        f"{replay.get('base_weight', '?')}", REPLAY)]
    return check


def _safety_checks(minimum: int):
    """'8+ safety checks': the controller's list of checks is fixed in the code (by construction); the runs
    say how many distinct ones fired (a decision that stopped or undid a change)."""
    def check(evidence: Evidence) -> list[Finding]:
        named = (evidence.replay or {}).get("safety_checks")
        if not named:
            return [Finding(UNTESTABLE, "no replay results (python -m analysis.replay writes reports/replay/)")]
        runs = _strategy_runs(evidence, "stable")
        history = evidence.history
        codes = history[(history["metric"] == record.WEIGHTING_DECISION) & history["run_id"].isin(runs["run_id"])]["value"]
        seen = {DECISIONS[int(c)] for c in codes.dropna().unique() if 0 <= int(c) < len(DECISIONS)}
        fired = [d for d in CHECK_DECISIONS if d in seen]
        measured = (f"{len(named)} checks in the code: {', '.join(named)}; a fixed list, so the count is true by "
                    f"construction. In {len(runs)} stable-weighting runs {len(fired)} of its {len(CHECK_DECISIONS)} "
                    f"blocking decisions fired" + (f" ({', '.join(fired)})" if fired else ""))
        return [Finding(HOLDS if len(named) >= minimum else FAILS, measured,
                        "the checks the stable weighting runs on every step, listed by the replay", BY_CONSTRUCTION)]
    return check


def _overhead(evidence: Evidence) -> list[Finding]:
    bench = evidence.benchmark
    if not bench:
        return [Finding(UNTESTABLE, "no step-time benchmark (make bench writes reports/bench/step_time.json)")]
    overhead = float(bench["overhead_percent"])
    rounds = [float(v) for v in bench.get("overhead_percent_per_round", [])]
    low, high = (float(np.percentile(rounds, 25)), float(np.percentile(rounds, 75))) if rounds else (overhead, overhead)
    measured = (f"stable strategy + guards vs static weights: median {overhead:+.1f} % step time, per-round "
                f"interquartile range {low:+.1f} to {high:+.1f} %")
    where = f"benchmarks.step_time on {bench.get('device', '?')}, xla={bench.get('xla')}"
    if high - low > 2.0:
        return [Finding(UNTESTABLE, measured + "; the timing noise here exceeds the claimed 0.1 %", where, BENCHMARK)]
    return [Finding(HOLDS if abs(overhead) <= 1.0 else FAILS, measured, where, BENCHMARK)]


def _wall_time(evidence: Evidence) -> list[Finding]:
    runs = evidence.runs
    seconds = tables.numeric(tables.tag(runs, record.TRAIN_SECONDS))
    epochs = tables.number(runs, "trainer.steps") / tables.numeric(
        tables.tag(runs, record.STEPS_PER_EPOCH))
    per_epoch = (seconds / epochs).dropna()
    measured = (f"here: median {per_epoch.median():.2f} s of training per epoch of the subset"
                if len(per_epoch) else "no timed runs")
    return [Finding(UNTESTABLE, measured + "; hours on the documents' GPU and dataset do not transfer to this "
                                           "machine and corpus", describe(runs))]


# --- values and ratios at epoch 1 ------------------------------------------------------------------------

def _absolute(preset: str, claimed: dict[str, float], tolerance: float = 0.25, validation: bool = False,
              epoch: int = 1):
    metrics = ({"loss": record.VAL_TOTAL, "mel": record.val("mel"), "stop": record.val("stop")} if validation
               else {"loss": record.LOSS_UNDAMPED, "mel": record.raw("mel"), "stop": record.raw("stop")})

    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = evidence.judged(setting[0])
            parts, ok = [], True
            for name, value in claimed.items():
                if validation:
                    wide = tables.series(evidence.history[evidence.history["run_id"].isin(runs["run_id"])],
                                         metrics[name])
                    got = float(wide.iloc[0].median()) if len(wide) else math.nan
                else:
                    got = (_first_epoch(evidence, runs, metrics[name]) if epoch == 1
                           else _epoch(evidence, runs, metrics[name], epoch))
                ok &= _within(got, value, tolerance)
                parts.append(f"{name} {got:.3g} (claimed {value:g})")
            when = "first validation" if validation else f"epoch {epoch}"
            return Finding(HOLDS if ok else FAILS, f"{when}: " + ", ".join(parts), describe(runs))
        return _settings(evidence, ((preset,),), one)
    return check


# The 30-utterance test's epoch-1 stop loss of enhanced: no untrained stop logit gives it here (see below).
CLAIMED_EPOCH1_STOP = 7.597


def _other_model(check: Callable[[Evidence], list[Finding]]):
    """Absolute epoch-1 values of another model and data set (and ratios built on them) are not testable:
    with the logits at 0 the stop loss is ln 2 per negative frame and w · ln 2 per positive one, so the
    documents' 7.6 cannot come from an untrained stop head under the documented settings. The measured
    values are shown for reference."""
    def wrapped(evidence: Evidence) -> list[Finding]:
        weight = LossSettings().stop_positive_weight
        bound = math.log(2.0) * max(1.0, weight)
        reason = (f"absolute values of another model and data: the documents' epoch-1 stop loss "
                  f"{CLAIMED_EPOCH1_STOP:g} is {CLAIMED_EPOCH1_STOP / bound:.0f}x the ln 2 · max(1, w) = {bound:.2f} an "
                  f"untrained stop logit gives under the documented settings (stop positive weight w = {weight:g}), "
                  f"so no run here can be compared with them; ratios built on them likewise")
        return [Finding(UNTESTABLE, f"{f.measured}; {reason}" if f.verdict != UNTESTABLE else f.measured,
                        f.evidence, f.kind) for f in check(evidence)]
    return wrapped


def _ratio(settings, metric: str, claimed: float, tolerance: float = 0.25, mel_weight: float | None = None):
    """first-epoch metric of the first preset / the second; with mel_weight, the first preset's total is
    recomputed at that mel weight from its own raw mel and postnet terms (the loss is linear in the weight)."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            top_runs, bottom_runs = evidence.judged(setting[0]), evidence.judged(setting[1])
            top, bottom = _first_epoch(evidence, top_runs, metric), _first_epoch(evidence, bottom_runs, metric)
            note = ""
            if mel_weight is not None:
                base = float(tables.number(top_runs, "loss.mel_loss_weight").iloc[0])
                mel = (_first_epoch(evidence, top_runs, record.raw("mel"))
                       + _first_epoch(evidence, top_runs, record.raw("postnet")))
                top = top + (mel_weight - base) * mel
                note = f" ({setting[0]} recomputed at mel weight {mel_weight:g} from its raw mel + postnet {mel:.3g})"
            ratio = top / bottom if bottom else math.nan
            measured = f"epoch 1 {metric}: {setting[0]} {top:.3g} / {setting[1]} {bottom:.3g} = {ratio:.2f}x{note}"
            return Finding(HOLDS if _within(ratio, claimed, tolerance) else FAILS, measured,
                           describe(pd.concat([top_runs, bottom_runs])))
        return _on_scale(evidence, settings, one)
    return check


def _first_validation(evidence: Evidence, runs: pd.DataFrame, metric: str) -> float:
    """Median over runs of the first validation after training started (step 0 is the untrained model)."""
    history = evidence.history
    rows = history[(history["metric"] == metric) & history["run_id"].isin(runs["run_id"]) & (history["step"] > 0)]
    first = rows.sort_values("step").groupby("run_id")["value"].first()
    return float(first.median()) if len(first) else math.nan


def _relative_gain(settings, metric: str, claimed: float, tolerance: float = 0.5):
    """(first − second) / first of a validation metric at the first validation, claimed as a fraction;
    holds within ±tolerance of it. A validation metric is the same quantity for both presets whatever
    loss each trains with (Huber on noised targets or plain L1)."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            a_runs, b_runs = evidence.judged(setting[0]), evidence.judged(setting[1])
            a, b = _first_validation(evidence, a_runs, metric), _first_validation(evidence, b_runs, metric)
            gain = (a - b) / a if a else math.nan
            measured = f"first validation {metric}: {setting[0]} {a:.3g}, {setting[1]} {b:.3g} → {gain:+.1%} lower"
            return Finding(HOLDS if _within(gain, claimed, tolerance) else FAILS, measured,
                           describe(pd.concat([a_runs, b_runs])))
        return _settings(evidence, settings, one)
    return check


def _starts(settings, before: tuple[float, float], after: tuple[float, float] | None):
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = [evidence.judged(p) for p in setting]
            values = [_first_epoch(evidence, r, record.LOSS_UNDAMPED) for r in runs]
            ranges = (before, after) if after else (before,)
            ok = all(low <= v < high for v, (low, high) in zip(values, ranges))
            measured = "; ".join(f"{p} epoch 1 loss {v:.3g} (claimed {low:g}–{high:g})"
                                 for p, v, (low, high) in zip(setting, values, ranges))
            return Finding(HOLDS if ok else FAILS, measured, describe(pd.concat(runs)))
        return _on_scale(evidence, settings, one)
    return check


def _progression(index: int, printed: dict[int, float], tolerance: float = 0.25):
    """The printed loss at each printed epoch, median over seeds, each within ±tolerance. An epoch the runs
    trained and that misses refutes it; when every trained epoch matches but some were not trained, it is
    not reproduced at this horizon."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            preset = setting[index]
            runs = evidence.judged(preset)
            horizon = tables.horizon_epochs(runs)
            trained = [e for e in printed if math.isfinite(horizon) and e <= horizon]
            got = {e: (_first_epoch(evidence, runs, record.LOSS_UNDAMPED) if e == 1
                       else _epoch(evidence, runs, record.LOSS_UNDAMPED, e)) for e in trained}
            parts = [f"epoch {e} {got[e]:.3g} (claimed {printed[e]:g})" if e in got
                     else f"epoch {e} not trained (claimed {printed[e]:g})" for e in printed]
            measured = f"{preset}: " + ", ".join(parts)
            if not all(_within(got[e], printed[e], tolerance) for e in trained):
                return Finding(FAILS, measured, describe(runs))
            if len(trained) < len(printed):
                return Finding(NOT_REPRODUCED, f"{measured}; runs stop at epoch {_span(horizon)}", describe(runs))
            return Finding(HOLDS, measured, describe(runs))
        return _on_scale(evidence, WEIGHT_FIX, one)
    return check


def _faster(low: float, high: float, tolerance: float = 0.25):
    """Convergence speed on the unweighted mel L1 (weights differ between the presets): epochs until the
    per-epoch mean first reaches a common target, median over seeds. The target is the highest value any
    run of either preset has at half the horizon, so every run reaches it by then and neither preset
    reaches it at its last epoch by construction."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            slow_runs, fast_runs = evidence.judged(setting[0]), evidence.judged(setting[1])
            curves = [tables.epoch_values(r, evidence.history, record.raw("mel")) for r in (slow_runs, fast_runs)]
            if any(c.empty for c in curves):
                return Finding(UNTESTABLE, "no raw mel history", describe(pd.concat([slow_runs, fast_runs])))
            half = max(1, min(int(c.index.max()) for c in curves) // 2)
            target = max(float(c.loc[:half].iloc[-1].max()) for c in curves)  # every run reaches it by `half`
            reach = [float(c.apply(lambda col: col.index[(col <= target).to_numpy()].min()
                                   if (col <= target).any() else np.inf).median()) for c in curves]
            ratio = reach[0] / reach[1] if reach[1] else math.nan
            measured = (f"epochs to reach mel L1 {target:.3g} (the highest value of any run at epoch {half}, half the "
                        f"horizon): {setting[0]} {reach[0]:g}, {setting[1]} {reach[1]:g} → {ratio:.2f}x")
            ok = math.isfinite(ratio) and low * (1 - tolerance) <= ratio <= high * (1 + tolerance)
            return Finding(HOLDS if ok else FAILS, measured, describe(pd.concat([slow_runs, fast_runs])))
        return _settings(evidence, WEIGHT_FIX, one)
    return check


def _spikes(before_at_least: float, after_at_most: float):
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = [evidence.judged(p) for p in setting]
            peaks = []
            for r in runs:
                window = dict(zip(r["run_id"], tables.window_of(r)))
                loss = evidence.history[(evidence.history["metric"] == record.LOSS_UNDAMPED)
                                        & evidence.history["run_id"].isin(r["run_id"])]
                later = loss[loss["step"] >= loss["run_id"].map(window)]
                per_run = later.groupby("run_id")["value"].max()
                peaks.append(tables._median_with_nonfinite(per_run) if len(per_run) else math.nan)
            ok = peaks[0] >= before_at_least and peaks[1] <= after_at_most
            measured = "; ".join(f"{p}: largest loss after epoch 1 {v:.3g} (median over seeds)"
                                 for p, v in zip(setting, peaks))
            return Finding(HOLDS if ok else FAILS, measured, describe(pd.concat(runs)))
        return _on_scale(evidence, WEIGHT_FIX, one)
    return check


@dataclass(frozen=True)
class Limit:
    """An advised range for one setting, [low, high]; an unset value (no gradient clipping) is unbounded."""
    key: str          # the setting, e.g. "optim.lr"
    label: str
    low: float = -math.inf
    high: float = math.inf

    def values(self, runs: pd.DataFrame) -> pd.Series:
        values = tables.setting(runs, self.key, math.nan)   # an unset value (None) is unbounded
        return pd.to_numeric(values.map(lambda v: math.inf if v is None else v), errors="coerce").astype(float)

    def outside(self, runs: pd.DataFrame) -> pd.Series:
        values = self.values(runs)
        return (values < self.low) | (values > self.high)

    def __str__(self) -> str:
        if math.isinf(self.low):
            return f"{self.label} ≤ {self.high:g}"
        return f"{self.label} {self.low:g}–{self.high:g}" if math.isfinite(self.high) else f"{self.label} ≥ {self.low:g}"


ADVICE_MINIMUM = 10   # runs outside an advised range, none failing, that refute the advice


def _failed(runs: pd.DataFrame, failure: str) -> pd.Series:
    if failure == record.SPIKY:
        return tables.tag(runs, record.SPIKY).astype(str) == "true"
    return tables.tag(runs, record.OUTCOME).astype(str) == failure


def _who_failed(runs: pd.DataFrame, failed: np.ndarray) -> str:
    """The presets of the failed runs among `runs`, each with its count: "upstream_fp16 3/3"."""
    presets = tables.tag(runs, record.PRESET).astype(str)
    return ", ".join(f"{p} {int((failed & (presets == p).to_numpy()).sum())}/{int((presets == p).sum())}"
                     for p in dict.fromkeys(presets[failed]))


def _advised(limits: tuple[Limit, ...], failure: str = "diverged", stress_key: str | None = None):
    """Advice that keeping to a range avoids a failure ('diverged', or the spiky flag), judged on the runs of
    the documents' presets as documented: runs outside any of the ranges must fail significantly more often
    than the runs inside (one-sided Fisher exact p < 0.05); at least ADVICE_MINIMUM runs outside without one
    failure refute it; no run outside leaves it untestable. With `stress_key`, the lowest value
    of that setting at which any run failed is shown beside it."""
    def check(evidence: Evidence) -> list[Finding]:
        runs = evidence.runs[tables.tag(evidence.runs, record.OUTCOME).astype(str).isin(record.VERDICTS)]
        ranges = " and ".join(map(str, limits))
        if runs.empty:
            return [Finding(UNTESTABLE, "no finished runs in this experiment")]
        out = np.logical_or.reduce([limit.outside(runs).to_numpy() for limit in limits])
        failed = _failed(runs, failure).to_numpy()
        n_out, f_out, n_in, f_in = int(out.sum()), int((out & failed).sum()), int((~out).sum()), int((~out & failed).sum())
        low, high = stats.wilson_interval(f_out, n_out)
        presets = ", ".join(dict.fromkeys(tables.tag(runs[out], record.PRESET).astype(str))) or "none"
        measured = (f"outside {ranges} ({presets}): {f_out}/{n_out} {failure} (95 % CI {low:.0%}–{high:.0%})"
                    f"{f' ({_who_failed(runs[out], failed[out])})' if f_out else ''}; inside: {f_in}/{n_in} {failure}"
                    f"{f' ({_who_failed(runs[~out], failed[~out])})' if f_in else ''}")
        stress = evidence.stress
        if stress_key is not None and stress is not None and len(stress):
            hit = tables.number(stress[_failed(stress, failure)], stress_key).dropna()
            limit = limits[0].high
            measured += (f"; lowest {stress_key} with a failure among all of this experiment's runs: {hit.min():g} "
                         f"({hit.min() / limit:.0f}x the limit)" if len(hit) else
                         f"; no run of this experiment {failure}")
        if not n_out:
            return [Finding(UNTESTABLE, f"every one of the {n_in} runs keeps to {ranges} ({f_in} {failure}), so "
                                        f"nothing here can test the advice", describe(runs))]
        p = stats.fisher_exact_greater(f_out, n_out, f_in, n_in) if n_in else math.nan
        if math.isfinite(p):
            measured += f"; one-sided Fisher exact p = {p:.3g}"
        if p < SIGNIFICANCE:
            return [Finding(HOLDS, measured, describe(runs))]
        if f_out == 0 and n_out >= ADVICE_MINIMUM:
            return [Finding(FAILS, f"{measured}; none of the runs outside the advice {failure}", describe(runs))]
        if f_in and f_in / n_in >= f_out / n_out:
            return [Finding(FAILS, f"{measured}; the runs inside fail as often", describe(runs))]
        return [Finding(UNTESTABLE, f"{measured}; too few runs outside the advice to tell", describe(runs))]
    return check


def _safe_ranges(limits: tuple[Limit, ...]):
    """'These ranges are safe': any divergence of a run inside every range refutes it; none in at least
    ADVICE_MINIMUM runs inside holds."""
    def check(evidence: Evidence) -> list[Finding]:
        runs = evidence.runs[tables.tag(evidence.runs, record.OUTCOME).astype(str).isin(record.VERDICTS)]
        if runs.empty:
            return [Finding(UNTESTABLE, "no finished runs in this experiment")]
        inside = runs[~np.logical_or.reduce([limit.outside(runs).to_numpy() for limit in limits])]
        if inside.empty:
            return [Finding(UNTESTABLE, f"none of {len(runs)} runs is inside {' and '.join(map(str, limits))}",
                            describe(runs))]
        n, diverged = _outcomes(inside)
        low, high = stats.wilson_interval(diverged, n)
        presets = ", ".join(dict.fromkeys(tables.tag(inside, record.PRESET).astype(str))) or "none"
        measured = (f"inside {' and '.join(map(str, limits))} ({presets}): {diverged}/{n} diverged "
                    f"(95 % CI {low:.0%}–{high:.0%}"
                    f"{f'; {_who_failed(inside, _failed(inside, record.DIVERGED).to_numpy())}' if diverged else ''}) "
                    f"within {_span(tables.horizon_epochs(inside))} epochs")
        if diverged:
            return [Finding(FAILS, measured, describe(inside))]
        if n < ADVICE_MINIMUM:
            return [Finding(UNTESTABLE, f"{measured}; fewer than {ADVICE_MINIMUM} runs inside", describe(inside))]
        return [Finding(HOLDS, measured, describe(inside))]
    return check


def _raw_mel_example(evidence: Evidence) -> list[Finding]:
    """The note's worked total: its own arithmetic (analytic), and its raw mel of 8.09 against the first-epoch
    raw mel L1 of the before preset on the documents' feature scale."""
    found = [Finding(HOLDS if abs(35.0 * 8.09 - 283.15) < 0.01 and abs(2.5 * 8.09 - 20.23) < 0.01 else FAILS,
                     f"35 × 8.09 = {35.0 * 8.09:.2f}, 2.5 × 8.09 = {2.5 * 8.09:.3f} (printed 283.15, 20.23)",
                     "the note's printed values", ANALYTIC)]

    def one(setting):
        runs = evidence.judged(setting[0])
        mel = _first_epoch(evidence, runs, record.raw("mel"))
        return Finding(HOLDS if _within(mel, 8.09, 0.25) else FAILS,
                       f"{setting[0]} epoch 1 raw mel L1 {mel:.3g} (claimed 8.09, ±25 %)", describe(runs))
    return found + _on_scale(evidence, WEIGHT_FIX, one)


def _mel_term(evidence: Evidence, runs: pd.DataFrame) -> float:
    """mel weight × first-epoch raw mel L1: the total as upstream counts it (one mel term; this model weights
    the decoder's and the postnet's mel L1 alike, so its total carries the mel weight twice)."""
    weight = float(tables.number(runs, "loss.mel_loss_weight").iloc[0])
    return weight * _first_epoch(evidence, runs, record.raw("mel"))


def _three_digit(evidence: Evidence) -> list[Finding]:
    def one(setting):
        runs = [evidence.judged(p) for p in setting]
        before, after = (_first_epoch(evidence, r, record.LOSS_UNDAMPED) for r in runs)
        single = [_mel_term(evidence, r) for r in runs]
        return Finding(HOLDS if before >= 100 and after < 100 else FAILS,
                       f"epoch 1 loss: {setting[0]} (mel weight 35) {before:.3g}, {setting[1]} (2.5) {after:.3g}; "
                       f"mel term alone (upstream's one mel term): {single[0]:.3g}, {single[1]:.3g}",
                       describe(pd.concat(runs)))
    return _on_scale(evidence, WEIGHT_FIX, one)


# --- stability and quality of basic vs enhanced ---------------------------------------------------------

def _stays_stable(preset: str):
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            runs = evidence.judged(preset)
            n, diverged = _outcomes(runs)
            low, high = stats.wilson_interval(diverged, n)
            horizon = _span(tables.horizon_epochs(runs))
            measured = f"{diverged}/{n} diverged (95 % CI {low:.0%}–{high:.0%}) within {horizon} epochs"
            return Finding(FAILS if diverged else HOLDS, measured, describe(runs))
        return _settings(evidence, ((preset,),), one)
    return check


def _best_validation(runs: pd.DataFrame) -> pd.Series:
    return tables.numeric(tables.tag(runs, record.BEST_VALIDATION)).dropna()


def _better_model(better: str, worse: str):
    """'better' reaches a lower best validation postnet mel L1 than 'worse' (same feature scale): the bootstrap
    interval of the difference of means must exclude 0."""
    def check(evidence: Evidence) -> list[Finding]:
        def one(setting):
            a_runs, b_runs = evidence.judged(better), evidence.judged(worse)
            scales = {_joined(tables.setting(a_runs, "data.features.scale", ""), "standardized"),
                      _joined(tables.setting(b_runs, "data.features.scale", ""), "standardized")}
            both = describe(pd.concat([a_runs, b_runs]))
            if len(scales) > 1:
                return Finding(UNTESTABLE, "the two presets use different feature scales", both)
            diff, low, high = stats.bootstrap_mean_difference(_best_validation(a_runs), _best_validation(b_runs))
            if not math.isfinite(diff):
                return Finding(UNTESTABLE, "no best validation loss recorded", both)
            same_scale = evidence.runs[tables.setting(evidence.runs, "data.features.scale", "").map(str)
                                       .replace({"": "standardized"}) == scales.pop()]
            means = (pd.DataFrame({"preset": tables.tag(same_scale, record.PRESET).astype(str),
                                   "best": _best_validation(same_scale)})
                     .groupby("preset")["best"].mean().dropna().sort_values())
            rank = list(means.index).index(better) + 1 if better in means.index else 0
            measured = (f"best validation postnet mel L1 {better} − {worse} = {diff:+.3g} (95 % bootstrap CI {low:+.3g} to "
                        f"{high:+.3g}); {better} ranks {rank} of {len(means)} presets on this feature scale")
            if high < 0:
                return Finding(HOLDS, measured, both)
            if low > 0:
                return Finding(FAILS, measured, both)
            return Finding(UNTESTABLE, measured + "; the difference is within the seed noise", both)
        return _settings(evidence, ((better, worse),), one)
    return check


def _lr_clip_explosion(evidence: Evidence) -> list[Finding]:
    """enhanced (lr 8e-5, clip 0.8) must diverge significantly more often than basic (lr 1e-5, clip 0.5);
    the learning-rate stress sweep adds at which multiple of its own rate each preset first diverges."""
    findings = _prevents("enhanced", "basic")(evidence)
    stress = evidence.stress
    if stress is not None and len(stress):
        frontier = tables.lr_frontier(stress)
        if not frontier.empty:
            first = []
            multipliers = [c for c in frontier.columns if c.startswith("x")]
            for _, row in frontier.iterrows():
                hit = [c for c in multipliers if row[c] > 0]
                first.append(f"{row['preset']} first diverges at {hit[0] if hit else 'none of ' + ', '.join(multipliers)}")
            findings = [Finding(f.verdict, f.measured + "; learning-rate stress: " + "; ".join(first), f.evidence)
                        for f in findings]
    # A prevention rule reads 'basic prevents'; here the claim is the converse (enhanced's values cause it).
    return [Finding(NOT_REPRODUCED if f.verdict == UNTESTABLE and "nothing diverged" in f.measured else f.verdict,
                    f.measured, f.evidence) for f in findings]


# The three-digit-loss note's safe ranges.
SAFE_RANGES = (Limit("loss.mel_loss_weight", "mel weight", 1.0, 5.0), Limit("loss.kl_loss_weight", "kl weight", 0.5, 2.0),
               Limit("optim.clip_norm", "gradient clip", 0.3, 1.0))

CLAIMS = (
    # design note
    Claim("worked-1-old", "Worked example 1: the old weight climbs from 2.5 to 5.0 and the loss is NaN by step 400.",
          ("design",), "printed weights vs the implemented old formula on the printed loss trace; holds when every "
          "printed weight is within ±0.1 (a printed NaN needs a non-finite weight)",
          _worked_table("decreasing_then_spike", "old (printed)")),
    Claim("worked-1-new", "Worked example 1: the new weight stays between 2.2 and 2.5 and never fails.", ("design",),
          "as above, for the new (stable) formula", _worked_table("decreasing_then_spike", "new (printed)")),
    Claim("worked-2-old", "Worked example 2: after a spike at step 101 the old weight is NaN at step 102.", ("design",),
          "as above", _worked_table("plateau_spike_recovery", "old (printed)")),
    Claim("worked-2-new", "Worked example 2: the new weight holds 2.5 through the spike and adapts later.", ("design",),
          "as above", _worked_table("plateau_spike_recovery", "new (printed)")),
    Claim("worked-2-old-run", "Worked example 2 in training: after a loss spike the old system's loss is NaN on the "
          "next step.", ("design",), "runs whose only override is the spike fault (every raw term x fault.factor at "
          "one step after the old weight's ramp): holds when at least half the old-system runs are non-finite on "
          "the step after the spike", _spike_in_training("old")),
    Claim("worked-2-new-run", "Worked example 2 in training: the new system recovers from the same spike.",
          ("design",), f"as above: holds when every new-system run recovers (no divergence, loss/total back to ≤ "
          f"{spike.RECOVERY_FACTOR:g}x its median over the {spike.PRE_WINDOW} steps before the spike)",
          _spike_in_training("new")),
    Claim("max-change-5", "The new system changes the mel weight by at most ±5 % per adjustment.",
          ("design", "summary", "pr"), "by construction (every adjustment is clipped to ±5 %) unless a rollback "
          "fired; then the largest |w_t / w_(t−1) − 1| over every stable-weighting run must be ≤ 5 % (controller claims "
          "use the weighting-only arm stable_weight_only where it has runs)",
          _on_controller_arm(_stable_change(5.0))),
    Claim("old-change-30", "The old system changes the weight by ±20–30 % per step.", ("design", "pr"),
          "analytic: the largest rise and fall one step of the old formula allows, from its factor bounds in force; "
          "holds if both lie within 20–30 %", _old_change(20.0, 30.0)),
    Claim("six-x", "The new system is 6x more conservative (5 % vs 30 % per change).", ("design", "pr"),
          "analytic: the old formula's largest possible change per step / the new one's clip; holds if ≥ 4.5x",
          _more_conservative(6.0)),
    Claim("old-nan-epoch", "The old system's loss turns NaN at about epoch 51.", ("design", "pr"),
          "median epoch of the first non-finite loss within ±50 % of 51; no NaN through 76.5 epochs refutes it, "
          "fewer epochs do not", _nan_at_epoch(51.0)),
    Claim("new-1000", "The new system completes 1000 epochs without NaN.", ("design", "pr"),
          "any stable_adaptive divergence refutes it; without one it holds only at ≥ 1000 epochs",
          _survives(("stable_adaptive",), 1000.0)),
    Claim("wall-time", "The old system fails after ~2 h; the new one trains 1000 epochs in ~40 h.", ("design",),
          "wall time belongs to the documents' hardware and data", _wall_time),
    Claim("factor-52", "A loss ratio of 1.04 gives a factor of 0.52 and changes the weight by 52 %.", ("design",),
          "analytic: the old formula on the note's own numbers (ratio 1.04, base 2.5, factor clip 0.8–1.2)",
          _factor_example),
    Claim("factor-range", "The old adaptation factor can range 0.7–1.3.", ("design",),
          "analytic: the range the factor can take under either documented clip (0.8–1.2, 0.7–1.3)", _factor_range),
    Claim("dampening-4-10", "Worked example 2: the spike of 100 is dampened to 4.0, a weighted loss of 10.0.",
          ("design",), "analytic: the dampener's rule (scale by threshold / ratio, threshold 2) on the note's numbers; "
          "holds when both printed values follow", _dampening_arithmetic),
    Claim("schedule-100-50", "The new system waits 100 warmup steps and 50 cooling steps between changes.",
          ("design", "pr"), "in the runs: the first adjustment (decision increase/decrease) after step 100, any two "
          "adjustments ≥ 50 steps apart; not testable when none happened", _schedule),
    Claim("bands", "New weight 2.3–2.5 over epochs 201–400, then 2.2–2.4 over 401–600.", ("design",),
          "median new weight per epoch within each band ± 0.05; needs runs through epoch 600",
          _weight_bands(((201, 400, 2.3, 2.5), (401, 600, 2.2, 2.4)))),
    # fix summary
    Claim("feedback", "The old system's feedback loop: the loss falls, so the weight rises.", ("summary", "pr"),
          "analytic: the direction in which the old formula moves the weight when the loss falls", _feedback),
    Claim("better-not-worse", "With the new system the model gets better, not worse.", ("summary",),
          "best validation postnet mel L1, stable_adaptive − enhanced (same features); holds when the 95 % bootstrap "
          "interval lies below 0, does not hold when above", _better_model("stable_adaptive", "enhanced")),
    Claim("rollback", "The new system returns to a safe weight by itself when an adjustment goes wrong.",
          ("summary", "pr"), "runs whose controller rolled back a weight must end stable (on stable_weight_only "
          "where it has runs); not testable when none "
          "rolled back", _on_controller_arm(_rollback)),
    # pull request
    Claim("old-fails", "Old system: 0 of 10 runs succeed (all end in NaN).", ("pr",),
          "holds when every old-system run diverges; does not hold when one survives "
          f"≥ {51 * (1 + HORIZON_TOLERANCE):g} epochs (the horizon rule of the NaN-epoch claim); otherwise not reproduced",
          _all_fail(51.0)),
    Claim("new-succeeds", "New system: success rate \"Expected 10/10 runs (100%)\" — an expectation in the pull "
          "request, judged as a prevention claim.", ("design", "pr"),
          "prevention: holds only when enhanced diverges significantly more often (one-sided Fisher exact p < 0.05) "
          "and stable_adaptive never does; not testable when nothing diverges", _prevents("enhanced", "stable_adaptive")),
    Claim("safety-8", "The new system has 8+ safety checks.", ("pr",), "by construction: count of the checks the "
          "controller's code runs, holds if ≥ 8; the row also counts the distinct blocking decisions that fired in the "
          "stable_weight_only (else stable-weighting) "
          "runs", _on_controller_arm(_safety_checks(8))),
    Claim("overhead-0.1", "The new system's safety checks cost ~0.1 % of training time.", ("pr",),
          "benchmarks.step_time, 10 interleaved rounds; holds within ±1 %; not testable when rounds spread > 2 %",
          _overhead),
    # 30-utterance test report
    Claim("epoch1-enhanced", "Enhanced, epoch 1: loss 9.10, mel 0.69, stop 7.60.", ("test",),
          "not testable: absolute values of another model and data (an untrained stop logit gives ln 2 here); the "
          "first-epoch means, median over seeds, are shown for reference",
          _other_model(_absolute("enhanced", {"loss": 9.103, "mel": 0.69, "stop": CLAIMED_EPOCH1_STOP}))),
    Claim("epoch1-basic", "Basic, epoch 1: loss 2.38, mel 0.65, stop 1.40.", ("test",), "as above",
          _other_model(_absolute("basic", {"loss": 2.3795, "mel": 0.65, "stop": 1.400}))),
    Claim("validation-basic", "Basic, validation: loss 2.93, mel 0.693, stop 2.24.", ("test",),
          "as above, at the first validation",
          _other_model(_absolute("basic", {"loss": 2.929, "mel": 0.693, "stop": 2.236}, validation=True))),
    Claim("basic-3.8x", "Basic starts with a 3.8x lower loss than enhanced.", ("test",),
          "not testable: a ratio of the absolute epoch-1 values above; first-epoch total loss, enhanced / basic, "
          "shown for reference", _other_model(_ratio((("enhanced", "basic"),), record.LOSS_UNDAMPED, 3.8))),
    Claim("stop-5.4x", "Basic's stop loss is 5.4x lower than enhanced's.", ("test",),
          "not testable, as above; first-epoch raw stop loss, enhanced / basic, shown for reference",
          _other_model(_ratio((("enhanced", "basic"),), record.raw("stop"), 5.4))),
    Claim("mel-6pct", "Basic's mel loss is 6 % better than enhanced's.", ("test",),
          "validation postnet mel L1 at the first validation (the same quantity for both, whatever loss each trains "
          "with), (enhanced − basic) / enhanced; holds within 3–9 %",
          _relative_gain((("enhanced", "basic"),), record.VAL_POSTNET, 0.06)),
    Claim("reduction-73", "Basic's epoch-1 loss 2.38 instead of 9.10 is a 73 % reduction.", ("test",),
          "analytic: the report's own arithmetic, 1 − 2.38 / 9.10, within ±1 percentage point of 73 %",
          lambda evidence: [Finding(HOLDS if abs((1 - 2.3795 / 9.103) * 100 - 73) <= 1 else FAILS,
                                    f"1 − 2.3795 / 9.103 = {1 - 2.3795 / 9.103:.1%} (the absolute values themselves "
                                    f"are not testable here: see the epoch-1 rows)", "the report's printed values",
                                    ANALYTIC)]),
    Claim("lr-clip", "Enhanced's lr 8e-5 and clip 0.8 make the gradients explode; basic's 1e-5 and 0.5 do not.",
          ("test",), "enhanced must diverge significantly more often than basic (one-sided Fisher exact p < 0.05); "
          "nothing diverging is not a reproduction", _lr_clip_explosion),
    Claim("epoch2-enhanced", "Enhanced, epoch 2: loss 3.97, mel 0.70, stop 2.46.", ("test",), "as the epoch-1 rows",
          _other_model(_absolute("enhanced", {"loss": 3.970, "mel": 0.70, "stop": 2.455}, epoch=2))),
    Claim("limit-lr", "Never train above lr 2e-5.", ("test",),
          f"advice: runs of the documents' presets above the limit must diverge significantly more often than those "
          f"at or below it (one-sided Fisher exact p < 0.05); ≥ {ADVICE_MINIMUM} runs above it without a divergence "
          f"refute it; the lowest failing rate among all of this experiment's runs is shown",
          _advised((Limit("optim.lr", "lr", high=2e-5),), stress_key="optim.lr")),
    Claim("limit-mel-1.5", "Keep the mel weight at or below 1.5.", ("test",), "advice, as above",
          _advised((Limit("loss.mel_loss_weight", "mel weight", high=1.5),))),
    Claim("limit-batch", "Keep the batch size small (8–16).", ("test",), "advice, as above",
          _advised((Limit("trainer.batch_size", "batch size", low=8, high=16),))),
    Claim("basic-stable", "Basic trains without NaN.", ("test",), "any basic divergence refutes it",
          _stays_stable("basic")),
    Claim("basic-better", "Basic is the better configuration (lower loss, better training).", ("test",),
          "best validation postnet mel L1, basic − enhanced (same features); holds when the 95 % bootstrap interval lies "
          "below 0, does not hold when above", _better_model("basic", "enhanced")),
    # three-digit-loss note
    Claim("three-digit", "Mel weight 35 gives a three-digit loss; 2.5 gives one or two digits.", ("weights",),
          "first-epoch total loss: before ≥ 100 and after < 100", _three_digit),
    Claim("starts", "Before the fix the loss starts at 200–500; after it, at 10–30.", ("weights",),
          "first-epoch total loss within each range", _starts(WEIGHT_FIX, (200, 500), (10, 30))),
    Claim("fix-14x", "Mel weight 35 → 2.5 gives a 14x lower loss.", ("weights",),
          "first-epoch total loss, before / after; within ±25 %", _ratio(WEIGHT_FIX, record.LOSS_UNDAMPED, 14.0)),
    Claim("fix-18x", "Mel weight 45 → 2.5 gives an 18x lower loss.", ("weights",),
          "as above, the before total recomputed at mel weight 45; within ±25 %",
          _ratio(WEIGHT_FIX, record.LOSS_UNDAMPED, 18.0, mel_weight=45.0)),
    Claim("progression-before", "Before the fix: loss 283 at epoch 1, 246 at epoch 10, 198 at epoch 50, 168 at "
          "epoch 100.", ("weights",), "epoch means, median over seeds, each within ±25 %; an epoch trained and missed "
          "refutes it, epochs not trained leave it not reproduced",
          _progression(0, {1: 283.28, 10: 245.67, 50: 198.34, 100: 167.89})),
    Claim("progression-after", "After the fix: loss 19.9 at epoch 1, 12.5 at epoch 10, 4.23 at epoch 50, 1.89 at "
          "epoch 100.", ("weights",), "as above", _progression(1, {1: 19.88, 10: 12.45, 50: 4.23, 100: 1.89})),
    Claim("raw-mel-8.09", "A moderate error is a raw mel loss of 8.09: 283 at mel weight 35, 20.2 at 2.5.",
          ("weights",), "analytic: the note's own products; runs: the before preset's first-epoch raw mel L1 within "
          "±25 % of 8.09", _raw_mel_example),
    Claim("safe-ranges", "Safe: mel weight 1–5, kl weight 0.5–2, gradient clip 0.3–1.", ("weights",),
          f"runs of the documents' presets inside all three ranges: any divergence refutes it, none in ≥ "
          f"{ADVICE_MINIMUM} runs holds", _safe_ranges(SAFE_RANGES)),
    Claim("clip-2-spikes", "Dangerous: a gradient clip above 2 may allow loss spikes.", ("weights",),
          f"runs clipped above 2 or not at all must be spiky significantly more often (one-sided Fisher exact p < "
          f"0.05); ≥ {ADVICE_MINIMUM} of them never spiky refute it (its mel weight > 10 is the three-digit row)",
          _advised((Limit("optim.clip_norm", "gradient clip", high=2.0),), record.SPIKY)),
    Claim("faster-2-3x", "After the fix training converges 2–3x faster.", ("weights",),
          "epochs until the unweighted mel L1 reaches a common target (the highest value of any run at half the "
          "horizon), before / after; holds within 1.5–3.75x",
          _faster(2.0, 3.0)),
    Claim("spikes", "Loss spikes reach 1000+ before the fix and stay around 50 after it.", ("weights",),
          "largest loss after epoch 1, median over seeds: before ≥ 1000 and after ≤ 100", _spikes(1000, 100)),
)


COLUMNS = ["claim", "source", "rule", "kind", "evidence", "measured", "verdict"]


def audit(evidence: Evidence) -> pd.DataFrame:
    rows: list[dict[str, str]] = []
    for claim in CLAIMS:
        rows.extend({"claim": claim.text, "source": "; ".join(DOCUMENTS[s] for s in claim.sources),
                     "rule": claim.rule, "kind": finding.kind, "evidence": finding.evidence or "—",
                     "measured": finding.measured, "verdict": finding.verdict} for finding in claim.check(evidence))
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict_counts(audited: pd.DataFrame) -> dict[str, int]:
    return {v: int((audited["verdict"] == v).sum()) for v in VERDICTS}
