"""The claim rows and the rules that judge them, on hand-built runs: each rule in its order, for both systems."""
import math

import pandas as pd
import pytest

from analysis import claims, rules
from analysis.rules import Groups, Measurement, Part
from frames import with_configs
from myxtts import record

T = record.tag_column


def _runs(role, preset, n, weighting="legacy_tanh", diverged=(), steps=300, per_epoch=3, first_nonfinite=None,
          scale="standardized", precision="float32", **params):
    rows = []
    for seed in range(n):
        bad = seed in diverged
        rows.append({"run_id": f"{preset}-{seed}", "status": "FINISHED", T(record.PRESET): preset,
                     T(record.SEED): str(seed), T("role"): role, T(record.OUTCOME): "diverged" if bad else "stable",
                     T(record.FIRST_NONFINITE_STEP): str(first_nonfinite if bad else ""),
                     T(record.STEPS_PER_EPOCH): str(per_epoch), T(record.STEPS_COMPLETED): str(steps),
                     T(record.TRAIN_UTTERANCES): "24",
                     "param.weighting.name": weighting, "param.trainer.steps": str(steps),
                     "param.data.features.scale": scale, "param.trainer.precision": precision,
                     **{f"param.{k}": str(v) for k, v in params.items()}})
    return rows


def _evidence(*groups, history=None):
    frame = with_configs(pd.DataFrame([row for group in groups for row in group]))
    empty = pd.DataFrame(columns=["run_id", "step", "metric", "value"])
    return claims.Evidence(frame, empty if history is None else history)


def _claim(id_):
    return next(c for c in claims.CLAIMS if c.id == id_)


def _verdict(evidence, id_):
    return claims.judge(evidence, _claim(id_))


# --- the claims are data ---------------------------------------------------------------------------------

def test_every_row_names_a_known_measure_comparison_kind_and_role():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for claim in claims.CLAIMS:
        assert claim.measure in claims.MEASURES and claim.compare in rules.COMPARISONS, claim.id
        assert claim.kind in claims.KINDS and all(s in claims.DOCUMENTS for s in claim.sources), claim.id
        assert claim.rule   # generated from the row


def test_rule_text_comes_from_the_row_thresholds():
    nan_epoch = _claim("old-nan-epoch")
    assert "76.5 epochs" in nan_epoch.rule and "±50% of 51" in nan_epoch.rule    # 51 x 1.5, written once
    six = _claim("six-x")
    assert "≥ 6" in six.rule   # the claimed factor itself, not a slackened one


def test_the_required_rows_exist():
    ids = {c.id for c in claims.CLAIMS}
    assert {"loss-bands", "loss-clip-10", "gradient-aware", "gates", "blame-features", "failure-story"} <= ids


# --- rule 1: preconditions ------------------------------------------------------------------------------

def test_missing_arm_is_not_testable_and_names_the_role():
    [row] = _verdict(_evidence(_runs("control", "enhanced", 3)), "basic-stable")
    assert row["verdict"] == rules.NOT_TESTABLE and "baseline" in row["measured"]


def test_absolute_values_of_another_model_are_not_testable_whatever_they_measure():
    history = pd.DataFrame({"run_id": ["enhanced-0"] * 3, "step": [0, 1, 2], "metric": [record.LOSS_UNDAMPED] * 3,
                            "value": [9.1, 9.1, 9.1]})
    [row] = _verdict(_evidence(_runs("control", "enhanced", 1), history=history), "epoch1-enhanced")
    assert row["verdict"] == rules.NOT_TESTABLE and "another model" in row["measured"] and "9.1" in row["measured"]


def test_a_factor_claim_on_arms_that_differ_in_more_is_not_testable():
    groups = (_runs("control", "enhanced", 3, **{"optim.lr": 8e-5, "loss.huber": True}),
              _runs("baseline", "basic", 3, weighting="none", **{"optim.lr": 1e-5, "loss.huber": False}))
    [row] = _verdict(_evidence(*groups), "blame-features")
    assert row["verdict"] == rules.NOT_TESTABLE and "optim.lr" in row["measured"] and "isolates" in row["measured"]


# --- rule 2: the mechanism never acted, for either system ---------------------------------------------------

def test_old_weight_that_never_moved_makes_the_old_claims_not_reproduced_on_this_proxy():
    evidence = _evidence(_runs("control", "enhanced", 10, diverged=range(10), first_nonfinite=1, steps=3000))
    for id_ in ("old-fails", "old-nan-epoch", "failure-story"):
        [row] = _verdict(evidence, id_)
        assert row["verdict"] == rules.PROXY, (id_, row)
        assert claims.OLD_WEIGHT in row["measured"] and "step 41" in row["measured"]


