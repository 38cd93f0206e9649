"""Every quantitative claim of the source documents as a row of data; analysis/rules.py judges every row.

A row names the claim (its text and source), its kind, the measure that produces its numbers, the arms it needs
(by role, as the experiment's sweep file assigns them: analysis/roles.py), the documents' own setting among
those arms (other settings of the same roles are sensitivity lines, never a second verdict), the comparison and
tolerance, the horizon it speaks of, the mechanism it is about, and the one report that judges it. The rule text
a report prints is generated from the row, so every threshold is written once.

Kinds:
- measured: the lab trains and measures it (verdicts say "on this proxy": 0.78 M parameters, 30 utterances);
- arithmetic: the document's own numbers, or the formula it describes, recomputed;
- by construction: true of the lab's re-implementation whatever happens (shown so nobody reads it as a result);
- advice: a recommendation, judged as a rate comparison on this proxy.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import late, roles, rules, stats, tables
from analysis.rules import Groups, Measurement, Part
from myxtts import record
from myxtts.training.settings import (CHECK_DECISIONS, DECISIONS, GuardSettings, LegacyTanhSettings, LossSettings,
                                      StableSettings)

HOLDS, FAILS, NOT_REPRODUCED, PROXY, UNTESTABLE = (rules.HOLDS, rules.FAILS, rules.NOT_REPRODUCED, rules.PROXY,
                                                   rules.NOT_TESTABLE)
VERDICTS = rules.VERDICTS
MEASURED, ARITHMETIC, BY_CONSTRUCTION, ADVICE = "measured", "arithmetic", "by construction", "advice"
KINDS = (MEASURED, ARITHMETIC, BY_CONSTRUCTION, ADVICE)
ON_PROXY = "on this proxy"
SENSITIVITY = "sensitivity"    # the verdict column of a line that is not the claim's evidence

DOCUMENTS = {
    "design": "design note on the stable adaptive weight",
    "summary": "fix summary (Persian)",
    "pr": "refactoring pull request",
    "test": "30-utterance NaN test report",
    "weights": "three-digit-loss fix note",
}

# The mechanisms a claim can be about, and how a run shows that one acted.
OLD_WEIGHT, NEW_CONTROLLER = "the old tanh weight", "the new controller"

# The documents' own settings, by date (docs/sources.md): the three-digit-loss note reasons on upstream's log-mel
# features; the stable-weight documents came after upstream trained in float32.
LOG_FEATURES = (("data.features.scale", "log"),)
FLOAT32 = (("trainer.precision", "float32"),)

# Absolute values measured on another model and data set: with the logits at 0 the stop loss is ln 2 per negative
# frame and w·ln 2 per positive one, so an epoch-1 stop loss of 7.6 cannot come from an untrained stop head under
# the documented settings; no run here is comparable with such numbers.
CLAIMED_EPOCH1_STOP = 7.597
_STOP_BOUND = math.log(2.0) * max(1.0, LossSettings().stop_positive_weight)
OTHER_MODEL = (f"absolute values of another model and data set (the 30-utterance test's epoch-1 stop loss "
               f"{CLAIMED_EPOCH1_STOP:g} is {CLAIMED_EPOCH1_STOP / _STOP_BOUND:.0f}x the {_STOP_BOUND:.2f} an untrained "
               f"stop head gives under the documented settings); the lab's values are shown for reference")
OTHER_HARDWARE = "wall time of the documents' GPU and data set; the lab's time per epoch is shown for reference"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    sources: tuple[str, ...]
    kind: str
    measure: str                               # a key of MEASURES
    claimed: object = None                     # a number, a (low, high) range, or per-part values (options)
    compare: str = "within"                    # a key of rules.COMPARISONS
    tolerance: float = 0.0
    arms: tuple[str, ...] = ()                 # roles, in the measure's order
    setting: tuple[tuple[str, str], ...] = ()  # the documents' own setting among the arms' runs
    horizon: float | None = None               # epochs the claim speaks of
    about: bool = False                        # "by about epoch E": silence refutes only at E x (1 + tolerance)
    mechanism: tuple[str, ...] = ()            # what must have acted for the runs to speak to the claim
    comparable: bool = True                    # False: absolute values of another model or hardware
    not_comparable_because: str = OTHER_MODEL
    options: tuple[tuple[str, object], ...] = ()   # the measure's parameters
    report: str = "claims"                     # the one report whose design judges it

    def parts(self) -> dict:
        """The claimed value per part, for claims that print several (empty for a single value)."""
        return self.claimed if isinstance(self.claimed, dict) else {}

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)

    @property
    def rule(self) -> str:
        """The rule as the report prints it, from the row's own fields."""
        text = MEASURES[self.measure][1].format(**{k: _fmt(v) for k, v in self.options}, arms=" vs ".join(self.arms))
        if self.compare in ("interval below 0", "higher rate"):
            text += f"; holds with {rules.describe(self.compare, self.claimed, self.tolerance)}"
        elif isinstance(self.claimed, dict):
            slack = {"near": f" within ±{self.tolerance:g}", "within": f" within ±{self.tolerance:.0%}",
                     "range": f" (±{self.tolerance:.0%} at either end)"}.get(self.compare, "") if self.tolerance else ""
            text += f"; holds when every part is as printed{slack}: {self._claimed_text()}"
        elif self.claimed is not None:
            text += f"; holds {rules.describe(self.compare, self.claimed, self.tolerance)}"
        else:
            text += f"; holds when every computed value is {self.compare} the printed one" + (
                f" (±{self.tolerance:g})" if self.tolerance else "")
        if self.horizon:
            text += (f"; needs runs through {rules.needed_epochs(self.horizon, self.about):g} epochs"
                     + (f" (epoch {self.horizon:g} x {1 + rules.HORIZON_TOLERANCE:g})" if self.about else ""))
        if self.setting:
            text += "; evidence: " + ", ".join(f"{k} = {v}" for k, v in self.setting) + " (others: sensitivity)"
        if self.mechanism:
            text += f"; needs {' and '.join(self.mechanism)} to have acted"
        return text


    def _claimed_text(self) -> str:
        """The claimed parts as a reader names them: per-arm epoch values by role and epoch, not by index."""
        if self.measure != "epoch values" or not isinstance(self.claimed, dict):
            return _fmt(self.claimed)
        per_arm = self.claimed if all(isinstance(v, dict) for v in self.claimed.values()) else {0: self.claimed}
        return "; ".join(f"{self.arms[i] if isinstance(i, int) and i < len(self.arms) else i}: "
                         + ", ".join(f"epoch {epoch} {_fmt(value)}" for epoch, value in epochs.items())
                         for i, epochs in per_arm.items())


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return f"{'in' if value[0] == 'range' else value[0]} {_fmt(value[1])}"   # ("at least", 100.0)
    if isinstance(value, dict):
        return ", ".join(f"{_fmt(k)}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:g}–{value[1]:g}"
    if isinstance(value, tuple):
        return " and ".join(map(_fmt, value))
    return str(value)


@dataclass
class Evidence:
    runs: pd.DataFrame                 # runs at learning-rate multiplier 1
    history: pd.DataFrame
    benchmark: dict | None = None      # reports/bench/step_time.json
    replay: dict | None = None         # reports/replay/replay.json
    stress: pd.DataFrame | None = None  # every run, other learning-rate multipliers included
    spikes: pd.DataFrame | None = None  # analysis.spike.per_run: runs whose only override is the spike fault

    def judged(self) -> pd.DataFrame:
        """Finished runs with a verdict."""
        return self.runs[tables.tag(self.runs, record.OUTCOME).astype(str).isin(record.VERDICTS)]

    def arm(self, role: str) -> pd.DataFrame:
        return roles.with_role(self.judged(), role)

    def history_of(self, runs: pd.DataFrame) -> pd.DataFrame:
        return self.history[self.history["run_id"].isin(runs["run_id"])]


# --- describing runs ---------------------------------------------------------------------------------

def _compact(values) -> str:
    numbers = sorted({int(v) for v in values if str(v).lstrip("-").isdigit()})
    if not numbers:
        return "?"
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"{numbers[0]}–{numbers[-1]}"
    return ", ".join(map(str, numbers))


def _joined(values: pd.Series, default: str) -> str:
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
            f"{values('trainer.steps', '?')} steps = {f'{epochs:g}' if math.isfinite(epochs) else '?'} epochs of "
            f"{_joined(tables.tag(runs, record.TRAIN_UTTERANCES), '?')} utterances; "
            f"{values('data.features.scale', 'standardized')} features, {values('trainer.precision', 'float32')}, "
            f"{huber} mel loss, stop positive weight {values('loss.stop_positive_weight', '1.0')}")


