"""The late-failure search's rules on hand-built inputs: the criterion, the power computation, the prevention
verdict's order, and the search table's late failures."""
import math

import pandas as pd
import pytest

from analysis import late, rules
from analysis.stats import fisher_power, seeds_for_power, smallest_detectable_rate
from frames import with_configs
from myxtts import record


def test_the_power_computation_gives_the_known_values():
    # One-sided Fisher exact, alpha 0.05, a control rate against none: 50 % needs 10 seeds per arm, 30 % needs 21.
    assert seeds_for_power(0.5) == 10 and seeds_for_power(0.3) == 21
    assert fisher_power(0.3, 10, 0.0, 10) == pytest.approx(0.3504, abs=1e-4)
    assert smallest_detectable_rate(10, 10) == 0.49 and smallest_detectable_rate(1, 1) == math.inf


@pytest.mark.parametrize(("late_failures", "seeds", "met"), [
    (3, 10, True), (8, 10, True), (5, 12, True), (2, 10, False), (9, 10, False), (3, 5, False), (0, 10, False)])
def test_the_late_failure_criterion(late_failures, seeds, met):
    assert late.meets_criterion(late_failures, seeds) is met


def test_a_late_failure_is_after_both_systems_can_act():
    assert max(late.OLD_CAN_ACT, late.NEW_CAN_ACT) == late.LATE_AFTER and late.OLD_CAN_ACT > late.NEW_CAN_ACT
    assert str(late.LATE_AFTER) in late.criterion_text()


def test_failures_before_the_controllers_act_make_prevention_not_testable_for_both_systems():
    early = rules.prevention([1, 2, 1], 10, [1, 2, 2], 10, acts_from=late.LATE_AFTER)
    assert early.verdict == rules.NOT_TESTABLE and "neither system can act" in early.reason
    reverse = rules.prevention([1, 2, 2], 10, [1, 2, 1], 10, acts_from=late.LATE_AFTER)   # the other system as control
    assert reverse.verdict == rules.NOT_TESTABLE


def test_prevention_holds_fails_or_is_underpowered_by_its_test():
    after = late.LATE_AFTER + 1
    assert rules.prevention([after] * 5, 10, [], 10, late.LATE_AFTER).verdict == rules.HOLDS        # p = 0.016
    underpowered = rules.prevention([after] * 3, 10, [after] * 3, 10, late.LATE_AFTER)
    assert underpowered.verdict == rules.NOT_TESTABLE and "49%" in underpowered.reason
    powered = rules.prevention([after] * 8, 10, [after] * 7, 10, late.LATE_AFTER)
    assert powered.verdict == rules.FAILS and powered.power >= 0.8


def _facts(outcome, nonfinite=None, diverged=None, steps=3000):
    return record.RunFacts(outcome=record.Outcome(outcome), steps_completed=steps, first_nonfinite_step=nonfinite,
                           diverged_at_step=diverged, train_seconds=900.0)


def _search_runs(cells, seeds):
    runs = with_configs(pd.DataFrame([
        {"run_id": f"r{i}", "status": "FINISHED", "tag.preset": p, "tag.system": "old", "param.optim.lr": str(lr),
         "param.trainer.steps": "3000", "tag.seed": str(seed), **{f"tag.{k}": v for k, v in f.to_tags().items()}}
        for i, ((p, lr, f), seed) in enumerate(zip(cells, seeds))]))
    runs["facts"] = [f for _, _, f in cells]
    return runs


def test_a_candidate_is_confirmed_on_fresh_seeds_only():
    late_run, calm = _facts("diverged", 900, 909), _facts("stable")
    stage_one = [("w", 0.03, late_run), ("w", 0.03, late_run), ("w", 0.03, calm)]
    fresh = [("w", 0.03, late_run)] * 2 + [("w", 0.03, calm)] * 8            # 2 of 10 fresh seeds: below 30 %
    table = late.search_table(_search_runs(stage_one + fresh, seeds=[0, 1, 2, *range(3, 13)]))
    assert table.loc[0, "stage-1 late"] == "2/3" and table.loc[0, "confirmation late"] == "2/10"
    assert late.search_outcome(table)["confirmed"].empty      # 4/13 over all seeds would have passed: selection bias
    more = [("w", 0.03, late_run)] * 3 + [("w", 0.03, calm)] * 7
    table = late.search_table(_search_runs(stage_one + more, seeds=[0, 1, 2, *range(3, 13)]))
    assert len(late.search_outcome(table)["confirmed"]) == 1 and "3/10 fresh seeds" in late.search_outcome(table)["statement"]


def test_the_search_table_counts_late_failures_per_arm_and_rate():
    cells = [("enhanced_warmup30", 0.03, _facts("diverged", 900, 909)), ("enhanced_warmup30", 0.03, _facts("stable")),
             ("enhanced_warmup30", 0.03, _facts("diverged", None, 2)),           # exploded while finite, early
             ("enhanced_warmup30", 0.04, _facts("diverged", 50, 59)), ("enhanced_warmup30", 0.04, _facts("frozen"))]
    runs = _search_runs(cells, seeds=[0, 1, 2, 0, 1])
    table = late.search_table(runs).set_index("lr")
    assert table.loc[0.03, "late failures"] == 1 and table.loc[0.03, "failure steps"] == "2, 900"
    assert table.loc[0.04, "late failures"] == 0 and table.loc[0.04, "frozen"] == 1
    assert table.loc[0.03, "training hours"] == pytest.approx(0.75)
    found = late.search_outcome(late.search_table(runs))
    assert len(found["candidates"]) == 1 and found["confirmed"].empty and "need 10 fresh seeds" in found["statement"]
    calm = late.search_table(runs[runs["tag.outcome"] != "diverged"])
    statement = late.search_outcome(calm)["statement"]
    assert "no late failure in the 2 control arm-rate(s) run; this is the search's answer only" in statement
    assert "still training" in late.search_outcome(calm, still_training=2)["statement"]


def test_the_search_says_in_how_many_old_system_runs_the_old_weight_moved_late():
    history = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3, "metric": [record.WEIGHT_MEL] * 6,
                            "step": [0, 300, 500, 0, 300, 500], "value": [2.0, 2.2, 2.2, 2.0, 2.0, 2.1]})
    assert late._moved_late(history, ["a", "b"]) == {"b"}   # a moved before step 410 only
    assert late._moved_late(None, ["a"]) == set()