def test_new_controller_that_never_adjusted_makes_its_claims_not_reproduced_on_this_proxy():
    evidence = _evidence(_runs("treatment", "stable_adaptive", 3, weighting="stable", steps=1800, per_epoch=3))
    [row] = _verdict(evidence, "bands")
    assert row["verdict"] == rules.PROXY and claims.NEW_CONTROLLER in row["measured"]


def test_prevention_counts_only_failures_after_both_systems_can_act():
    early = (_runs("control", "enhanced", 10, diverged=range(5), first_nonfinite=1),
             _runs("treatment", "stable_adaptive", 10, weighting="stable"))
    [row] = _verdict(_evidence(*early), "new-succeeds")
    assert row["verdict"] == rules.NOT_TESTABLE and "neither system can act" in row["measured"]


# --- rule 3: horizon --------------------------------------------------------------------------------------

def test_silence_before_the_claims_horizon_is_not_a_refutation():
    found = rules.judge(_claim("old-nan-epoch"), Measurement(parts=[Part("failure epoch", math.inf, 51.0,
                                                                          reached=False)]))
    assert found.verdict == rules.NOT_REPRODUCED
    reached = rules.judge(_claim("old-nan-epoch"), Measurement(parts=[Part("failure epoch", math.inf, 51.0)]))
    assert reached.verdict == rules.FAILS


def test_a_rate_that_can_only_rise_is_final_once_it_breaks_an_upper_bound():
    new = _claim("new-1000")   # "no NaN in 1000 epochs": one divergence refutes it at any horizon
    assert rules.judge(new, Measurement(parts=[Part("rate", 0.1, 0.0, reached=False, rises=True)])).verdict == rules.FAILS
    assert rules.judge(new, Measurement(parts=[Part("rate", 0.0, 0.0, reached=False, rises=True)])).verdict \
        == rules.NOT_REPRODUCED
    old = _claim("old-fails")   # "all fail": all failed early is final
    assert rules.judge(old, Measurement(parts=[Part("rate", 1.0, 1.0, reached=False, rises=True)])).verdict == rules.HOLDS


# --- rule 4: tolerance, intervals, two groups ------------------------------------------------------------

def test_comparisons_by_the_row_tolerance():
    fix = _claim("fix-14x")
    assert rules.judge(fix, Measurement(parts=[Part("ratio", 12.8, 14.0)])).verdict == rules.HOLDS
    assert rules.judge(fix, Measurement(parts=[Part("ratio", 7.35, 14.0)])).verdict == rules.FAILS
    six = _claim("six-x")
    assert rules.judge(six, Measurement(parts=[Part("ratio", 5.0, 6.0)])).verdict == rules.FAILS   # 5x is not 6x


def test_an_interval_across_zero_is_seed_noise():
    better = _claim("basic-better")
    noisy = Measurement(parts=[Part("difference", -0.1, 0.0, interval=(-0.3, 0.1))])
    assert rules.judge(better, noisy).verdict == rules.NOT_TESTABLE
    below = Measurement(parts=[Part("difference", -0.2, 0.0, interval=(-0.3, -0.1))])
    assert rules.judge(better, below).verdict == rules.HOLDS
    above = Measurement(parts=[Part("difference", 0.2, 0.0, interval=(0.1, 0.3))])
    assert rules.judge(better, above).verdict == rules.FAILS


def test_two_groups_say_does_not_hold_only_with_power():
    weak = rules.two_groups(Groups([5] * 3, 10, [5] * 3, 10))
    assert weak.verdict == rules.NOT_TESTABLE and "power" in weak.reason
    strong = rules.two_groups(Groups([5] * 8, 10, [5] * 7, 10))
    assert strong.verdict == rules.FAILS
    clear = rules.two_groups(Groups([5] * 5, 10, [], 10))
    assert clear.verdict == rules.HOLDS
    reversed_ = rules.two_groups(Groups([], 10, [5] * 6, 10))   # only the safer-claimed group failed, p = 0.005
    assert reversed_.verdict == rules.FAILS
    assert rules.two_groups(Groups([], 10, [5] * 1, 10)).verdict == rules.NOT_TESTABLE   # one failure: p = 0.5


def test_advice_with_no_failure_outside_in_enough_runs_does_not_hold_on_this_proxy():
    groups = (_runs("control", "enhanced", 10, **{"optim.lr": 8e-5}),
              _runs("baseline", "basic", 10, **{"optim.lr": 1e-5}))     # the advised setting alone differs
    [row] = _verdict(_evidence(*groups), "limit-lr")
    assert row["verdict"] == f"{rules.FAILS} {claims.ON_PROXY}"


def test_advice_on_runs_that_differ_in_more_than_the_advised_setting_is_not_testable():
    groups = (_runs("control", "enhanced", 10, diverged=range(5), first_nonfinite=1, **{"optim.lr": 8e-5}),
              _runs("baseline", "basic", 10, weighting="none", **{"optim.lr": 1e-5}))
    [row] = _verdict(_evidence(*groups), "limit-lr")
    assert row["verdict"] == rules.NOT_TESTABLE and "weighting.name" in row["measured"] and "isolates" in row["measured"]