def _span(runs: pd.DataFrame) -> str:
    """The runs' horizon in the subset's epochs with its steps beside it (a subset epoch is a few steps, not the
    documents' epoch)."""
    epochs, steps = tables.horizon_epochs(runs), tables.number(runs, "trainer.steps").min()
    return (f"{epochs:g} epochs" if math.isfinite(epochs) else "? epochs") + \
        (f" ({steps:g} steps)" if math.isfinite(steps) else "")


def _first_epoch(evidence: Evidence, runs: pd.DataFrame, metric: str, epoch: int = 1) -> float:
    wide = tables.epoch_values(runs, evidence.history, metric)
    return tables._median_with_nonfinite(wide.loc[epoch]) if len(wide) and epoch in wide.index else math.nan


def _first_validation(evidence: Evidence, runs: pd.DataFrame, metric: str) -> float:
    """Median over runs of the first validation after training started (step 0 is the untrained model)."""
    rows = evidence.history_of(runs)
    rows = rows[(rows["metric"] == metric) & (rows["step"] > 0)]
    first = rows.sort_values("step").groupby("run_id")["value"].first()
    return float(first.median()) if len(first) else math.nan


def _diverged(runs: pd.DataFrame) -> pd.Series:
    return tables.tag(runs, record.OUTCOME).astype(str) == record.DIVERGED


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _failure_steps(runs: pd.DataFrame) -> list[int]:
    """The step at which each diverged run first went wrong (analysis/late.py's one definition); a run without facts
    is read from its tags, and one whose step is unknown counts at its last step, never as an early failure."""
    found = []
    for _, run in runs[_diverged(runs)].iterrows():
        fact = run.get("facts")
        step = late.failure_step(fact) if fact is not None else None
        if step is None:
            first, dropped, last = (_number(run.get(record.tag_column(name), "")) for name in
                                    (record.FIRST_NONFINITE_STEP, record.DIVERGED_AT_STEP, record.STEPS_COMPLETED))
            known = [v for v in (first, dropped) if math.isfinite(v)]
            step = int(min(known)) if known else int(last) if math.isfinite(last) else 10 ** 9
        found.append(int(step))
    return found


BOOTSTRAP_MINIMUM = 3   # runs per arm below which a bootstrap interval of a difference says nothing


# --- the mechanisms ----------------------------------------------------------------------------------

def _legacy_settings(runs: pd.DataFrame) -> LegacyTanhSettings:
    used = [w for w in tables.setting(runs, "weighting") if isinstance(w, LegacyTanhSettings)]
    return used[0] if used else LegacyTanhSettings()


def _adjusting(evidence: Evidence, runs: pd.DataFrame) -> dict[str, list[int]]:
    """Per stable-weighting run, the steps at which the controller adjusted the weight."""
    codes = evidence.history_of(runs)
    codes = codes[(codes["metric"] == record.WEIGHTING_DECISION) & codes["value"].notna()]
    adjusting = {DECISIONS.index("increase"), DECISIONS.index("decrease")}
    return {run_id: sorted(int(step) + 1 for step, code in zip(part["step"], part["value"]) if int(code) in adjusting)
            for run_id, part in codes.groupby("run_id")}


def _idle(evidence: Evidence, runs: pd.DataFrame, mechanisms: tuple[str, ...]) -> tuple[str, bool]:
    """Why a mechanism the claim is about never acted in these runs ("" when each acted in some run), and whether
    the runs were too short for it to act at all (a horizon limit, not a property of the proxy)."""
    reasons, short = [], []
    trained = tables.numeric(tables.tag(runs, record.STEPS_COMPLETED)).max()
    trained = int(trained) if math.isfinite(trained) else 0
    strategy = tables.setting(runs, "weighting.name")
    if OLD_WEIGHT in mechanisms:
        old = runs[strategy == "legacy_tanh"]
        changes = tables.weight_changes(evidence.history, old["run_id"]) if len(old) else pd.DataFrame()
        if len(old) and not (len(changes) and (changes["adjustments"] > 0).any()):
            s = _legacy_settings(old)
            could = "cannot leave" if trained < s.first_step_off_floor() else "never left"
            short.append(trained < s.first_step_off_floor())
            reasons.append(f"{OLD_WEIGHT} {could} its floor ({s.tanh_factor_min:g} x base) in {len(old)} runs of ≤ "
                           f"{trained} steps: it can first move at step {s.first_step_off_floor()}, on a loss ≥ "
                           f"{s.floor_ratio():.2f}x its running mean")
    if NEW_CONTROLLER in mechanisms:
        new = runs[strategy == "stable"]
        if len(new) and not any(_adjusting(evidence, new).values()):
            short.append(trained <= StableSettings().min_warmup_steps)
            reasons.append(f"{NEW_CONTROLLER} never adjusted the weight in {len(new)} runs of ≤ {trained} steps (its "
                           f"warmup is {StableSettings().min_warmup_steps} steps)")
    return "; ".join(reasons), bool(short) and all(short)


# --- measures: numbers from evidence, no verdicts ---------------------------------------------------------

