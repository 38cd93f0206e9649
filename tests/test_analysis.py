"""The report from a hand-built MLflow store with known values: every cell and verdict is predictable."""
import math

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from analysis import __main__ as cli
from analysis import claims, spike, tables
from analysis.load import UnknownExperiment, _histories_client, load_experiment
from analysis.report import _ablation_findings, build_report
from frames import with_configs
from myxtts import record

NAN, INF = float("nan"), float("inf")


ROLE_OF = {"enhanced": "control", "stable_adaptive": "treatment", "basic": "baseline",
           "stable_weight_only": "weighting_only", "legacy": "before_fix", "legacy_log": "before_fix",
           "legacy_fixed": "after_fix", "legacy_fixed_log": "after_fix"}


def _log(client, experiment, preset, seed, weighting, system, tags, series, status="FINISHED", steps=40):
    run = client.create_run(experiment, run_name=f"{preset}-s{seed}",
                            tags={"preset": preset, "role": ROLE_OF.get(preset, "arm"), "seed": str(seed), "system": system,
                                  "source": "test",
                                  "git_commit": "abc123", "git_dirty": "False", "tf_version": "2.21.0",
                                  "device": "CPU", "machine": "Linux x86_64, 2 CPUs", "train_seconds": "30",
                                  **{k: str(v) for k, v in tags.items()}})
    params = {"weighting.name": weighting, "trainer.steps": steps, "trainer.batch_size": 4, "optim.lr": 1e-4,
              "optim.lr_multiplier": 1.0, "loss.mel_loss_weight": 2.5}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    metrics = [Metric(key, float(v), 0, step) for key, values in series.items() for step, v in enumerate(values)]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status, end_time=1_800_000_000_000)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("known")
    # enhanced (old system): two seeds diverge, one survives.
    loss0 = [10.0] * 10 + [8.0, 8.0] + [NAN, NAN, NAN, INF] + [NAN] * 6      # 22 steps, first non-finite 12
    loss1 = [10.0] * 20 + [NAN] * 10                                         # 30 steps, first non-finite 20
    loss2 = [9.0] * 40
    old_weight = lambda n: [2.0 if i % 2 == 0 else 2.4 for i in range(n)]  # noqa: E731  (20 % steps)
    _log(client, experiment, "enhanced", 0, "legacy_tanh", "old",
         {"outcome": "diverged", "diverged_at_step": 21, "first_nonfinite_step": 12, "skipped_steps": 0,
          "dampened_steps": 0, "best_validation": ""},
         {"loss/undamped": loss0, "raw/stop": [5.0] * 22, "raw/mel": [1.0] * 22, "weight/mel": old_weight(22)})
    _log(client, experiment, "enhanced", 1, "legacy_tanh", "old",
         {"outcome": "diverged", "diverged_at_step": 29, "first_nonfinite_step": 20, "skipped_steps": 0,
          "dampened_steps": 0, "best_validation": ""},
         {"loss/undamped": loss1, "raw/stop": [5.0] * 30, "raw/mel": [1.0] * 30, "weight/mel": old_weight(30)})
    _log(client, experiment, "enhanced", 2, "legacy_tanh", "old",
         {"outcome": "stable", "diverged_at_step": "", "first_nonfinite_step": "", "skipped_steps": 0,
          "dampened_steps": 0, "best_validation": 0.9},
         {"loss/undamped": loss2, "raw/stop": [5.0] * 40, "raw/mel": [1.0] * 40, "weight/mel": old_weight(40)})
    # basic (new): all stable, 2.5 initial loss, stop 1.0.
    for seed, best in enumerate((0.5, 0.6, 0.7)):
        _log(client, experiment, "basic", seed, "none", "new",
             {"outcome": "stable", "diverged_at_step": "", "first_nonfinite_step": "", "skipped_steps": 0,
              "dampened_steps": 0, "best_validation": best},
             {"loss/undamped": [2.5] * 10 + [2.0] * 30, "raw/stop": [1.0] * 40, "raw/mel": [0.7] * 40,
              "weight/mel": [1.0] * 40})
    # stable_adaptive (new): -5 % at step 20, +5 % at step 30; one spike dampened, one step skipped.
    stable_weight = [2.5] * 20 + [2.375] * 10 + [2.375 * 1.05] * 10
    for seed in (0, 1):
        _log(client, experiment, "stable_adaptive", seed, "stable", "new",
             {"outcome": "stable", "diverged_at_step": "", "first_nonfinite_step": 7 if seed else "",
              "skipped_steps": seed, "dampened_steps": 1, "best_validation": 0.4},
             {"loss/undamped": [4.0] * 40, "raw/stop": [2.0] * 40, "raw/mel": [0.8] * 40, "weight/mel": stable_weight})
    # A run still running with no metrics, and a failed one.
    _log(client, experiment, "dwa", 0, "dwa", "baseline", {}, {}, status="RUNNING")
    _log(client, experiment, "gradnorm", 0, "gradnorm", "baseline", {"outcome": "failed"}, {}, status="FAILED")
    return uri, root


@pytest.fixture(scope="module")
def data(store):
    return load_experiment("known", store[0])


def _row(frame, preset):
    return frame[frame["preset"] == preset].iloc[0]