def test_the_documents_own_setting_is_the_evidence_and_others_are_sensitivity_lines():
    groups = (_runs("control", "enhanced", 3, diverged=range(3), first_nonfinite=400, steps=300),
              _runs("control", "upstream", 3, diverged=range(3), first_nonfinite=1, precision="mixed_float16"))
    rows = _verdict(_evidence(*groups), "old-fails")
    assert [r["verdict"] for r in rows][1:] == [claims.SENSITIVITY]
    assert "enhanced" in rows[0]["evidence"] and "upstream" in rows[1]["evidence"]


def test_arithmetic_and_by_construction_rows_are_counted_apart():
    audited = claims.audit(_evidence(_runs("control", "enhanced", 1)))
    counts = claims.verdict_counts(audited)
    kinds = {kind for kind, _ in counts}
    assert claims.ARITHMETIC in kinds and claims.MEASURED in kinds
    assert counts[(claims.ARITHMETIC, rules.FAILS)] >= 3   # factor 0.52, the 0.7–1.3 range, the feedback direction


def test_a_claim_is_judged_only_in_its_home_report():
    audited = claims.audit(_evidence(_runs("control", "enhanced", 1)), report="before_after")
    assert (audited["verdict"].str.startswith("judged in reports/")).all()
    home = claims.audit(_evidence(_runs("control", "enhanced", 1)), report="spike_recovery")
    judged = home[home["verdict"].map(claims.base_verdict) != ""]
    assert set(judged["id"]) <= {"worked-2-old-run", "worked-2-new-run"}


@pytest.mark.parametrize("id_", [c.id for c in claims.CLAIMS if c.measure == "formula"])
def test_every_formula_row_judges_without_runs(id_):
    [row] = claims.judge(_evidence(_runs("control", "enhanced", 1)), _claim(id_))
    assert claims.base_verdict(row["verdict"]) in (rules.HOLDS, rules.FAILS)


# --- the main job's edge probe ----------------------------------------------------------------------------

def _probe_frame():
    from myxtts.record import Outcome, RunFacts

    rows = []
    for preset, system in (("enhanced", "old"), ("stable_adaptive", "new")):
        for lr, step in ((0.01, None), (0.0178, 2), (0.0316, 1)):
            rows.append({"run_id": f"{preset}-{lr}", "status": "FINISHED", T(record.PRESET): preset,
                         T(record.SYSTEM): system, T(record.OUTCOME): "stable" if step is None else "diverged",
                         T(record.OVERRIDDEN): f"optim.lr={lr:g}", "param.optim.lr": str(lr),
                         "facts": RunFacts(Outcome("stable" if step is None else "diverged"), 180 if step is None else 12,
                                           first_nonfinite_step=step)})
        rows.append({"run_id": f"{preset}-doc", "status": "FINISHED", T(record.PRESET): preset, T(record.SYSTEM): system,
                     T(record.OUTCOME): "stable", T(record.OVERRIDDEN): "", "param.optim.lr": "8e-05",
                     "facts": RunFacts(Outcome("stable"), 180)})
    return with_configs(pd.DataFrame(rows))


def test_a_rate_probe_beside_documented_runs_keeps_the_experiment_a_comparison():
    from analysis import frontier, tables

    runs = _probe_frame()
    assert list(tables.rate_probe(runs)) == [True, True, True, False] * 2
    assert not frontier.is_grid(runs)                              # documented runs: a comparison with a probe
    assert frontier.is_grid(runs[tables.rate_probe(runs)])         # the probe alone is a rate grid


def test_the_probe_answers_where_the_configurations_break_and_what_that_cannot_show():
    from analysis import report, tables

    runs = _probe_frame()
    documented = runs[~tables.rate_probe(runs)]
    section, answer = report._probe_section(tables.failures(documented), runs[tables.rate_probe(runs)], documented)
    assert len(answer) == 3
    assert "0 of 2 configurations diverged at their documented settings" in answer[0] and "other" not in answer[0]
    frozen = documented.assign(**{T(record.OUTCOME): ["stable", "frozen"]})
    _, answer = report._probe_section(tables.failures(frozen), runs[tables.rate_probe(runs)], frozen)
    assert "other failures: stable_adaptive 1/1 frozen" in answer[0]
    assert "`enhanced` diverged at lr 0.0178, 0.0316 (failure step 2, 1), stable at 0.01" in answer[1]
    assert "not testable at this horizon" in answer[2] and "step 410" in answer[2] and "guards" in answer[2]
    table = "\n".join(section)
    assert "| enhanced | old | 0.0316 | diverged | 1 |" in table