def _failure_rate(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    arm = runs[0]
    n, diverged = len(arm), int(_diverged(arm).sum())
    low, high = stats.wilson_interval(diverged, n)
    trained = tables.horizon_epochs(arm)
    reached = claim.horizon is None or (math.isfinite(trained)
                                        and trained >= rules.needed_epochs(claim.horizon, claim.about))
    outcomes = tables.tag(arm, record.OUTCOME).astype(str).value_counts()
    others = ", ".join(f"{outcomes[o]} {o}" for o in record.VERDICTS if o != record.DIVERGED and o in outcomes)
    return Measurement(f"{diverged}/{n} runs diverged (95 % CI {low:.0%}–{high:.0%}) within {_span(arm)}"
                       + (f"; the others {others}" if others else ""),
                       describe(arm), [Part("divergence rate", diverged / n, claim.claimed, reached=reached, rises=True)],
                       trained=trained)


def _failure_epoch(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The median epoch of the first non-finite loss over every run, a run without one counting as never (+inf);
    settled once more than half the runs failed (more training cannot move the median then)."""
    arm = runs[0]
    epochs = tables.epochs_of(arm, tables.first_nonfinite_steps(arm))
    failed = epochs.dropna()
    trained = tables.horizon_epochs(arm)
    reached = math.isfinite(trained) and trained >= rules.needed_epochs(claim.horizon or 0, claim.about)
    median = tables._median_with_nonfinite(epochs.fillna(math.inf)) if len(arm) else math.nan
    text = (f"first non-finite loss in {len(failed)}/{len(arm)} runs"
            + (f" (epochs {failed.min():.3g}–{failed.max():.3g})" if len(failed) else "")
            + f"; median over every run {median:.3g} (a run without one counts as never) through {_span(arm)}")
    return Measurement(text, describe(arm), [Part("median failure epoch", median, claim.claimed, reached=reached,
                                                  settled=2 * len(failed) > len(arm))], trained=trained)


def _rate_groups(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """Two arms' failures: the first is claimed to fail more often than the second (prevention)."""
    a, b = runs
    acts_from = 0
    if claim.option("after_both_act"):   # a prevention claim: only failures either system could have prevented
        acts_from = late.LATE_AFTER + 1   # after both systems can act: the late-failure search's threshold
    text = "; ".join(f"{role}: {int(_diverged(r).sum())}/{len(r)} diverged, failure steps "
                     f"{', '.join(map(str, _failure_steps(r))) or '—'}" for role, r in zip(claim.arms, runs))
    return Measurement(text, describe(pd.concat([a, b])),
                       groups=Groups(_failure_steps(a), len(a), _failure_steps(b), len(b), acts_from,
                                     a_name=f"the {claim.arms[0]}"))


def _epoch_values(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """A metric at printed epochs, median over seeds, per arm: options metric and values {arm index: {epoch: v}}
    or {epoch: v} for one arm."""
    metric = claim.option("metric", record.LOSS_UNDAMPED)
    printed: dict = claim.claimed if isinstance(claim.claimed, dict) else {1: claim.claimed}
    per_arm: dict = printed if all(isinstance(v, dict) for v in printed.values()) else {0: printed}
    parts, texts = [], []
    for index, epochs in per_arm.items():
        arm = runs[index]
        trained = tables.horizon_epochs(arm)
        for epoch, value in epochs.items():
            compare = None
            if isinstance(value, tuple) and isinstance(value[0], str):
                compare, value = value
            got = _first_epoch(evidence, arm, metric, epoch)
            reached = math.isfinite(trained) and epoch <= trained
            label = f"{claim.arms[index]} epoch {epoch}"
            parts.append(Part(label, got, value, compare, reached=reached))
            texts.append(f"{label} {got:.3g}" if reached else f"{label} not trained")
    return Measurement(f"{metric}: " + ", ".join(texts), describe(pd.concat(runs)), parts)


def _ratio(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """First-epoch metric of the first arm over the second's; with option mel_weight, the first arm's total
    recomputed at that mel weight from its own raw mel and postnet terms (the loss is linear in the weight)."""
    metric = claim.option("metric", record.LOSS_UNDAMPED)
    top_runs, bottom_runs = runs
    top, bottom = _first_epoch(evidence, top_runs, metric), _first_epoch(evidence, bottom_runs, metric)
    note = ""
    if (weight := claim.option("mel_weight")) is not None:
        base = float(tables.number(top_runs, "loss.mel_loss_weight").iloc[0])
        mel = _first_epoch(evidence, top_runs, record.raw("mel")) + _first_epoch(evidence, top_runs, record.raw("postnet"))
        top += (weight - base) * mel
        note = f" (recomputed at mel weight {weight:g} from its raw mel + postnet {mel:.3g})"
    ratio = top / bottom if bottom else math.nan
    return Measurement(f"epoch 1 {metric}: {claim.arms[0]} {top:.3g}{note} / {claim.arms[1]} {bottom:.3g} = "
                       f"{ratio:.2f}x", describe(pd.concat(runs)), [Part("ratio", ratio, claim.claimed)])


def _first_validation_value(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    metric = claim.option("metric", record.VAL_TOTAL)
    value = _first_validation(evidence, runs[0], metric)
    return Measurement(f"{claim.arms[0]} first validation {metric} {value:.3g}", describe(runs[0]),
                       [Part("first validation", value, claim.claimed)])


def _epoch_gain(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    metric = claim.option("metric", record.raw("mel"))
    a, b = (_first_epoch(evidence, r, metric) for r in runs)
    gain = (a - b) / a if a else math.nan
    return Measurement(f"epoch 1 {metric}: {claim.arms[0]} {a:.3g}, {claim.arms[1]} {b:.3g} → "
                       f"{gain:+.1%} lower", describe(pd.concat(runs)), [Part("relative gain", gain, claim.claimed)])


def _best_validation_difference(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """Best validation postnet mel L1, first arm minus second: mean difference with its bootstrap interval."""
    best = [tables.numeric(tables.tag(r, record.BEST_VALIDATION)).dropna() for r in runs]
    if min(len(b) for b in best) < BOOTSTRAP_MINIMUM:
        return Measurement(missing=f"{min(len(b) for b in best)} run(s) with a best validation loss in an arm; the "
                                   f"interval needs at least {BOOTSTRAP_MINIMUM} per arm",
                           evidence=describe(pd.concat(runs)))
    scales = {_joined(tables.setting(r, "data.features.scale", ""), "standardized") for r in runs}
    if len(scales) > 1:
        return Measurement(missing="the arms use different feature scales", evidence=describe(pd.concat(runs)))
    diff, low, high = stats.bootstrap_mean_difference(*best)
    if not (math.isfinite(diff) and math.isfinite(low) and math.isfinite(high)):
        return Measurement(missing="no best validation loss recorded", evidence=describe(pd.concat(runs)))
    return Measurement(f"best validation postnet mel L1 {claim.arms[0]} − {claim.arms[1]} = {diff:+.3g} (95 % bootstrap "
                       f"CI {low:+.3g} to {high:+.3g})", describe(pd.concat(runs)),
                       [Part("difference", diff, 0.0, interval=(low, high))])


def _largest_loss(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """Largest loss after epoch 1, median over seeds, per arm (claimed: {arm index: (comparison, value)})."""
    parts, texts = [], []
    for index, (compare, value) in claim.parts().items():
        arm = runs[index]
        window = dict(zip(arm["run_id"], tables.window_of(arm)))
        loss = evidence.history_of(arm)
        loss = loss[loss["metric"] == record.LOSS_UNDAMPED]
        per_run = loss[loss["step"] >= loss["run_id"].map(window)].groupby("run_id")["value"].max()
        peak = tables._median_with_nonfinite(per_run) if len(per_run) else math.nan
        parts.append(Part(f"{claim.arms[index]} peak", peak, value, compare))
        texts.append(f"{claim.arms[index]} {peak:.3g}")
    return Measurement("largest loss after epoch 1 (median over seeds): " + ", ".join(texts),
                       describe(pd.concat(runs)), parts)


def _convergence(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """Epochs until the unweighted mel L1 first reaches a common target (the highest value any run has at half the
    horizon, so every run reaches it), median over seeds; first arm over second."""
    curves = [tables.epoch_values(r, evidence.history, record.raw("mel")) for r in runs]
    if any(c.empty for c in curves):
        return Measurement(missing="no raw mel history", evidence=describe(pd.concat(runs)))
    half = max(1, min(int(c.index.max()) for c in curves) // 2)
    target = max(float(c.loc[:half].iloc[-1].max()) for c in curves)
    reach = [float(c.apply(lambda col: col.index[(col <= target).to_numpy()].min()
                           if (col <= target).any() else np.inf).median()) for c in curves]
    ratio = reach[0] / reach[1] if reach[1] else math.nan
    return Measurement(f"epochs to reach mel L1 {target:.3g} (the highest of any run at epoch {half}): "
                       f"{claim.arms[0]} {reach[0]:g}, {claim.arms[1]} {reach[1]:g} → {ratio:.2f}x",
                       describe(pd.concat(runs)), [Part("speed-up", ratio, claim.claimed)])


def _first_mel(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    mel = _first_epoch(evidence, runs[0], record.raw("mel"))
    return Measurement(f"{claim.arms[0]} epoch 1 raw mel L1 {mel:.3g}", describe(runs[0]),
                       [Part("raw mel", mel, claim.claimed)])


@dataclass(frozen=True)
class Limit:
    """An advised range for one setting, [low, high]; an unset value (no gradient clipping) is unbounded."""
    key: str
    label: str
    low: float = -math.inf
    high: float = math.inf

    def outside(self, runs: pd.DataFrame) -> np.ndarray:
        values = tables.setting(runs, self.key, math.nan)
        values = pd.to_numeric(values.map(lambda v: math.inf if v is None else v), errors="coerce").astype(float)
        return ((values < self.low) | (values > self.high)).to_numpy()

    def __str__(self) -> str:
        if math.isinf(self.low):
            return f"{self.label} ≤ {self.high:g}"
        return f"{self.label} {self.low:g}–{self.high:g}" if math.isfinite(self.high) else f"{self.label} ≥ {self.low:g}"


def _failed(runs: pd.DataFrame, failure: str) -> np.ndarray:
    if failure == record.SPIKY:
        return (tables.tag(runs, record.SPIKY).astype(str) == "true").to_numpy()
    return _diverged(runs).to_numpy()


def _advice(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """Runs of every arm outside any advised range against those inside every one."""
    every = pd.concat(runs)
    limits: tuple[Limit, ...] = claim.option("limits")
    failure = claim.option("failure", record.DIVERGED)
    out = np.logical_or.reduce([limit.outside(every) for limit in limits])
    failed = _failed(every, failure)
    ranges = " and ".join(map(str, limits))
    presets = ", ".join(dict.fromkeys(tables.tag(every[out], record.PRESET).astype(str))) or "none"
    text = (f"outside {ranges} ({presets}): {int((out & failed).sum())}/{int(out.sum())} {failure}; inside: "
            f"{int((~out & failed).sum())}/{int((~out).sum())} {failure}")
    if not out.any():
        return Measurement(text, describe(every), missing=f"every one of the {len(every)} runs keeps to {ranges}")
    # with runs inside, outside-against-inside must isolate the advised setting (runs outside alone need no contrast)
    confounded = _confounded(_varied([every[out], every[~out]]), tuple(limit.key for limit in limits),
                             "the runs outside and inside the advice") if (~out).any() else ""
    if confounded:
        return Measurement(text, describe(every), missing=confounded)
    steps = lambda mask: [0] * int((mask & failed).sum())   # noqa: E731  (any step counts)
    return Measurement(text, describe(every), groups=Groups(steps(out), int(out.sum()), steps(~out), int((~out).sum()),
                                                            advice=True, a_name="the runs outside the advice"))


def _inside_rate(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """'These ranges are safe': the divergence rate of runs inside every range (needs ADVICE_MINIMUM of them)."""
    every = pd.concat(runs)
    limits: tuple[Limit, ...] = claim.option("limits")
    inside = every[~np.logical_or.reduce([limit.outside(every) for limit in limits])]
    ranges = " and ".join(map(str, limits))
    if len(inside) < rules.ADVICE_MINIMUM:
        return Measurement(missing=f"{len(inside)} runs inside {ranges}, fewer than {rules.ADVICE_MINIMUM}",
                           evidence=describe(every))
    n, diverged = len(inside), int(_diverged(inside).sum())
    low, high = stats.wilson_interval(diverged, n)
    return Measurement(f"inside {ranges}: {diverged}/{n} diverged (95 % CI {low:.0%}–{high:.0%}) within "
                       f"{_span(inside)}", describe(inside),
                       [Part("divergence rate", diverged / n, 0.0, "at most", rises=True)])


def _stable_runs(evidence: Evidence, runs: list[pd.DataFrame]) -> pd.DataFrame:
    """The stable-weighting runs among the arm's runs, or among every run when the row names no arm (a row true
    by construction is judged from the code; the runs are what was observed)."""
    pool = runs[0] if runs else evidence.judged()
    return pool[tables.setting(pool, "weighting.name") == "stable"]


def _weight_change(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The new weight's largest change per adjustment. The controller clips every adjustment in the code, so only
    a rollback can exceed it: without one the row is true by construction."""
    stable = _stable_runs(evidence, runs)
    summary = tables.strategy_summary(tables.weight_summary(stable, evidence.history), "stable") if len(stable) else None
    rollbacks = evidence.history_of(stable)
    fired = int((rollbacks[rollbacks["metric"] == record.WEIGHTING_ROLLBACKS].groupby("run_id")["value"].last() > 0).sum())
    clip = 100 * StableSettings().max_change_percent
    if summary is None or not summary["runs that moved"]:
        return Measurement(f"the weight never moved in {len(stable)} runs; the code clips every adjustment to "
                           f"±{clip:g} %", describe(stable) if len(stable) else "the controller's clip",
                           [Part("clip in the code %", clip, claim.claimed)])
    largest = float(summary["largest change per adjustment %"])
    return Measurement(f"largest change per adjustment {largest:.2f} % over {summary['runs']} runs "
                       f"({summary['runs that moved']} moved, {fired} rolled back); the code clips to ±{clip:g} %",
                       describe(stable), [Part("largest change %", largest, claim.claimed)])


def _schedule(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    stable = _stable_runs(evidence, runs)
    changes = {k: v for k, v in _adjusting(evidence, stable).items() if v}
    if not changes:
        return Measurement(missing=f"the controller never adjusted the weight in {len(stable)} runs",
                           evidence=describe(stable))
    first = min(v[0] for v in changes.values())
    gaps = [b - a for v in changes.values() for a, b in itertools.pairwise(v)]
    printed = claim.parts()
    parts = [Part("first adjustment step", first, printed["warmup"], "above")]
    if gaps:
        parts.append(Part("closest two adjustments", min(gaps), printed["cooling"], "at least"))
    return Measurement(f"{sum(map(len, changes.values()))} adjustments in {len(changes)}/{len(stable)} runs; first at "
                       f"step {first}, closest two {min(gaps) if gaps else '—'} steps apart", describe(stable), parts)


def _weight_bands(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The new weight's median over seeds per epoch inside each printed band (claimed: {(first, last): band})."""
    arm = runs[0]
    trained = tables.horizon_epochs(arm)
    wide = tables.epoch_values(arm, evidence.history, record.WEIGHT_MEL)
    median = wide.median(axis=1) if len(wide) else pd.Series(dtype=float)
    parts, texts = [], []
    for (start, end), band in claim.parts().items():
        reached = math.isfinite(trained) and trained >= end
        part = median.loc[start:end] if reached else pd.Series(dtype=float)
        for label, value in ((f"epochs {start}–{end} low", part.min()), (f"epochs {start}–{end} high", part.max())):
            parts.append(Part(label, float(value) if len(part) else math.nan, band, "range", reached=reached))
        texts.append(f"epochs {start}–{end}: " + (f"{part.min():.3g}–{part.max():.3g}" if len(part) else "not trained"))
    return Measurement("; ".join(texts), describe(arm), parts, trained=trained)


def _rollback(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    stable = _stable_runs(evidence, runs)
    history = evidence.history_of(stable)
    last = history[history["metric"] == record.WEIGHTING_ROLLBACKS].groupby("run_id")["value"].last()
    rolled = last[last > 0]
    if rolled.empty:
        return Measurement(missing=f"no rollback was triggered in {len(stable)} runs", evidence=describe(stable))
    outcome = dict(zip(stable["run_id"], tables.tag(stable, record.OUTCOME).astype(str)))
    recovered = sum(outcome.get(run_id) == record.STABLE for run_id in rolled.index)
    return Measurement(f"{int(rolled.sum())} rollbacks in {len(rolled)} runs; {recovered}/{len(rolled)} ended stable",
                       describe(stable), [Part("runs that recovered", recovered / len(rolled), 1.0, "at least")])


def _spike(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The design note's spike trained for real (fault=spike), one system's runs (option system)."""
    role = claim.option("role")
    facts = evidence.spikes
    mine = facts[facts["role"] == role] if facts is not None and len(facts) and "role" in facts else pd.DataFrame()
    if mine.empty:
        return Measurement(missing=f"no {role} run with only the spike fault overridden "
                                   f"(python -m runner -m sweep=spike_recovery)")
    n, nan_next, recovered = len(mine), int(mine["nan next step"].sum()), int(mine["recovered"].sum())
    moved = float(mine["largest weight change %"].max())
    text = (f"spike at step {', '.join(f'{s:g}' for s in sorted(set(mine['spike step'])))}: non-finite on the next "
            f"step in {nan_next}/{n}, recovered in {recovered}/{n}; largest mel-weight change around the spike "
            f"{moved:.3g} %")
    pool = evidence.stress if evidence.stress is not None else evidence.runs
    described = describe(pool[pool["run_id"].isin(mine["run_id"])])
    old = role == "control"
    if old and not moved > 0:
        return Measurement(text, described, idle=f"{OLD_WEIGHT} never moved at the spike")
    value = nan_next / n if old else recovered / n
    return Measurement(text, described, [Part("non-finite next step" if old else "recovered", value, claim.claimed)])


def _replay(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The design note's printed weights against the implemented formula on its printed loss trace."""
    scenario, column = claim.option("scenario"), claim.option("column")
    replay = evidence.replay
    if not replay or scenario not in replay.get("scenarios", {}):
        return Measurement(missing="no replay results (python -m analysis.replay writes reports/replay/)")
    data = replay["scenarios"][scenario]
    printed = data["printed"][column]
    strategy = "legacy_tanh" if column.startswith("old") else "stable"
    computed = data["strategies"][strategy]["weight"]
    misses = []
    for step, value in sorted((int(k), v) for k, v in printed.items()):
        got = computed[step]
        same = (not math.isfinite(got)) if value is None or not math.isfinite(value) else abs(got - value) <= 0.1
        if not same:
            misses.append(f"step {step}: printed {'NaN' if value is None else value}, computed {got:.3g}")
    text = f"{len(printed) - len(misses)}/{len(printed)} printed weights reproduced" + (
        f"; {'; '.join(misses[:3])}" + (" …" if len(misses) > 3 else "") if misses else "")
    return Measurement(text, f"the printed loss trace through the {strategy} formula, base weight "
                             f"{replay.get('base_weight', '?')}",
                       [Part("weights reproduced", (len(printed) - len(misses)) / len(printed), 1.0, "at least")])


def _safety_checks(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    named = (evidence.replay or {}).get("safety_checks")
    if not named:
        return Measurement(missing="no replay results (python -m analysis.replay writes reports/replay/)")
    stable = _stable_runs(evidence, runs)
    codes = evidence.history_of(stable)
    codes = codes[codes["metric"] == record.WEIGHTING_DECISION]["value"]
    seen = {DECISIONS[int(c)] for c in codes.dropna().unique() if 0 <= int(c) < len(DECISIONS)}
    fired = [d for d in CHECK_DECISIONS if d in seen]
    return Measurement(f"{len(named)} checks in the code: {', '.join(named)}; in {len(stable)} stable-weighting runs "
                       f"{len(fired)} of its {len(CHECK_DECISIONS)} blocking decisions fired"
                       + (f" ({', '.join(fired)})" if fired else ""),
                       "the checks the stable weighting runs on every step, listed by the replay",
                       [Part("checks", len(named), claim.claimed, "at least")])


def _benchmark(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    bench = evidence.benchmark
    if not bench:
        return Measurement(missing="no step-time benchmark (make bench writes reports/bench/step_time.json)")
    overhead = float(bench["overhead_percent"])
    rounds = [float(v) for v in bench.get("overhead_percent_per_round", [])]
    low, high = (float(np.percentile(rounds, 25)), float(np.percentile(rounds, 75))) if rounds else (overhead, overhead)
    text = (f"stable strategy + guards vs static weights: median {overhead:+.1f} % step time, per-round interquartile "
            f"range {low:+.1f} to {high:+.1f} %")
    where = f"benchmarks.step_time on {bench.get('device', '?')}, xla={bench.get('xla')}"
    if high - low > claim.option("noise", 2.0):
        return Measurement(text, where, missing=f"{text}; the timing noise here exceeds the claimed difference")
    return Measurement(text, where, [Part("overhead %", overhead, claim.claimed)])


def _wall_time(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    every = evidence.judged()
    seconds = tables.numeric(tables.tag(every, record.TRAIN_SECONDS))
    epochs = tables.number(every, "trainer.steps") / tables.numeric(tables.tag(every, record.STEPS_PER_EPOCH))
    per_epoch = (seconds / epochs).dropna()
    return Measurement(f"here: median {per_epoch.median():.2f} s of training per epoch of the subset"
                       if len(per_epoch) else "no timed runs", describe(every))


def _weight_rise(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The old weight over an epoch span (claimed: its ratio end/start), median over seeds."""
    arm = runs[0]
    start, end = claim.option("epochs")
    trained = tables.horizon_epochs(arm)
    wide = tables.epoch_values(arm, evidence.history, record.WEIGHT_MEL)
    reached = math.isfinite(trained) and trained >= end and len(wide) and {start, end} <= set(wide.index)
    ratio = float(wide.loc[end].median() / wide.loc[start].median()) if reached else math.nan
    return Measurement(f"old weight epoch {end} / epoch {start}: " + (f"{ratio:.3g}" if reached else
                                                                      f"runs stop after {_span(arm)}"),
                       describe(arm), [Part("weight rise", ratio, claim.claimed, reached=bool(reached))],
                       trained=trained)


def _settings_differ(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """A claim that a factor caused a difference: the arms must differ in that factor and in nothing else."""
    factors = claim.option("factors")
    differ = _varied(runs)
    text = f"the arms differ in {', '.join(differ) or 'nothing'}"
    confounded = _confounded(differ, factors, "the arms")
    if confounded:
        return Measurement(evidence=describe(pd.concat(runs)), missing=confounded)
    a, b = runs   # the factor alone differs: the first arm is claimed to fail more often
    return Measurement(text, describe(pd.concat(runs)),
                       groups=Groups(_failure_steps(a), len(a), _failure_steps(b), len(b), a_name=f"the {claim.arms[0]}"))


def _varied(groups: list[pd.DataFrame]) -> list[str]:
    """The settings (dotted keys; seeds aside) whose values differ between the groups of runs."""
    values = []
    for group in groups:
        found: dict[str, set[str]] = {}
        for config in group.get("config", pd.Series(dtype=object)):
            for key, value in (_flatten(dataclasses.asdict(config)) if config is not None else {}).items():
                found.setdefault(key, set()).add(str(value))
        values.append(found)
    keys = sorted(set().union(*values))
    return [k for k in keys if not k.endswith("seed") and len({frozenset(v.get(k, ())) for v in values}) > 1]


def _confounded(differ: list[str], factors: tuple[str, ...], who: str) -> str:
    """Why runs differing in `differ` cannot show an effect of `factors` ("" when they differ in those alone): a claim
    about a factor needs runs that differ in that factor and in nothing else."""
    is_factor = [any(k == f or k.startswith(f + ".") for f in factors) for k in differ]
    others = [k for k, factor in zip(differ, is_factor) if not factor]
    if not any(is_factor):
        return f"{who} do not differ in {', '.join(factors)}: no run varies the factor"
    if others:
        return (f"{who} differ in {', '.join(others[:6])}{' …' if len(others) > 6 else ''} besides "
                f"{', '.join(factors)}: no run isolates the factor")
    return ""


def _flatten(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --- arithmetic: the documents' own numbers and the formulas they describe ----------------------------

def _old_factor(ratio: float) -> float:
    return 0.5 + 0.5 * math.tanh(ratio - 1.0)


def _formula_old_step() -> tuple[str, list[Part]]:
    s = LegacyTanhSettings()
    rise, fall = s.largest_step_changes()
    return (f"factor 0.5 + 0.5·tanh(ratio − 1) clipped to [{s.tanh_factor_min:g}, {s.tanh_factor_max:g}]: the weight "
            f"lies in [{s.tanh_factor_min:g}, {min(s.tanh_factor_max, 1.0):g}] x base, so one step changes it by at most "
            f"+{rise:.0%} / −{fall:.0%}, and only from step {s.first_step_off_floor()}",
            [Part("largest rise %", round(100 * rise, 9), None, "range"),
             Part("largest fall %", round(100 * fall, 9), None, "range")])


def _formula_conservative() -> tuple[str, list[Part]]:
    s = LegacyTanhSettings()
    old, new = max(s.largest_step_changes()), StableSettings().max_change_percent
    return (f"largest possible change per step: old {old:.0%} (the tanh factor's bounds), new {new:.0%} (its clip) → "
            f"{old / new:.2f}x", [Part("ratio", old / new, None)])


def _formula_factor_example() -> tuple[str, list[Part]]:
    s = LegacyTanhSettings()
    factor = _old_factor(1.04)
    clipped = min(max(factor, s.tanh_factor_min), s.tanh_factor_max)
    weight = min(max(2.5 * clipped, 1.0), 5.0)
    change = abs(weight / 2.5 - 1)
    return (f"0.5 + 0.5·tanh(0.04) = {factor:.3f}, clipped to [{s.tanh_factor_min:g}, {s.tanh_factor_max:g}] → "
            f"{clipped:g}: the weight 2.5 x {clipped:g} = {weight:g} changes by {change:.0%}",
            [Part("factor", factor, None, "near"), Part("weight change", change, None, "near")])


def _formula_factor_range() -> tuple[str, list[Part]]:
    highs = [LegacyTanhSettings(tanh_factor_min=low, tanh_factor_max=high).factor_range()[1]
             for low, high in ((0.8, 1.2), (0.7, 1.3))]
    return ("0.5 + 0.5·tanh(·) lies in (0, 1): the largest reachable factor under clip [0.8, 1.2] is "
            f"{highs[0]:g}, under [0.7, 1.3] {highs[1]:g}", [Part("largest factor", max(highs), None, "near")])


def _formula_dampening() -> tuple[str, list[Part]]:
    threshold = GuardSettings().spike_threshold
    dampened = 100.0 * threshold / (100.0 / 2.0)
    return (f"the dampener scales a spike by threshold / ratio: 100 x {threshold:g} / 50 = {dampened:g}, weighted "
            f"2.5 x {dampened:g} = {2.5 * dampened:g}",
            [Part("dampened loss", dampened, None, "near"), Part("weighted", 2.5 * dampened, None, "near")])


def _formula_feedback() -> tuple[str, list[Part]]:
    falling = _old_factor(0.9) - _old_factor(1.0)
    return (f"the factor rises with ratio = loss / running mean: a falling loss (ratio 0.9) changes it by "
            f"{falling:+.3f}: the weight does not rise (on the floor it stays there)",
            [Part("factor change on a falling loss", falling, None, "above")])


def _formula_reduction() -> tuple[str, list[Part]]:
    value = 100 * (1 - 2.3795 / 9.103)
    return f"1 − 2.3795 / 9.103 = {value:.1f} %", [Part("reduction %", value, None, "near")]


def _formula_raw_mel() -> tuple[str, list[Part]]:
    return (f"35 × 8.09 = {35 * 8.09:.2f}, 2.5 × 8.09 = {2.5 * 8.09:.3f} (printed 283.15 and 20.23)",
            [Part("35 x 8.09", 35 * 8.09, None, "near"), Part("2.5 x 8.09", 2.5 * 8.09, None, "near")])


def _formula_gates() -> tuple[str, list[Part]]:
    s = StableSettings()
    return (f"the controller's settings: min_stable_steps = {s.min_stable_steps}, variance_threshold = "
            f"{s.variance_threshold:g}, gradient_norm_threshold = {s.gradient_norm_threshold:g}",
            [Part("stable steps", s.min_stable_steps, None, "near"), Part("variance", s.variance_threshold, None, "near")])


def _formula_gradient_aware() -> tuple[str, list[Part]]:
    s = StableSettings()
    return (f"the controller reduces or holds the weight when the gradient norm exceeds {s.gradient_norm_threshold:g} "
            f"or grows {s.gradient_growth_factor:g}x (decisions: {', '.join(DECISIONS)})",
            [Part("gradient thresholds in the code", int(s.gradient_norm_threshold > 0 and s.gradient_growth_factor > 1),
                  None, "at least")])


FORMULAS: dict[str, Callable[[], tuple[str, list[Part]]]] = {
    "old step": _formula_old_step, "conservative": _formula_conservative, "factor example": _formula_factor_example,
    "factor range": _formula_factor_range, "dampening": _formula_dampening, "feedback": _formula_feedback,
    "reduction": _formula_reduction, "raw mel": _formula_raw_mel, "gates": _formula_gates,
    "gradient aware": _formula_gradient_aware,
}


def _formula(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    """The formula's values against the printed ones, which the row holds (one per part, or one for all)."""
    text, parts = FORMULAS[claim.option("formula")]()
    printed = claim.parts()
    for part in parts:
        part.claimed = printed[part.label] if printed else claim.claimed
    return Measurement(text, "the formula and numbers as documented, with the lab's settings where it has them", parts)


# name: (function, rule text template; {arms} and the row's options fill it)
MEASURES: dict[str, tuple[Callable[[Evidence, Claim, list[pd.DataFrame]], Measurement], str]] = {
    "divergence rate": (_failure_rate, "divergence rate of {arms}"),
    "failure epoch": (_failure_epoch, "median epoch of the first non-finite loss of {arms}"),
    "two groups": (_rate_groups, "failures of {arms}, one-sided Fisher exact test with its power"),
    "epoch values": (_epoch_values, "{metric} per epoch, median over seeds, {arms}"),
    "ratio": (_ratio, "epoch-1 {metric}, {arms}"),
    "recomputed ratio": (_ratio, "epoch-1 {metric}, {arms}, the first arm's total recomputed at mel weight "
                                 "{mel_weight} from its own raw terms (no run trains at that weight)"),
    "first validation": (_first_validation_value, "{metric} at the first validation, median over seeds, {arms}"),
    "epoch gain": (_epoch_gain, "(first − second) / first of the epoch-1 {metric}, median over seeds, {arms}"),
    "best validation": (_best_validation_difference, "best validation postnet mel L1, {arms}, bootstrap interval"),
    "largest loss": (_largest_loss, "largest loss after epoch 1, median over seeds, {arms}"),
    "convergence": (_convergence, "epochs to a common mel L1 target, {arms}"),
    "first raw mel": (_first_mel, "epoch-1 raw mel L1 of {arms}"),
    "advice": (_advice, "runs outside {limits} against runs inside: {failure} rate (the two must differ in the advised "
                        "setting alone)"),
    "inside rate": (_inside_rate, "divergence rate of runs inside {limits} (≥ 10 of them)"),
    "weight change": (_weight_change, "the code's clip on each adjustment; the largest observed change of the new "
                                      "weight per adjustment where it moved"),
    "schedule": (_schedule, "first adjustment after the warmup, adjustments ≥ the cooling period apart, in the "
                            "stable-weighting runs"),
    "weight bands": (_weight_bands, "median new weight per epoch in each band, {arms}"),
    "rollback": (_rollback, "{arms} runs whose controller rolled back a weight must end stable"),
    "spike": (_spike, "{role} runs whose only override is the spike fault"),
    "replay": (_replay, "printed weights against the implemented formula on the printed trace (±0.1)"),
    "safety checks": (_safety_checks, "count of the checks in the controller's code"),
    "benchmark": (_benchmark, "benchmarks.step_time, interleaved rounds; not testable when the rounds spread "
                              "> {noise} %"),
    "wall time": (_wall_time, "training time per epoch"),
    "weight rise": (_weight_rise, "the old weight's rise over epochs {epochs}, {arms}"),
    "factor isolated": (_settings_differ, "{arms} must differ in {factors} alone"),
    "formula": (_formula, "the {formula} formula recomputed (with the lab's settings where it has them)"),
}

# Measures that read runs; the others (formula, replay, benchmark) need none.
RUNLESS = ("formula", "replay", "safety checks", "benchmark", "spike", "wall time", "weight change", "schedule",
           "rollback")


def _c(id, text, sources, kind, measure, **fields) -> Claim:
    options = fields.pop("options", {})
    return Claim(id, text, tuple(sources), kind, measure, options=tuple(options.items()), **fields)


OLD_RUN = {"arms": ("control",), "setting": FLOAT32}
WEIGHT_FIX = {"arms": ("before_fix", "after_fix"), "setting": LOG_FEATURES}
TEST_ARMS = {"arms": ("control", "baseline"), "setting": FLOAT32}   # `basic` has no float16 counterpart
SAFE_RANGES = (Limit("loss.mel_loss_weight", "mel weight", 1.0, 5.0), Limit("loss.kl_loss_weight", "kl weight", 0.5, 2.0),
               Limit("optim.clip_norm", "gradient clip", 0.3, 1.0))

CLAIMS: tuple[Claim, ...] = (
    # design note on the stable adaptive weight
    _c("worked-1-old", "Worked example 1: the old weight climbs from 2.5 to 5.0 and the loss is NaN by step 400.",
       ["design"], ARITHMETIC, "replay", options={"scenario": "decreasing_then_spike", "column": "old (printed)"}),
    _c("worked-1-new", "Worked example 1: the new weight stays between 2.2 and 2.5 and never fails.", ["design"],
       ARITHMETIC, "replay", options={"scenario": "decreasing_then_spike", "column": "new (printed)"}),
    _c("worked-2-old", "Worked example 2: after a spike at step 101 the old weight is NaN at step 102.", ["design"],
       ARITHMETIC, "replay", options={"scenario": "plateau_spike_recovery", "column": "old (printed)"}),
    _c("worked-2-new", "Worked example 2: the new weight holds 2.5 through the spike and adapts later.", ["design"],
       ARITHMETIC, "replay", options={"scenario": "plateau_spike_recovery", "column": "new (printed)"}),
    _c("worked-2-old-run", "Worked example 2 in training: after a loss spike the old system's loss is NaN on the "
       "next step.", ["design"], MEASURED, "spike", claimed=1.0, compare="at least", options={"role": "control"},
       mechanism=(OLD_WEIGHT,), report="spike_recovery"),
    _c("worked-2-new-run", "Worked example 2 in training: the new system recovers from the same spike.", ["design"],
       MEASURED, "spike", claimed=1.0, compare="at least", options={"role": "treatment"}, report="spike_recovery"),
    _c("max-change-5", "The new system changes the mel weight by at most ±5 % per adjustment.",
       ["design", "summary", "pr"], BY_CONSTRUCTION, "weight change", claimed=5.0, compare="at most", tolerance=1e-4),
    _c("old-change-30", "The old system changes the weight by ±20–30 % per step.", ["design", "pr"], ARITHMETIC,
       "formula", claimed={"largest rise %": (20, 30), "largest fall %": (20, 30)}, compare="range",
       options={"formula": "old step"}),
    _c("six-x", "The new system is 6x more conservative (5 % vs 30 % per change).", ["design", "pr"], ARITHMETIC,
       "formula", claimed=6.0, compare="at least", options={"formula": "conservative"}),
    _c("old-nan-epoch", "The old system's loss turns NaN at about epoch 51.", ["design", "pr"], MEASURED,
       "failure epoch", claimed=51.0, tolerance=0.5, horizon=51.0, about=True, mechanism=(OLD_WEIGHT,), **OLD_RUN),
    _c("failure-story", "Old system, epochs 11–50: the weight rises aggressively, the gradients explode, NaN at 51.",
       ["design"], MEASURED, "weight rise", claimed=1.0, compare="above", horizon=50.0, mechanism=(OLD_WEIGHT,),
       options={"epochs": (10, 50)}, **OLD_RUN),
    _c("new-1000", "The new system completes 1000 epochs without NaN.", ["design", "pr"], MEASURED, "divergence rate",
       claimed=0.0, compare="at most", horizon=1000.0, arms=("treatment",), setting=FLOAT32),
    _c("wall-time", "The old system fails after ~2 h; the new one trains 1000 epochs in ~40 h.", ["design"], MEASURED,
       "wall time", comparable=False, not_comparable_because=OTHER_HARDWARE),
    _c("factor-52", "A loss ratio of 1.04 gives a factor of 0.52 and changes the weight by 52 %.", ["design"],
       ARITHMETIC, "formula", claimed={"factor": 0.52, "weight change": 0.52}, tolerance=0.005, compare="near",
       options={"formula": "factor example"}),
    _c("factor-range", "The old adaptation factor can range 0.7–1.3.", ["design"], ARITHMETIC, "formula",
       claimed={"largest factor": 1.3}, tolerance=0.005, compare="near", options={"formula": "factor range"}),
    _c("dampening-4-10", "Worked example 2: the spike of 100 is dampened to 4.0, a weighted loss of 10.0.", ["design"],
       ARITHMETIC, "formula", claimed={"dampened loss": 4.0, "weighted": 10.0}, tolerance=0.005, compare="near",
       options={"formula": "dampening"}),
    _c("schedule-100-50", "The new system waits 100 warmup steps and 50 cooling steps between changes.",
       ["design", "pr"], BY_CONSTRUCTION, "schedule", claimed={"warmup": 100, "cooling": 50}),
    _c("gates", "The new system changes the weight only after 10 stable steps and below a loss variance of 0.5.",
       ["summary", "pr"], BY_CONSTRUCTION, "formula", claimed={"stable steps": 10, "variance": 0.5}, tolerance=1e-9,
       compare="near", options={"formula": "gates"}),
    _c("gradient-aware", "The new system makes gradient-aware decisions (it lowers the weight when gradients grow).",
       ["summary", "pr"], BY_CONSTRUCTION, "formula", claimed=1, compare="at least",
       options={"formula": "gradient aware"}),
    _c("bands", "New weight 2.3–2.5 over epochs 201–400, then 2.2–2.4 over 401–600.", ["design"], MEASURED,
       "weight bands", claimed={(201, 400): (2.3, 2.5), (401, 600): (2.2, 2.4)}, compare="range", tolerance=0.02,
       horizon=600.0, arms=("treatment",), mechanism=(NEW_CONTROLLER,)),
    # fix summary
    _c("feedback", "The old system's feedback loop: the loss falls, so the weight rises.", ["summary", "pr"],
       ARITHMETIC, "formula", claimed={"factor change on a falling loss": 0.0}, options={"formula": "feedback"},
       compare="above"),
    _c("better-not-worse", "With the new system the model gets better, not worse.", ["summary"], MEASURED,
       "best validation", compare="interval below 0", arms=("treatment", "control"), setting=FLOAT32,
       mechanism=(NEW_CONTROLLER,)),
    _c("rollback", "The new system returns to a safe weight by itself when an adjustment goes wrong.",
       ["summary", "pr"], MEASURED, "rollback"),
    # pull request
    _c("old-fails", "Old system: 0 of 10 runs succeed (all end in NaN).", ["pr"], MEASURED, "divergence rate",
       claimed=1.0, compare="at least", horizon=51.0, about=True, mechanism=(OLD_WEIGHT,), **OLD_RUN),
    _c("new-succeeds", "The new system is expected to succeed in all 10 of 10 runs where the old one fails "
       "(prevention).",
       ["design", "pr"], MEASURED, "two groups", compare="higher rate", arms=("control", "treatment"),
       options={"after_both_act": True}, report="positive_control"),
    _c("safety-8", "The new system has 8+ safety checks.", ["pr"], BY_CONSTRUCTION, "safety checks", claimed=8,
       compare="at least"),
    _c("overhead-0.1", "The new system's safety checks cost ~0.1 % of training time.", ["pr"], MEASURED, "benchmark",
       claimed=0.1, compare="near", tolerance=0.5, options={"noise": 0.5}),
    # 30-utterance test report
    _c("epoch1-enhanced", "Enhanced, epoch 1: loss 9.10, mel 0.69, stop 7.60.", ["test"], MEASURED, "epoch values",
       claimed={1: 9.103}, tolerance=0.25, arms=("control",), setting=FLOAT32, comparable=False,
       options={"metric": record.LOSS_UNDAMPED}),
    _c("epoch1-basic", "Basic, epoch 1: loss 2.38, mel 0.65, stop 1.40.", ["test"], MEASURED, "epoch values",
       claimed={1: 2.3795}, tolerance=0.25, arms=("baseline",), comparable=False,
       options={"metric": record.LOSS_UNDAMPED}),
    _c("validation-basic", "Basic, validation: loss 2.93, mel 0.693, stop 2.24.", ["test"], MEASURED,
       "first validation", claimed=2.929, tolerance=0.25, arms=("baseline",), comparable=False,
       options={"metric": record.VAL_TOTAL}),
    _c("epoch2-enhanced", "Enhanced, epoch 2: loss 3.97, mel 0.70, stop 2.46.", ["test"], MEASURED, "epoch values",
       claimed={2: 3.970}, tolerance=0.25, arms=("control",), setting=FLOAT32, comparable=False,
       options={"metric": record.LOSS_UNDAMPED}),
    _c("basic-3.8x", "Basic starts with a 3.8x lower loss than enhanced.", ["test"], MEASURED, "ratio", claimed=3.8,
       tolerance=0.25, options={"metric": record.LOSS_UNDAMPED}, **TEST_ARMS),
    _c("stop-5.4x", "Basic's stop loss is 5.4x lower than enhanced's.", ["test"], MEASURED, "ratio", claimed=5.4,
       tolerance=0.25, options={"metric": record.raw("stop")}, **TEST_ARMS),
    _c("mel-6pct", "Basic's mel loss is 6 % better than enhanced's.", ["test"], MEASURED, "epoch gain",
       claimed=0.06, tolerance=0.5, options={"metric": record.raw("mel")}, **TEST_ARMS),
    _c("reduction-73", "Basic's epoch-1 loss 2.38 instead of 9.10 is a 73 % reduction.", ["test"], ARITHMETIC,
       "formula", claimed={"reduction %": 73.0}, compare="near", tolerance=1.0, options={"formula": "reduction"}),
    _c("lr-clip", "Enhanced's lr 8e-5 and clip 0.8 make the gradients explode; basic's 1e-5 and 0.5 do not.",
       ["test"], MEASURED, "factor isolated", compare="higher rate", options={"factors": ("optim.lr", "optim.clip_norm")},
       **TEST_ARMS),
    _c("blame-features", "Label smoothing, the Huber loss and the adaptive features make enhanced unstable.", ["test"],
       MEASURED, "factor isolated", options={"factors": ("loss.label_smoothing", "loss.huber", "weighting")},
       **TEST_ARMS),
    _c("limit-lr", "Never train above lr 2e-5.", ["test"], ADVICE, "advice", compare="higher rate",
       arms=("control", "baseline"), setting=FLOAT32,
       options={"limits": (Limit("optim.lr", "lr", high=2e-5),), "failure": "diverged"}),
    _c("limit-mel-1.5", "Keep the mel weight at or below 1.5.", ["test"], ADVICE, "advice", compare="higher rate",
       arms=("control", "baseline"), setting=FLOAT32,
       options={"limits": (Limit("loss.mel_loss_weight", "mel weight", high=1.5),), "failure": "diverged"}),
    _c("limit-batch", "Keep the batch size small (8–16).", ["test"], ADVICE, "advice", compare="higher rate",
       arms=("control", "baseline"), setting=FLOAT32,
       options={"limits": (Limit("trainer.batch_size", "batch size", 8, 16),), "failure": "diverged"}),
    _c("basic-stable", "Basic trains without NaN.", ["test"], MEASURED, "divergence rate", claimed=0.0,
       compare="at most", arms=("baseline",)),
    _c("basic-better", "Basic is the better configuration (lower loss, better training).", ["test"], MEASURED,
       "best validation", compare="interval below 0", arms=("baseline", "control"), setting=FLOAT32),
    # three-digit-loss note
    _c("three-digit", "Mel weight 35 gives a three-digit loss; 2.5 gives one or two digits.", ["weights"], MEASURED,
       "epoch values", claimed={0: {1: ("at least", 100.0)}, 1: {1: ("below", 100.0)}}, comparable=False,
       options={"metric": record.LOSS_UNDAMPED}, **WEIGHT_FIX),
    _c("starts", "Before the fix the loss starts at 200–500; after it, at 10–30.", ["weights"], MEASURED,
       "epoch values", claimed={0: {1: ("range", (200.0, 500.0))}, 1: {1: ("range", (10.0, 30.0))}}, comparable=False,
       options={"metric": record.LOSS_UNDAMPED}, **WEIGHT_FIX),
    _c("loss-bands", "Loss bands after / before the fix: early 15–30 / 200–500, mid 5–15 / 100–200, late 2–8 / "
       "50–100, converged 0.5–3 / 20–50.", ["weights"], MEASURED, "epoch values",
       claimed={0: {1: ("range", (200.0, 500.0))}, 1: {1: ("range", (15.0, 30.0))}}, comparable=False,
       options={"metric": record.LOSS_UNDAMPED}, **WEIGHT_FIX),
    _c("fix-14x", "Mel weight 35 → 2.5 gives a 14x lower loss.", ["weights"], MEASURED, "ratio", claimed=14.0,
       tolerance=0.25, options={"metric": record.LOSS_UNDAMPED}, **WEIGHT_FIX),
    _c("fix-18x", "Mel weight 45 → 2.5 gives an 18x lower loss.", ["weights"], MEASURED, "recomputed ratio",
       claimed=18.0,
       tolerance=0.25, options={"metric": record.LOSS_UNDAMPED, "mel_weight": 45.0}, **WEIGHT_FIX),
    _c("progression-before", "Before the fix: loss 283 at epoch 1, 246 at epoch 10, 198 at epoch 50, 168 at epoch 100.",
       ["weights"], MEASURED, "epoch values", claimed={0: {1: 283.28, 10: 245.67, 50: 198.34, 100: 167.89}},
       tolerance=0.25, comparable=False, options={"metric": record.LOSS_UNDAMPED}, **WEIGHT_FIX),
    _c("progression-after", "After the fix: loss 19.9 at epoch 1, 12.5 at epoch 10, 4.23 at epoch 50, 1.89 at epoch 100.",
       ["weights"], MEASURED, "epoch values", claimed={1: {1: 19.88, 10: 12.45, 50: 4.23, 100: 1.89}},
       tolerance=0.25, comparable=False, options={"metric": record.LOSS_UNDAMPED}, **WEIGHT_FIX),
    _c("raw-mel-8.09", "A moderate error is a raw mel loss of 8.09: 283 at mel weight 35, 20.2 at 2.5.", ["weights"],
       ARITHMETIC, "formula", claimed={"35 x 8.09": 283.15, "2.5 x 8.09": 20.23}, compare="near", tolerance=0.01,
       options={"formula": "raw mel"}),
    _c("raw-mel-measured", "The before preset's raw mel loss is about 8.09.", ["weights"], MEASURED, "first raw mel",
       claimed=8.09, tolerance=0.25, comparable=False, arms=("before_fix",), setting=LOG_FEATURES),
    _c("loss-clip-10", "Clipping the total loss at 10 instead of 100 protects training.", ["weights"], MEASURED,
       "factor isolated", options={"factors": ("loss.total_loss_clip",)}, **WEIGHT_FIX),
    _c("safe-ranges", "Safe: mel weight 1–5, kl weight 0.5–2, gradient clip 0.3–1.", ["weights"], ADVICE,
       "inside rate", options={"limits": SAFE_RANGES}, arms=("control", "baseline", "treatment", "after_fix"),
       setting=FLOAT32),
    _c("clip-2-spikes", "Dangerous: a gradient clip above 2 may allow loss spikes.", ["weights"], ADVICE, "advice",
       compare="higher rate", arms=("control", "baseline", "treatment", "before_fix", "after_fix"), setting=FLOAT32,
       options={"limits": (Limit("optim.clip_norm", "gradient clip", high=2.0),), "failure": record.SPIKY}),
    _c("faster-2-3x", "After the fix training converges 2–3x faster.", ["weights"], MEASURED, "convergence",
       claimed=(2.0, 3.0), compare="range", tolerance=0.25, **WEIGHT_FIX),
    _c("spikes", "Loss spikes reach 1000+ before the fix and stay around 50 after it.", ["weights"], MEASURED,
       "largest loss", claimed={0: ("at least", 1000.0), 1: ("at most", 100.0)}, comparable=False, **WEIGHT_FIX),
)


# --- judging ----------------------------------------------------------------------------------------------

def _arm_runs(evidence: Evidence, claim: Claim) -> tuple[list[list[pd.DataFrame]], str]:
    """The runs of each arm, split into settings: the documents' own setting first (the evidence), then every
    other setting of the same roles (sensitivity lines). Empty with a reason when an arm has no runs."""
    per_arm = [evidence.arm(role) for role in claim.arms]
    if claim.measure in ("advice", "inside rate"):   # advice is about every run of the roles it names, pooled
        pooled = pd.concat(per_arm)
        for key, value in claim.setting:             # in the documents' own setting only
            pooled = pooled[tables.setting(pooled, key, "").map(str) == value]
        return ([[pooled]], "") if len(pooled) else ([], f"no finished runs in the roles {', '.join(claim.arms)}")
    missing = [role for role, runs in zip(claim.arms, per_arm) if runs.empty]
    if missing:
        return [], f"no finished runs in the role {' or '.join(missing)} in this experiment"
    if not claim.setting:
        return [per_arm], ""

    def matches(runs: pd.DataFrame) -> pd.Series:
        ok = pd.Series(True, index=runs.index)
        for key, value in claim.setting:
            ok &= tables.setting(runs, key, "").map(str) == value
        return ok

    own = [runs[matches(runs)] for runs in per_arm]
    other = [runs[~matches(runs)] for runs in per_arm]
    groups = []
    if all(len(r) for r in own):
        groups.append(own)
    if all(len(r) for r in other):
        groups.append(other)
    if not groups or not all(len(r) for r in own):
        if groups:   # only other settings ran: they are sensitivity lines, the claim is not testable here
            return [[], *groups], ""
        return [], "no runs of the arms in one setting"
    return groups, ""


def _measure(evidence: Evidence, claim: Claim, runs: list[pd.DataFrame]) -> Measurement:
    m = MEASURES[claim.measure][0](evidence, claim, runs)
    if claim.mechanism and runs and not m.idle and not m.missing:
        m.idle, m.idle_short = _idle(evidence, pd.concat(runs), claim.mechanism)
    return m


COLUMNS = ["id", "claim", "source", "kind", "rule", "evidence", "measured", "verdict"]


def _scoped(verdict: str, claim: Claim) -> str:
    return f"{verdict} {ON_PROXY}" if claim.kind in (MEASURED, ADVICE) and verdict in (HOLDS, FAILS) else verdict


def _row(claim: Claim, m: Measurement, verdict: str, reason: str = "") -> dict[str, str]:
    measured = m.text or ""
    if reason and reason not in measured:
        measured = f"{measured}; {reason}" if measured else reason
    return {"id": claim.id, "claim": claim.text, "source": "; ".join(DOCUMENTS[s] for s in claim.sources),
            "kind": claim.kind, "rule": claim.rule, "evidence": m.evidence or "—", "measured": measured,
            "verdict": verdict}


def judge(evidence: Evidence, claim: Claim) -> list[dict[str, str]]:
    """One verdict row for the claim (its evidence), plus sensitivity lines for its arms' other settings."""
    if claim.measure in RUNLESS and not claim.arms:
        m = _measure(evidence, claim, [])
        found = rules.judge(claim, m)
        return [_row(claim, m, _scoped(found.verdict, claim), found.reason)]
    groups, missing = _arm_runs(evidence, claim)
    if missing:
        m = Measurement(missing=missing)
        return [_row(claim, m, UNTESTABLE, missing)]
    rows = []
    own, *others = groups
    if own:
        m = _measure(evidence, claim, own)
        found = rules.judge(claim, m)
        rows.append(_row(claim, m, _scoped(found.verdict, claim), found.reason))
    else:
        rows.append(_row(claim, Measurement(), UNTESTABLE, "no runs in the documents' own setting ("
                         + ", ".join(f"{k} = {v}" for k, v in claim.setting) + ")"))
    for other in others:
        m = _measure(evidence, claim, other)
        rows.append(_row(claim, m, SENSITIVITY, rules.judge(claim, m).reason))
    return rows


def audit(evidence: Evidence, report: str | None = None) -> pd.DataFrame:
    """Every claim row: judged when `report` is its home (or None: every claim, for a single experiment's view),
    otherwise a pointer to the report that judges it."""
    rows: list[dict[str, str]] = []
    for claim in CLAIMS:
        if report is None or claim.report == report:
            rows.extend(judge(evidence, claim))
        else:
            rows.append({"id": claim.id, "claim": claim.text, "source": "; ".join(DOCUMENTS[s] for s in claim.sources),
                         "kind": claim.kind, "rule": claim.rule, "evidence": "—", "measured": "—",
                         "verdict": f"judged in reports/{claim.report}/"})
    return pd.DataFrame(rows, columns=COLUMNS)


def base_verdict(text: str) -> str:
    """The verdict without its scope ("holds on this proxy" -> "holds"); "" for lines that are not verdicts."""
    for verdict in VERDICTS:
        if text == verdict or text == f"{verdict} {ON_PROXY}":
            return verdict
    return ""


def verdict_counts(audited: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(kind, verdict) -> claims: measured holds counted apart from arithmetic and by-construction ones."""
    verdicts = audited["verdict"].map(base_verdict)
    judged = audited[verdicts != ""]
    counts: dict[tuple[str, str], int] = {}
    for kind in KINDS:
        for verdict in VERDICTS:
            n = int(((judged["kind"] == kind) & (verdicts[judged.index] == verdict)).sum())
            if n:
                counts[(kind, verdict)] = n
    return counts