def test_histories_undo_mlflow_encodings_and_match_the_client_path(data, store):
    history = data.history
    first = data.runs.loc[data.runs["run_name"] == "enhanced-s0", "run_id"].iloc[0]
    loss = history[(history["run_id"] == first) & (history["metric"] == "loss/undamped")].sort_values("step")
    assert loss["step"].tolist() == list(range(22))
    assert math.isinf(loss["value"].iloc[15]) and loss["value"].iloc[15] > 0
    assert np.isnan(loss["value"].iloc[12]) and loss["value"].iloc[0] == 10.0
    client = MlflowClient(store[0])
    available = {run_id: set(client.get_run(run_id).data.metrics) for run_id in data.runs["run_id"]}
    via_client = _histories_client(client, list(data.runs["run_id"]), available, ("loss/undamped", "weight/mel"))
    via_client = via_client.sort_values(["run_id", "metric", "step"]).reset_index(drop=True)
    via_sql = history[history["metric"].isin(["loss/undamped", "weight/mel"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(via_client[["run_id", "step", "metric", "value"]],
                                  via_sql[["run_id", "step", "metric", "value"]], check_dtype=False)


def test_failure_table(data):
    table = tables.failures(data.runs)
    enhanced = _row(table, "enhanced")
    assert (enhanced["runs"], enhanced["diverged"]) == (3, 2)
    assert enhanced["divergence rate"] == pytest.approx(2 / 3)
    low, high = tables.wilson_interval(2, 3)
    assert (enhanced["95% CI low"], enhanced["95% CI high"]) == (pytest.approx(low), pytest.approx(high))
    assert low == pytest.approx(0.2077, abs=1e-4) and high == pytest.approx(0.9385, abs=1e-4)
    assert enhanced["median first non-finite step"] == 16 and enhanced["runs with non-finite loss"] == 2
    assert enhanced["best val L1 mean"] == pytest.approx(0.9) and math.isnan(enhanced["best val L1 std"])
    basic = _row(table, "basic")
    assert (basic["runs"], basic["diverged"], basic["divergence rate"]) == (3, 0, 0.0)
    assert basic["best val L1 mean"] == pytest.approx(0.6) and basic["best val L1 std"] == pytest.approx(0.1)
    stable = _row(table, "stable_adaptive")
    assert (stable["skipped steps"], stable["spikes dampened"]) == (1, 2)
    assert stable["median first non-finite step"] == 7
    assert _row(table, "gradnorm")["failed/killed"] == 1 and _row(table, "gradnorm")["runs"] == 0
    assert _row(table, "dwa")["runs"] == 0


def test_initial_losses_and_progression(data):
    initial = tables.initial_losses(data.runs, data.history)
    assert _row(initial, "enhanced")["initial loss"] == pytest.approx((10 + 10 + 9) / 3)
    assert _row(initial, "basic")["initial loss"] == pytest.approx(2.5)
    assert _row(initial, "enhanced")["stop"] == pytest.approx(5.0) and _row(initial, "basic")["stop"] == 1.0
    progression = tables.progression(data.runs, data.history)
    assert list(progression.columns) == ["preset", "step 0", "step 3", "step 19", "step 39"]
    enhanced = _row(progression, "enhanced")
    assert enhanced["step 0"] == 10.0 and enhanced["step 19"] == 10.0  # seeds: 10, 10, 9 → median 10
    assert math.isinf(enhanced["step 39"])  # two of three seeds diverged: the median is a diverged value
    assert _row(progression, "basic")["step 39"] == 2.0


def test_weight_evolution_tables(data):
    summary = tables.weight_summary(data.runs, data.history).set_index("preset")
    assert summary.loc["enhanced", "strategy"] == "legacy_tanh"
    assert summary.loc["enhanced", "largest change per adjustment %"] == pytest.approx(20.0)
    assert summary.loc["stable_adaptive", "largest change per adjustment %"] == pytest.approx(5.0)
    assert summary.loc["stable_adaptive", "adjustments per run"] == 2
    assert summary.loc["basic", "adjustments per run"] == 0
    assert (summary.loc["stable_adaptive", "min weight"], summary.loc["stable_adaptive", "max weight"]) == (2.375, 2.5)
    folded = tables.strategy_summary(summary.reset_index(), "stable")
    assert folded["runs"] == 2 and folded["largest change per adjustment %"] == pytest.approx(5.0)
    evolution = tables.weight_table(data.runs, data.history, every=10).set_index("step")
    assert evolution.loc[20, "stable_adaptive"] == 2.375 and evolution.loc[0, "basic"] == 1.0


class Row:
    """One line of the audit, its verdict without the scope."""

    def __init__(self, line):
        self.verdict = claims.base_verdict(line["verdict"]) or line["verdict"]
        self.measured, self.evidence, self.kind = line["measured"], line["evidence"], line["kind"]


def _verdicts(data, bench=None, replay_results=None):
    main = tables.at_multiplier_one(data.runs)
    evidence = claims.Evidence(main, data.history, bench, replay_results, stress=data.runs)
    return {claim.id: [Row(line) for line in claims.judge(evidence, claim)] for claim in claims.CLAIMS}


def test_claims_audit_verdicts(data):
    verdicts = _verdicts(data)
    first = {key: found[0] for key, found in verdicts.items()}
    # No rollback fired: the ±5 % clip holds by construction, and the row says so.
    assert first["max-change-5"].verdict == claims.HOLDS and first["max-change-5"].kind == claims.BY_CONSTRUCTION
    # The old weight's bounds are arithmetic: +25 % / −20 % per step at most, from step 410.
    old = first["old-change-30"]
    assert old.verdict == claims.HOLDS and old.kind == claims.ARITHMETIC and "+25% / −20%" in old.measured
    assert "from step 410" in old.measured
    # 5x is not 6x: the row's own number is the threshold.
    six = first["six-x"]
    assert six.verdict == claims.FAILS and six.kind == claims.ARITHMETIC and "5.00x" in six.measured
    # 2 of 3 enhanced runs diverged, but the runs carry no epoch size: the horizon is unknown.
    assert first["old-fails"].verdict == claims.NOT_REPRODUCED and "2/3 runs diverged" in first["old-fails"].measured
    # enhanced's failures at steps 12 and 20 come before either system can act: nothing to prevent.
    assert first["new-succeeds"].verdict == claims.UNTESTABLE and "neither system can act" in first["new-succeeds"].measured
    # Ratios between two configurations of the same model are measured on this proxy (medians 10 / 2.5, 5 / 1) ...
    assert first["basic-3.8x"].verdict == claims.HOLDS and "4.00x" in first["basic-3.8x"].measured
    assert first["stop-5.4x"].verdict == claims.HOLDS and "5.00x" in first["stop-5.4x"].measured
    # ... absolute values of another model are not, and the row says why.
    assert first["epoch1-enhanced"].verdict == claims.UNTESTABLE and "7.597 is 11x" in first["epoch1-enhanced"].measured
    assert first["three-digit"].verdict == claims.UNTESTABLE and "before_fix" in first["three-digit"].measured
    assert first["overhead-0.1"].verdict == claims.UNTESTABLE
    assert first["safety-8"].verdict == claims.UNTESTABLE and "no replay" in first["safety-8"].measured
    # One enhanced run has a best validation loss: no interval of a difference from one run.
    assert first["basic-better"].verdict == claims.UNTESTABLE and "at least 3 per arm" in first["basic-better"].measured
    assert first["basic-stable"].verdict == claims.HOLDS
    assert first["wall-time"].verdict == claims.UNTESTABLE
    for found in verdicts.values():
        assert found and all(f.verdict in (*claims.VERDICTS, claims.SENSITIVITY) for f in found)

    def overhead(bench):
        return _verdicts(data, {"device": "CPU", "xla": False, **bench})["overhead-0.1"][0].verdict

    assert overhead({"overhead_percent": 2.5, "overhead_percent_per_round": [2.4, 2.5, 2.6, 2.5]}) == claims.FAILS
    assert overhead({"overhead_percent": 0.1, "overhead_percent_per_round": [0.0, 0.1, 0.2, 0.1]}) == claims.HOLDS
    assert overhead({"overhead_percent": 0.0, "overhead_percent_per_round": [-13, -2, 14, 2]}) == claims.UNTESTABLE


def test_worked_tables_and_safety_checks_from_the_replay(data):
    printed = {"old (printed)": {"0": 2.5, "1": 2.8, "2": None}, "new (printed)": {"0": 2.5, "1": 2.5, "2": 2.45}}
    replay_results = {"base_weight": 2.5, "safety_checks": [f"check {i}" for i in range(7)], "scenarios": {
        name: {"printed": printed, "strategies": {"legacy_tanh": {"weight": [2.5, 2.0, 2.0]},
                                                  "stable": {"weight": [2.5, 2.5, 2.4]}}}
        for name in ("decreasing_then_spike", "plateau_spike_recovery")}}
    verdicts = _verdicts(data, replay_results=replay_results)
    old = verdicts["worked-1-old"][0]
    assert old.verdict == claims.FAILS and "1/3 printed weights reproduced" in old.measured
    assert "step 2: printed NaN, computed 2" in old.measured
    assert verdicts["worked-1-new"][0].verdict == claims.HOLDS       # 2.45 vs 2.4 is within ±0.1
    assert verdicts["safety-8"][0].verdict == claims.FAILS and "7 checks" in verdicts["safety-8"][0].measured


CLAIM_RUNS = {"enhanced": ("legacy_tanh", "old"), "stable_adaptive": ("stable", "new"), "basic": ("none", "new"),
              "stable_weight_only": ("stable", "new"),
              **{name: ("none", "old" if "fixed" not in name else "new")
                 for name in ("legacy", "legacy_fixed", "legacy_log", "legacy_fixed_log")}}


@pytest.fixture(scope="module")
def claim_store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('claims') / 'mlflow.db'}"
    return uri, MlflowClient(uri)


def _scenario(claim_store, name, runs, weights=(2.0, 2.0, 2.1, 2.3, 2.0, 2.0)):
    """One experiment of runs (preset, outcome, trained steps, first non-finite step) at 3 steps per epoch;
    the old weight moves (`weights`), so the old system's mechanism acted unless a test says otherwise."""
    uri, client = claim_store
    experiment = client.create_experiment(name)
    for seed, (preset, outcome, steps, nonfinite) in enumerate(runs):
        weighting, system = CLAIM_RUNS[preset]
        _log(client, experiment, preset, seed, weighting, system,
             {"outcome": outcome, "first_nonfinite_step": "" if nonfinite is None else nonfinite,
              "steps_per_epoch": 3, "train_utterances": 27, "best_validation": 0.5, "steps_completed": steps},
             {"loss/undamped": [2.0] * 6, "raw/mel": [1.0] * 6,
              "weight/mel": list(weights) if weighting == "legacy_tanh" else [2.5] * 6}, steps=steps)
    return load_experiment(name, uri)


def test_an_old_system_claim_whose_weight_never_moved_is_not_reproduced_on_this_proxy(claim_store):
    """Diverged or not, runs in which the old weight sat at its floor never exercised the old system."""
    still = (2.0,) * 6
    for name, outcome, steps, cannot, verdict in (("idle_short", "diverged", 300, "cannot leave", claims.NOT_REPRODUCED),
                                                  ("idle_long", "stable", 600, "never left", claims.PROXY)):
        found = _verdicts(_scenario(claim_store, name, [("enhanced", outcome, steps, 5 if outcome == "diverged"
                                                         else None)] * 3, weights=still))
        for key in ("old-fails", "old-nan-epoch"):
            row = found[key][0]
            assert row.verdict == verdict, (key, row)   # too short to act: a horizon limit, not the proxy's
            assert f"the old tanh weight {cannot} its floor (0.8 x base) in 3 runs of ≤ {steps} steps" in row.measured
            assert "it can first move at step 410, on a loss ≥ 1.69x its running mean" in row.measured


def test_a_failure_claim_needs_the_horizon_it_names(claim_store):
    short = _verdicts(_scenario(claim_store, "short", [("enhanced", "stable", 30, None)] * 3))["old-fails"][0]
    assert short.verdict == claims.NOT_REPRODUCED and "within 10 epochs" in short.measured
    assert "3 runs, seeds 0–2, 30 steps = 10 epochs of 27 utterances" in short.evidence
    # One horizon rule for "0 of 10 succeed" and "NaN at about epoch 51": 60 epochs refute neither, 80 both.
    sixty = _verdicts(_scenario(claim_store, "sixty", [("enhanced", "stable", 180, None)] * 3))
    assert sixty["old-fails"][0].verdict == sixty["old-nan-epoch"][0].verdict == claims.NOT_REPRODUCED
    long = _verdicts(_scenario(claim_store, "long", [("enhanced", "stable", 240, None)] * 3))
    assert long["old-nan-epoch"][0].verdict == claims.FAILS
    long = long["old-fails"][0]
    assert long.verdict == claims.FAILS and "0/3 runs diverged" in long.measured and "within 80 epochs" in long.measured
    failed = _verdicts(_scenario(claim_store, "failed", [("enhanced", "diverged", 30, 20)] * 3))["old-fails"][0]
    assert failed.verdict == claims.HOLDS


def test_the_epoch_51_claim_rejects_a_nan_at_epoch_3(claim_store):
    early = _verdicts(_scenario(claim_store, "early", [("enhanced", "diverged", 300, 8)] * 3))["old-nan-epoch"][0]
    assert early.verdict == claims.FAILS and "median over every run 3" in early.measured
    on_time = _verdicts(_scenario(claim_store, "on_time", [("enhanced", "diverged", 300, 152)] * 3))["old-nan-epoch"][0]
    assert on_time.verdict == claims.HOLDS and "median over every run 51" in on_time.measured
    none_yet = _verdicts(_scenario(claim_store, "none_yet", [("enhanced", "stable", 180, None)] * 3))
    assert none_yet["old-nan-epoch"][0].verdict == claims.NOT_REPRODUCED     # 60 epochs < 51 × 1.5
    none_at_100 = _verdicts(_scenario(claim_store, "none_at_100", [("enhanced", "stable", 300, None)] * 3))
    assert none_at_100["old-nan-epoch"][0].verdict == claims.FAILS


def test_a_prevention_claim_needs_late_failures_a_significant_difference_and_power(claim_store):
    quiet = _verdicts(_scenario(claim_store, "quiet", [("enhanced", "stable", 600, None)] * 10
                                + [("stable_adaptive", "stable", 600, None)] * 10))["new-succeeds"][0]
    assert quiet.verdict == claims.UNTESTABLE and "never failed" in quiet.measured
    few = _verdicts(_scenario(claim_store, "few", [("enhanced", "diverged", 600, 500)] * 2
                              + [("enhanced", "stable", 600, None)] * 8
                              + [("stable_adaptive", "stable", 600, None)] * 10))["new-succeeds"][0]
    assert few.verdict == claims.UNTESTABLE and "p = 0.237" in few.measured and "power" in few.measured
    clear = _verdicts(_scenario(claim_store, "clear", [("enhanced", "diverged", 600, 500)] * 10
                                + [("stable_adaptive", "stable", 600, None)] * 10))["new-succeeds"][0]
    assert clear.verdict == claims.HOLDS and "p = 5.41e-06" in clear.measured
    worse = _verdicts(_scenario(claim_store, "worse", [("enhanced", "stable", 600, None)] * 5
                                + [("stable_adaptive", "diverged", 600, 500)] * 5))["new-succeeds"][0]
    assert worse.verdict == claims.FAILS


def test_statistics_against_known_values():
    from analysis import stats

    assert stats.fisher_exact_greater(5, 5, 0, 5) == pytest.approx(1 / 252)
    assert stats.fisher_exact_greater(0, 5, 0, 5) == 1.0
    assert stats.fisher_exact_greater(2, 10, 0, 10) == pytest.approx(0.2368, abs=1e-4)
    assert stats.wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    diff, low, high = stats.bootstrap_mean_difference([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])
    assert diff == pytest.approx(-1.0) and low < -0.9 and high > -1.1 and high < 0
    assert stats.bootstrap_mean_difference([1.0], [2.0]) == stats.bootstrap_mean_difference([1.0], [2.0])
    # A one-value sample enters as a constant; the other is still resampled.
    diff, low, high = stats.bootstrap_mean_difference([1.0], [2.0, 2.1, 1.9])
    assert diff == pytest.approx(-1.0) and low == pytest.approx(-1.1) and high == pytest.approx(-0.9)
    assert stats.wilson_interval(1, 5) == (pytest.approx(0.0362, abs=1e-4), pytest.approx(0.6245, abs=1e-4))


def test_report_is_complete_deterministic_and_notes_odd_runs(data, tmp_path):
    first = build_report(data, tmp_path / "a")
    second = build_report(data, tmp_path / "b")
    text = first.read_text()
    assert text == second.read_text()
    for name in ("weight_evolution.png", "loss_curves.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("## Findings", "## Provenance", "## Configurations", "## NaN failures", "## The first epoch",
                    "## Loss progression", "## Weight evolution", "## Where divergence starts", "## Claims audit"):
        assert heading in text
    assert "1 run(s) orphaned (RUNNING, but its process is gone): dwa-s0" in text
    assert "1 run(s) failed: gradnorm-s0" in text
    assert "| dwa-s0 | dwa | 0 | RUNNING (orphaned) | 0 | no outcome recorded |" in text
    assert "logged no metrics" in text and "git commit: abc123" in text
    assert "| enhanced | 3 | 2 | 67% | 21% | 94% | 16 |" in text
    assert "- **2 of 8 runs diverged** (each set to train 40 steps; a diverged run stops at its divergence):" in text
    assert "  - enhanced: 2/3 (95 % CI 21%–94%)" in text and "  - no divergence: stable_adaptive, basic" in text
    assert text.index("## Findings") < text.index("## Provenance") < text.index("## Claims audit")


def test_report_names_failed_killed_orphaned_live_and_untagged_runs(tmp_path):
    """Runs the runner never finished lack its tags (machine, device, outcome, even preset): the report
    still renders, names each such run with its state and counts none of them in a rate."""
    import os
    import socket

    uri = f"sqlite:///{tmp_path / 'odd.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("odd")
    _log(client, experiment, "basic", 0, "none", "new",
         {"outcome": "stable", "diverged_at_step": "", "first_nonfinite_step": "", "best_validation": 0.5},
         {"loss/undamped": [2.0] * 5, "raw/mel": [1.0] * 5, "weight/mel": [1.0] * 5})
    failed = client.create_run(experiment, run_name="failed-early", tags={"preset": "basic", "seed": "1"})
    client.log_batch(failed.info.run_id, metrics=[Metric("loss/undamped", 3.0, 0, s) for s in range(3)])
    client.set_tag(failed.info.run_id, "error", "OSError: disk full")
    client.set_terminated(failed.info.run_id, "FAILED")
    killed = client.create_run(experiment, run_name="killed", tags={"preset": "basic", "seed": "2",
                                                                    "outcome": "killed"})
    client.set_terminated(killed.info.run_id, "KILLED")
    client.create_run(experiment, run_name="untagged")            # RUNNING, no tags at all: orphaned
    client.create_run(experiment, run_name="live", tags={          # RUNNING, claimed by this very process
        "preset": "basic", "seed": "3", "host": socket.gethostname(), "pid": str(os.getpid())})
    data = load_experiment("odd", uri)
    states = dict(zip(data.runs["run_name"], data.runs["state"]))
    assert states == {"basic-s0": "FINISHED", "failed-early": "FAILED", "killed": "KILLED",
                      "untagged": "RUNNING (orphaned)", "live": "RUNNING (live)"}
    text = build_report(data, tmp_path / "report").read_text()
    assert "## Runs without a verdict" in text
    assert "| failed-early | basic | 1 | FAILED | 3 | OSError: disk full |" in text
    assert "| killed | basic | 2 | KILLED | 0 |  |" in text
    assert "| untagged | (no preset tag) | | RUNNING (orphaned) | 0 | no outcome recorded |".replace("| |", "|  |") in text
    assert "| live | basic | 3 | RUNNING (live) | 0 | no outcome recorded |" in text
    assert "| basic | 1 | 0 | 0% |" in text   # only the finished run counts in the rate


def test_empty_experiment_and_unknown_experiment(store, tmp_path):
    client = MlflowClient(store[0])
    client.create_experiment("empty")
    data = load_experiment("empty", store[0])
    path = build_report(data, tmp_path / "empty")
    assert "has no runs yet" in path.read_text()
    with pytest.raises(UnknownExperiment, match="known: Default, empty, known"):
        load_experiment("nothing", store[0])


def test_cli_exit_codes(store, tmp_path, capsys):
    assert cli.main(["--experiment", "known", "--tracking-uri", store[0], "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").is_file()
    assert cli.main(["--tracking-uri", store[0], "--out", str(tmp_path / "latest")]) == 0
    assert "# Stability report: " in (tmp_path / "latest" / "report.md").read_text()
    assert cli.main(["--experiment", "nothing", "--tracking-uri", store[0]]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli.main(["--experiment", "known", "--tracking-uri", f"sqlite:///{tmp_path / 'missing.db'}"]) == 2


def test_cli_answers_a_dead_or_foreign_tracking_server_in_one_line_within_seconds(tmp_path, capsys):
    """MLflow's client retries a closed port for minutes and a server that is not MLflow ends in a long
    traceback; the report's command asks once, as the runner does before a launch."""
    import http.server
    import socket
    import threading
    import time

    with socket.socket() as probe:   # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"

    class NotMlflow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):   # 200 and a web page, whatever is asked (so /health "works")
            body = b"<html>a web site, not MLflow</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.do_GET()

        def log_message(self, *args):   # the server's request log would land on this test's stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    foreign = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for uri, problem in ((closed, "is unreachable ("),
                             (foreign, "answers but is not an MLflow tracking server (its REST API gave: ")):
            started = time.monotonic()
            code = cli.main(["--experiment", "known", "--tracking-uri", uri, "--out", str(tmp_path / "r")])
            seconds = time.monotonic() - started
            captured = capsys.readouterr()
            lines = [line for line in captured.err.splitlines() if line.strip()]
            assert code == 2 and len(lines) == 1 and not captured.out.strip(), (uri, captured)
            assert lines[0].startswith(f"error: --tracking-uri={uri} {problem}"), lines[0]
            assert seconds < 30, (uri, seconds)
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "r").exists()


def test_lr_frontier_table_and_figure(tmp_path):
    runs = pd.DataFrame({
        "run_id": list("abcdef"), "tag.preset": ["legacy"] * 4 + ["basic"] * 2,
        "param.optim.lr_multiplier": ["1.0", "64.0", "64.0", "1.0", "1.0", "64.0"],
        "tag.outcome": ["stable", "diverged", "stable", "stable", "stable", "failed"]}).pipe(with_configs)
    frontier = tables.lr_frontier(runs).set_index("preset")
    assert frontier.loc["legacy", "x1"] == 0.0 and frontier.loc["legacy", "x64"] == 0.5
    assert frontier.loc["basic", "x1"] == 0.0 and math.isnan(frontier.loc["basic", "x64"])  # failed ≠ a result
    assert tables.lr_frontier(runs[runs["param.optim.lr_multiplier"] == "1.0"]).empty
    from analysis import figures

    path = figures.lr_frontier(frontier.reset_index(), tmp_path / "frontier.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ablation_table_rates_epochs_and_update_size():
    runs = pd.DataFrame({
        "run_id": list("abcdef"), "tag.preset": ["upstream"] * 3 + ["upstream-scale"] * 3,
        "tag.ablation_base": ["upstream"] * 6, "tag.ablation_factor": ["none"] * 3 + ["scale"] * 3,
        "tag.ablation_direction": ["none"] * 3 + ["off"] * 3,
        "tag.outcome": ["diverged", "diverged", "stable", "stable", "stable", "failed"],
        "tag.first_nonfinite_step": ["29", "59", "", "", "", ""], "tag.steps_per_epoch": ["3"] * 6,
        "tag.best_validation": ["", "", "0.5", "0.4", "0.6", ""]})
    history = pd.DataFrame({"run_id": list("abcdef"), "step": [0] * 6, "metric": ["update/norm"] * 6,
                            "value": [1e-4, 2e-4, 3e-4, 1.0, 2.0, 3.0]})
    table = tables.ablation(runs, history).set_index("factor")
    assert list(table.index) == ["none", "scale"]
    assert table.loc["none", "runs"] == 3 and table.loc["none", "diverged"] == 2
    assert table.loc["none", "median first non-finite epoch"] == 15.0          # epochs 10 and 20
    assert table.loc["none", "median update norm"] == pytest.approx(2e-4)
    assert table.loc["scale", "runs"] == 2 and table.loc["scale", "divergence rate"] == 0.0  # failed ≠ a result
    assert table.loc["scale", "median best val L1"] == pytest.approx(0.5)
    assert tables.ablation(runs.drop(columns=["tag.ablation_factor"]), history).empty


def test_a_regenerated_report_is_attached_to_the_sweep_parent(store, tmp_path):
    client = MlflowClient(store[0])
    experiment = client.create_experiment("attached", artifact_location=(tmp_path / "artifacts").as_uri())
    _log(client, experiment, "basic", 0, "none", "new", {"outcome": "stable", "best_validation": 0.5},
         {"loss/undamped": [2.0] * 3, "weight/mel": [1.0] * 3})
    parent = client.create_run(experiment, tags={"sweep": "true"})
    client.set_terminated(parent.info.run_id)
    assert cli.main(["--experiment", "attached", "--tracking-uri", store[0], "--out", str(tmp_path / "r")]) == 0
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/loss_curves.png", "report/weight_evolution.png"} <= attached
    # The parent's description says where the report is (outside the project: its whole path).
    assert client.get_run(parent.info.run_id).data.tags["mlflow.note.content"] == \
        f"report: {tmp_path / 'r' / 'report.md'} · artifact report/report.md of this run"
    assert cli.main(["--experiment", "attached", "--tracking-uri", store[0], "--out", str(tmp_path / "s"),
                     "--no-parent"]) == 0


def test_where_divergence_starts_table():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "tag.preset": ["upstream"] * 3,
                         "tag.nan_origin_step": ["40", "", ""], "tag.nan_origin_layer": ["decoder_block_0/ff_in", "", ""],
                         "tag.nan_origin_op": ["Dense", "", ""], "tag.first_nonfinite_step": ["41", "", "25"]})
    rows = [("a", step, "diag/attention/decoder_block_0/self", v) for step, v in zip((0, 10, 20, 30), (1, 1, 5, 9))]
    rows += [("a", step, "diag/grad/heads", v) for step, v in zip((0, 10, 20, 30), (1, 1, 1, 4))]
    rows += [("c", step, "diag/grad/heads", 1.0) for step in (0, 10, 20)]
    history = pd.DataFrame(rows, columns=["run_id", "step", "metric", "value"])
    table = tables.divergence_origins(runs, history)
    row = table.iloc[0]
    assert (row["runs"], row["runs with a non-finite step"], row["origin located"]) == (3, 2, 1)
    assert row["origin (layer: op × runs)"] == "decoder_block_0/ff_in: Dense × 1"
    # run a: the attention logit passes 3 × its early maximum (1) at step 20, 20 steps before step 40;
    # run c (no replay tags: its first non-finite loss, step 25) never warns.
    assert row["earliest warning signal (runs)"] == "attention/decoder_block_0/self (1)"
    assert row["median steps of warning"] == 20
    assert tables.divergence_origins(runs.assign(**{"tag.nan_origin_step": "", "tag.first_nonfinite_step": ""}),
                                     history).empty


def test_every_claim_is_listed_under_its_documents_in_docs_sources():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "sources.md").read_text()
    text = text.split("\n## Upstream factors")[0]    # the claims table; the upstream timeline's tables follow it
    rows = {line.split("|")[1].strip(): line.split("|")[3] for line in text.splitlines()
            if line.startswith("| ") and "`" in line}
    assert set(rows) == set(claims.DOCUMENTS.values())
    for claim in claims.CLAIMS:
        for source in claim.sources:
            assert f"`{claim.id}`" in rows[claims.DOCUMENTS[source]], (claim.id, source)


def test_only_runs_of_the_preset_as_documented_are_evidence_for_its_claims(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("claims")   # the claims' home report: its rows are judged here
    for seed in (0, 1):
        _log(client, experiment, "basic", seed, "none", "new",
             {"outcome": "stable", "overridden": "", "best_validation": 0.5, "steps_per_epoch": 4},
             {"loss/undamped": [2.0] * 40})
    # The same preset with a deliberate fault: it diverges, but it is not basic as the documents ran it.
    _log(client, experiment, "basic", 2, "none", "new",
         {"outcome": "diverged", "overridden": "fault=nan_batch fault.step=4", "diverged_at_step": 13,
          "first_nonfinite_step": 4, "steps_per_epoch": 4}, {"loss/undamped": [2.0] * 4 + [NAN] * 10})
    report = build_report(load_experiment("claims", uri), tmp_path / "out").read_text()
    audit = report[report.index("## Claims audit"):]
    row = next(line for line in audit.splitlines() if line.startswith("| basic-stable | Basic trains without NaN."))
    assert "| holds on this proxy |" in row and "basic: 2 runs, seeds 0, 1" in row
    assert "Not used for the claims" in audit and "| basic | fault=nan_batch fault.step=4 | 1 |" in audit
    # Another experiment gives no second verdict: it points to the claims' home.
    other = client.create_experiment("elsewhere")
    _log(client, other, "basic", 0, "none", "new", {"outcome": "stable", "steps_per_epoch": 4},
         {"loss/undamped": [2.0] * 40})
    elsewhere = build_report(load_experiment("elsewhere", uri), tmp_path / "other").read_text()
    assert "No claim is judged in this report" in elsewhere and "reports/claims/" in elsewhere
    # Runs recorded before the tag existed: a multiplier or a fault in their params says the same.
    frame = with_configs(pd.DataFrame({"param.optim.lr_multiplier": ["1.0", "4.0", "1.0"],
                                       "param.fault.kind": ["none", "none", "spike"]}))
    assert list(tables.overridden(frame)) == ["", "optim.lr_multiplier=4", "fault.kind=spike"]


def test_loss_scale_claims_are_judged_on_the_log_scale_arm_and_the_standardized_one_is_a_sensitivity_line(claim_store):
    arms = ("legacy", "legacy_fixed", "legacy_log", "legacy_fixed_log")
    found = _scenario(claim_store, "scales", [(arm, "stable", 30, None) for arm in arms])
    client = MlflowClient(claim_store[0])
    for run_id, preset in zip(found.runs["run_id"], tables.tag(found.runs, record.PRESET)):
        if preset.endswith("_log"):
            client.log_batch(run_id, params=[Param("data.features.scale", "log")])
    found = _verdicts(load_experiment("scales", claim_store[0]))
    ratio = found["fix-14x"]
    assert [r.verdict for r in ratio] == [claims.FAILS, claims.SENSITIVITY]   # totals of 2.0 / 2.0 = 1x
    assert ratio[0].evidence.startswith("legacy_log, legacy_fixed_log:") and ratio[1].evidence.startswith("legacy, ")
    for key in ("three-digit", "starts", "spikes", "progression-before"):
        assert found[key][0].verdict == claims.UNTESTABLE and "another model" in found[key][0].measured, key
    before = found["progression-before"][0]
    assert "before_fix epoch 1 2" in before.measured and "before_fix epoch 50 not trained" in before.measured
    arithmetic = found["raw-mel-8.09"]
    assert [(r.kind, r.verdict) for r in arithmetic] == [(claims.ARITHMETIC, claims.HOLDS)]
    # Without the log-scale arm the documents' own setting has no runs: not testable, the rest is sensitivity.
    alone = _verdicts(_scenario(claim_store, "scales_alone", [(arm, "stable", 30, None) for arm in arms[:2]]))
    assert [f.verdict for f in alone["fix-14x"]] == [claims.UNTESTABLE, claims.SENSITIVITY]
    assert "documents' own setting" in alone["fix-14x"][0].measured


def test_by_construction_rows_are_judged_from_the_code_and_show_what_the_runs_did(claim_store):
    both = _verdicts(_scenario(claim_store, "arms", [("stable_adaptive", "stable", 30, None),
                                                      ("stable_weight_only", "stable", 30, None)]))
    clip = both["max-change-5"][0]
    assert clip.verdict == claims.HOLDS and clip.kind == claims.BY_CONSTRUCTION
    assert clip.evidence.startswith("stable_adaptive, stable_weight_only: 2 runs") and "never moved" in clip.measured


def test_the_old_formulas_arithmetic_claims_are_judged_analytically_and_the_schedule_from_decisions():
    empty = claims.Evidence(pd.DataFrame(columns=["run_id"]), pd.DataFrame(columns=["run_id", "metric", "step", "value"]))
    found = {c.id: Row(claims.judge(empty, c)[0]) for c in claims.CLAIMS
             if c.id in ("factor-52", "factor-range", "dampening-4-10", "feedback")}
    assert all(f.kind == claims.ARITHMETIC for f in found.values())
    assert found["factor-52"].verdict == claims.FAILS and "changes by 20%" in found["factor-52"].measured
    assert found["factor-range"].verdict == claims.FAILS and "[0.7, 1.3] 1" in found["factor-range"].measured
    assert found["dampening-4-10"].verdict == claims.HOLDS and "100 x 2 / 50 = 4" in found["dampening-4-10"].measured
    assert found["feedback"].verdict == claims.FAILS
    schedule = next(c for c in claims.CLAIMS if c.id == "schedule-100-50")

    def decisions(changes):
        codes = [3] * 400
        for step in changes:
            codes[step - 1] = 4
        runs = with_configs(pd.DataFrame({"run_id": ["a"], "param.weighting.name": ["stable"],
                                          "tag.preset": ["stable_adaptive"], "tag.outcome": ["stable"]}))
        history = pd.DataFrame({"run_id": "a", "metric": "weighting/decision", "step": range(400), "value": codes})
        return Row(claims.judge(claims.Evidence(runs, history), schedule)[0])
    assert decisions([150, 200, 260]).verdict == claims.HOLDS
    assert decisions([150, 190]).verdict == claims.FAILS        # 40 steps apart: inside the cooling period
    assert decisions([90]).verdict == claims.FAILS              # inside warmup
    assert decisions([]).verdict == claims.UNTESTABLE


def test_a_trained_spike_is_judged_by_its_rules_and_only_on_runs_that_change_nothing_else(claim_store, tmp_path):
    """Spike at step 8 of 14: the old system goes non-finite on step 9 in one of two runs, the new one is back
    at its pre-spike level 2 steps later; a spiked run with another override is no evidence."""
    uri, client = claim_store
    experiment = client.create_experiment("spiked")
    steady = [2.0] * 8
    runs = (("enhanced", 0, "diverged", steady + [100.0] + [NAN] * 5, [2.0] * 8 + [2.5] * 6, ""),
            ("enhanced", 1, "stable", [*steady, 100.0, 3.0, 2.1, 2.0, 2.0, 2.0], [2.0] * 8 + [2.5] * 6, ""),
            ("stable_adaptive", 0, "stable", [*steady, 4.0, 2.6, 2.1, 2.0, 2.0, 2.0], [2.5] * 14, ""),
            ("stable_adaptive", 1, "stable", [*steady, 4.0, 3.0, 2.5, 2.2, 2.1, 2.1], [2.5] * 14, ""),
            ("stable_adaptive", 2, "diverged", steady + [4.0] + [NAN] * 5, [2.5] * 14, "optim.lr=0.1"))
    for preset, seed, outcome, loss, weight, other in runs:
        weighting, system = CLAIM_RUNS[preset]
        rid = _log(client, experiment, preset, seed, weighting, system,
                   {"outcome": outcome, "overridden": other, "steps_per_epoch": 3, "train_utterances": 27},
                   {"loss/total": loss, "loss/undamped": loss, "weight/mel": weight}, steps=14)
        client.log_batch(rid, params=[Param("fault.kind", "spike"), Param("fault.step", "8")])
    data = load_experiment("spiked", uri)
    facts = spike.per_run(data.runs, data.history)
    assert len(facts) == 4, "the run with optim.lr overridden is not evidence"
    by = facts.set_index(["preset", "seed"])
    assert by.loc[("enhanced", "0"), "nan next step"] and not by.loc[("enhanced", "0"), "recovered"]
    assert by.loc[("enhanced", "1"), "steps to recover"] == 2      # 2.1 <= 1.1 x 2.0 two steps after the spike
    assert by.loc[("enhanced", "1"), "largest weight change %"] == pytest.approx(25.0)
    assert list(by.loc[("stable_adaptive", slice(None)), "steps to recover"]) == [2, 3]
    table = spike.summary(facts).set_index("preset")
    assert table.loc["enhanced", ["nan next step", "diverged", "recovered"]].tolist() == [1, 1, 1]
    assert table.loc["stable_adaptive", ["runs", "recovered"]].tolist() == [2, 2]
    evidence = claims.Evidence(tables.as_documented(data.runs), data.history, stress=data.runs, spikes=facts)
    found = {claim.id: Row(claims.judge(evidence, claim)[0]) for claim in claims.CLAIMS
             if claim.id.startswith("worked-2-")}
    # The note says the old system is NaN on the next step: 1 of 2 runs is not that.
    assert found["worked-2-old-run"].verdict == claims.FAILS and "next step in 1/2" in found["worked-2-old-run"].measured
    assert found["worked-2-new-run"].verdict == claims.HOLDS and "recovered in 2/2" in found["worked-2-new-run"].measured
    still = claims.Evidence(evidence.runs, data.history, stress=data.runs,
                            spikes=facts.assign(**{"largest weight change %": 0.0}))
    old_run = next(c for c in claims.CLAIMS if c.id == "worked-2-old-run")
    assert Row(claims.judge(still, old_run)[0]).verdict == claims.PROXY
    report = build_report(data, tmp_path).read_text()
    assert "## A loss spike in training" in report and "## The old weight" in report


def _advice(claim_id, presets):
    """One claim judged on hand-made runs: (preset, outcome, spiky, lr, mel weight, kl weight, clip, batch)."""
    columns = ["tag.preset", "tag.outcome", "tag.spiky", "param.optim.lr", "param.loss.mel_loss_weight",
               "param.loss.kl_loss_weight", "param.optim.clip_norm", "param.trainer.batch_size"]
    runs = with_configs(pd.DataFrame([dict(zip(columns, map(str, row))) for row in presets]))
    runs.insert(0, "run_id", [f"r{i}" for i in range(len(runs))])
    runs["tag.role"] = runs["tag.preset"].map(lambda preset: ROLE_OF.get(preset, "arm"))
    evidence = claims.Evidence(runs, pd.DataFrame(columns=["run_id", "metric", "step", "value"]), stress=runs)
    return Row(claims.judge(evidence, next(c for c in claims.CLAIMS if c.id == claim_id))[0])


def test_the_documents_advice_is_judged_on_runs_outside_and_inside_its_ranges():
    enhanced = ("enhanced", "stable", "false", 8e-5, 2.5, 1.8, 0.8, 8)
    basic = ("basic", "stable", "false", 1e-5, 1.0, 0.5, 0.5, 8)
    legacy = ("legacy", "stable", "true", 1e-4, 35.0, 1.0, None, 8)
    quiet = [enhanced] * 10 + [basic] * 5
    # Ten runs above the advised lr (or mel weight) that never diverge refute the advice on this proxy, when the runs
    # inside differ from them in the advised setting alone ...
    slow = ("enhanced", "stable", "false", 1e-5, 2.5, 1.8, 0.8, 8)
    light = ("enhanced", "stable", "false", 8e-5, 1.0, 1.8, 0.8, 8)
    for claim_id, limit, inside in (("limit-lr", "lr ≤ 2e-05", slow), ("limit-mel-1.5", "mel weight ≤ 1.5", light)):
        found = _advice(claim_id, [enhanced] * 10 + [inside] * 5)
        assert found.verdict == claims.FAILS and f"outside {limit} (enhanced): 0/10 diverged" in found.measured
        # ... and not across presets that differ in more (basic also changes the clip and the other weights).
        confounded = _advice(claim_id, quiet)
        assert confounded.verdict == claims.UNTESTABLE and "no run isolates the factor" in confounded.measured
    # Every run at batch 8: the batch advice cannot be tested.
    batch = _advice("limit-batch", quiet)
    assert batch.verdict == claims.UNTESTABLE and "every one of the 15 runs keeps to batch size 8–16" in batch.measured
    # Failures above the limit only, significantly more often: it holds.
    failing = [("enhanced", "diverged", "false", 8e-5, 2.5, 1.8, 0.8, 8)] * 10 + [slow] * 10
    found = _advice("limit-lr", failing)
    assert found.verdict == claims.HOLDS and "p = 5.41e-06" in found.measured
    assert "outside lr ≤ 2e-05 (enhanced): 10/10 diverged; inside: 0/10 diverged" in found.measured
    few = _advice("limit-lr", failing[:2] + [slow] * 3)
    assert few.verdict == claims.UNTESTABLE and "power" in few.measured
    # The safe ranges: 15 runs inside without a divergence hold; one divergence inside refutes them.
    safe = _advice("safe-ranges", [*quiet, legacy])
    assert safe.verdict == claims.HOLDS and "0/15 diverged" in safe.measured
    unsafe = _advice("safe-ranges", failing)
    assert unsafe.verdict == claims.FAILS and "10/20 diverged (95 % CI 30%–70%)" in unsafe.measured
    # No clipping counts as a clip above 2: spiky unclipped runs against quiet clipped ones.
    clipped = ("legacy", "stable", "false", 1e-4, 35.0, 1.0, 1.0, 8)
    spikes = _advice("clip-2-spikes", [legacy] * 10 + [clipped] * 10)
    assert spikes.verdict == claims.HOLDS and "outside gradient clip ≤ 2 (legacy): 10/10 spiky" in spikes.measured
    assert _advice("clip-2-spikes", [(*legacy[:2], "false", *legacy[3:])] * 10).verdict == claims.FAILS


def test_a_run_whose_facts_do_not_parse_is_noted_and_read_without_them(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("odd_facts")
    _log(client, experiment, "basic", 0, "none", "new", {"outcome": "stable", "steps_completed": "40"},
         {"loss/undamped": [2.0] * 40})
    _log(client, experiment, "basic", 1, "none", "new", {"outcome": "stable", "steps_completed": "many"},
         {"loss/undamped": [2.0] * 40})
    data = load_experiment("odd_facts", uri)
    facts = dict(zip(data.runs["run_name"], data.runs["facts"]))
    assert facts["basic-s0"].steps_completed == 40 and facts["basic-s1"] is None
    assert any("basic-s1: tag steps_completed='many': allowed is an integer; its facts are not read" in n
               for n in data.notes)


def test_a_malformed_ablation_alias_is_noted_and_left_out_of_the_ablation_table(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("odd_aliases")
    arm = {"ablation_base": "upstream", "ablation_factor": "none", "ablation_direction": "none", "outcome": "stable"}
    _log(client, experiment, "upstream", 0, "legacy_tanh", "old",
         {**arm, "ablation_aliases": "upstream_fp16:fp16_order:off fp16_order"}, {"loss/undamped": [2.0] * 40})
    data = load_experiment("odd_aliases", uri)
    assert any("upstream-s0: tag ablation_aliases 'upstream_fp16:fp16_order:off fp16_order' is not "
               "'base:factor:direction'" in n for n in data.notes)
    table = tables.ablation(data.runs, data.history)
    assert sorted(zip(table["base"], table["factor"], table["runs"])) == [("upstream", "none", 1),
                                                                         ("upstream_fp16", "fp16_order", 1)]


def test_each_run_is_read_with_the_typed_settings_of_its_config_artifact(tmp_path):
    """A run's config.yaml is what analysis reads (over its params); a run without one is read from its
    params; a configuration today's settings reject is noted and read without; a foreign run has none."""
    from myxtts.training.settings import StableSettings

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("typed", artifact_location=str(tmp_path / "art"))
    ids = [_log(client, experiment, "stable_adaptive", seed, "stable", "new", {"outcome": "stable"},
                {"loss/undamped": [2.0] * 5}) for seed in range(3)]
    for run_id, text in ((ids[0], "seed: 0\noptim:\n  lr: 0.0173\nweighting:\n  name: stable\n  cooling_period: 7\n"
                                  "experiment: typed\npreset: stable_adaptive\n"),
                         (ids[1], "optim:\n  lr: -1.0\n")):
        (tmp_path / "config.yaml").write_text(text)
        client.log_artifact(run_id, str(tmp_path / "config.yaml"))
    foreign = client.create_run(experiment, run_name="foreign").info.run_id
    client.set_terminated(foreign)
    data = load_experiment("typed", uri)
    config = dict(zip(data.runs["run_id"], data.runs["config"]))
    assert config[ids[0]].optim.lr == 0.0173 and isinstance(config[ids[0]].weighting, StableSettings)
    assert config[ids[0]].weighting.cooling_period == 7 and config[ids[0]].trainer.steps == 300  # default kept
    assert config[ids[1]] is None and config[foreign] is None
    assert any("stable_adaptive-s1: its configuration is not read (optim.lr=-1.0 is invalid" in n for n in data.notes)
    assert config[ids[2]].optim.lr == 1e-4 and config[ids[2]].trainer.steps == 40    # from its params
    assert list(tables.setting(data.runs, "optim.lr").loc[data.runs["run_id"] == ids[0]]) == [0.0173]
    assert tables.setting(data.runs, "weighting.cooling_period", "n/a").loc[data.runs["run_id"] == foreign].item() == "n/a"


def test_an_ablation_arm_with_another_arms_configuration_counts_that_arms_runs():
    runs = pd.DataFrame({
        "run_id": list("abcd"), "tag.preset": ["upstream"] * 2 + ["upstream_fp16"] * 2,
        "tag.ablation_base": ["upstream"] * 2 + ["upstream_fp16"] * 2, "tag.ablation_factor": ["none"] * 4,
        "tag.ablation_direction": ["none"] * 4,
        "tag.ablation_aliases": ["upstream_fp16:fp16_order:off", "upstream_fp16:fp16_order:off", "", ""],
        "tag.outcome": ["stable", "stable", "diverged", "diverged"], "tag.steps_per_epoch": ["3"] * 4})
    history = pd.DataFrame(columns=["run_id", "step", "metric", "value"])
    table = tables.ablation(runs, history).set_index(["base", "factor"])
    arm = table.loc[("upstream_fp16", "fp16_order")]
    assert (arm["direction"], arm["runs"], arm["diverged"], arm["same runs as"]) == ("off", 2, 0, "upstream")
    assert table.loc[("upstream", "none"), "runs"] == 2 and table.loc[("upstream", "none"), "same runs as"] == ""
    assert table.loc[("upstream_fp16", "none"), "divergence rate"] == 1.0
    findings = "\n".join(_ablation_findings(table.reset_index()))
    assert "Ablation from `upstream_fp16` (divergence 100%): fp16_order off: 0% (CI 0%–66%; the runs of " \
           "`upstream`)" in findings


def test_a_skipped_ablation_job_names_its_arm_on_the_finished_run_of_its_configuration(tmp_path):
    """`upstream_fp16` with its float16 order corrected is `upstream`: the runner trains it once, and the run
    it skips for stands for that arm as well (once, however often the job is launched)."""
    from hydra import compose, initialize_config_dir

    from runner import lifecycle
    from runner.preflight import CONF_DIR
    from runner.schema import config_hash, validate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        upstream, arm = (validate(compose(config_name="config", overrides=[f"+ablation={name}"]))
                         for name in ("upstream", "upstream_fp16_without_fp16_order"))
    assert config_hash(upstream) == config_hash(arm) and upstream.preset != arm.preset
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("aliases", artifact_location=(tmp_path / "art").as_uri())
    trained = lifecycle.claim(client, experiment, upstream, config_hash(upstream), "upstream", [], None)
    client.set_terminated(trained.run_id, status="FINISHED")
    for _ in range(2):
        skipped = lifecycle.claim(client, experiment, arm, config_hash(arm), "arm", [], None)
        assert (skipped.status, skipped.run_id) == ("SKIPPED", trained.run_id)
    tags = client.get_run(trained.run_id).data.tags
    assert tags["preset"] == "upstream" and tags["ablation_aliases"] == "upstream_fp16:fp16_order:off"
    assert lifecycle.claim(client, experiment, upstream, config_hash(upstream), "upstream", [], None).status == "SKIPPED"
    assert client.get_run(trained.run_id).data.tags["ablation_aliases"] == "upstream_fp16:fp16_order:off"
