"""The outcome rules and the frontier's tables on small hand-built facts and run frames."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis import frontier
from frames import with_configs
from myxtts import record
from myxtts.backend import tf
from myxtts.training.health import RunHealth


@pytest.mark.parametrize("facts, expected", [
    ({"diverged": True, "update_steps": 10, "noop_steps": 10}, record.DIVERGED),          # diverged wins over all
    ({"diverged": False, "update_steps": 10, "noop_steps": 6}, record.FROZEN),            # most steps did nothing
    ({"diverged": False, "update_steps": 10, "noop_steps": 5}, record.STABLE),            # exactly half is not "most"
    ({"diverged": False, "update_steps": 10, "noop_steps": 0, "overflow_steps": 1, "loss_scale_moved": False}, record.FROZEN),
    ({"diverged": False, "update_steps": 10, "noop_steps": 0, "overflow_steps": 1, "loss_scale_moved": True}, record.STABLE),
    ({"diverged": False, "update_steps": 10, "noop_steps": 0, "initial_validation": 1.0, "best_validation": 0.95},
     record.NOT_LEARNING),
    ({"diverged": False, "update_steps": 10, "noop_steps": 0, "initial_validation": 1.0, "best_validation": 0.85}, record.STABLE),
    ({"diverged": False, "update_steps": 10, "noop_steps": 0, "initial_validation": 1.0, "best_validation": None},
     record.NOT_LEARNING),
    ({"diverged": False, "update_steps": 10, "noop_steps": 0, "initial_validation": None, "best_validation": None},
     record.STABLE),
])
def test_outcome_rules(facts, expected):
    assert record.classify(**facts) == expected


def test_run_facts_round_trip_through_tags_and_read_records_written_before_them():
    facts = record.RunFacts(record.DIVERGED, 14, diverged_at_step=13, first_nonfinite_step=4, best_validation=0.5,
                            spiky=True, update_steps=14, noop_steps=2, train_seconds=3.2, nan_origin_layer="decoder")
    tags = facts.to_tags()
    assert tags[record.OUTCOME] == "diverged" and tags[record.SPIKY] == "true" and tags[record.LOSS_SCALE_MOVED] == "false"
    assert tags[record.INITIAL_VALIDATION] == "" and record.SAMPLE not in tags   # blank where the record says so
    assert record.RunFacts.from_tags(tags) == facts
    # A record written before RunFacts: Python's bool spelling, unknown values as "", extra tags ignored.
    old = {record.OUTCOME: "stable", record.STEPS_COMPLETED: "300", record.DIVERGED_AT_STEP: "",
           record.LOSS_SCALE_MOVED: "False", record.BEST_VALIDATION: "0.3557741940021515", record.PRESET: "basic"}
    read = record.RunFacts.from_tags(old)
    assert read.outcome is record.STABLE and read.loss_scale_moved is False and read.best_validation == 0.3557741940021515
    assert read.diverged_at_step is None and read.steps_completed == 300
    assert record.RunFacts.from_tags({record.OUTCOME: "failed", record.ERROR: "boom"}) is None
    assert record.RunFacts.from_tags({record.PRESET: "basic"}) is None
    with pytest.raises(ValueError, match="tag steps_completed='many': allowed is an integer"):
        record.RunFacts.from_tags({record.OUTCOME: "stable", record.STEPS_COMPLETED: "many"})
    with pytest.raises(ValueError, match="tag outcome='exploded': allowed is stable, diverged, frozen"):
        record.RunFacts.from_tags({record.OUTCOME: "exploded", record.STEPS_COMPLETED: "3"})


def test_run_health_counts_noop_steps_spikes_after_warmup_and_a_stuck_loss_scale():
    health = RunHealth(warmup_steps=2, loss_scale_start=2.0 ** 15)
    t, f = tf.constant(True), tf.constant(False)
    steps = [  # (applied, produced finite, update norm, loss)
        (t, t, 1.0, 10.0), (t, t, 1.0, 40.0),    # step 1: 4x the minimum, but inside the warmup
        (f, f, 0.0, 5.0), (t, f, 0.5, 4.0),       # skipped; applied from non-finite (zeroed) gradients
        (t, t, 0.0, 13.0), (t, t, 1.0, 3.0)]      # weights did not move, and a 3.25x spike after warmup
    flags = [health(tf.constant(i, tf.int64), t, a, p, tf.constant(n), tf.constant(loss), tf.constant(2.0 ** 15))
             for i, (a, p, n, loss) in enumerate(steps)]
    facts = health.facts()
    assert [float(x[record.HEALTH_NOOP]) for x in flags] == [0, 0, 1, 1, 1, 0]
    assert [float(x[record.HEALTH_SPIKE]) for x in flags] == [0, 0, 0, 0, 1, 0]
    assert facts == {record.UPDATE_STEPS: 6, record.NOOP_STEPS: 3, record.OVERFLOW_STEPS: 2, record.SPIKE_STEPS: 1,
                     record.LOSS_SCALE_MOVED: False}


TINY, SMALL = "tiny (0.78 M)", "small (7.1 M)"


def _runs(cells, size="tiny", experiment="scaling"):
    """cells: (preset, lr, outcome, final, initial) per run → a runs frame as analysis.load makes it from a grid
    sweep: each rate an override of the preset's own, each preset's role from `experiment`'s sweep file."""
    rows = [{"run_id": f"r{i}", "status": "FINISHED", "tag.preset": p, "param.optim.lr": str(lr),
             "param.model.size": size, "tag.outcome": o, "tag.final_validation": "" if fin is None else str(fin),
             "tag.initial_validation": str(ini), "tag.spiky": "false", "tag.overridden": f"optim.lr={lr}"}
            for i, (p, lr, o, fin, ini) in enumerate(cells)]
    return with_configs(pd.DataFrame(rows)).assign(experiment=experiment)


def test_every_table_groups_by_configuration_and_size():
    grid = [1e-3, 1e-2, 1e-1]
    tiny = _runs([("a", lr, o, 0.5, 1.0) for lr, o in zip(grid, ["stable", "stable", "diverged"])])
    small = _runs([("a", lr, o, 0.5, 1.0) for lr, o in zip(grid, ["stable", "diverged", "diverged"])], size="small")
    small["run_id"] = "s" + small["run_id"]
    runs = pd.concat([small, tiny], ignore_index=True)
    table = frontier.critical_table(runs).set_index("size")
    assert list(table.index) == [TINY, SMALL]     # sizes from small to large, whatever the runs' order
    assert table.loc[TINY, "first diverging lr"] == 1e-1 and table.loc[SMALL, "first diverging lr"] == 1e-2
    assert set(frontier.refinement_plan(runs)) == {("a", TINY), ("a", SMALL)}
    assert set(frontier.sensitivity(runs)["size"]) == {TINY, SMALL}


def test_critical_rate_interpolates_and_brackets_with_wilson_intervals():
    cells = [("a", 1e-3, "stable", 0.5, 1.0)] * 5 + [("a", 1e-2, "stable", 0.4, 1.0)] * 4 + \
        [("a", 1e-2, "diverged", None, 1.0)] + [("a", 1e-1, "diverged", None, 1.0)] * 5
    table = frontier.outcome_table(_runs(cells))
    assert list(table["divergence rate"]) == [0.0, 0.2, 1.0]
    found = frontier.critical_rate(table)
    # 0.2 → 1.0 crosses 1/2 at 3/8 of the decade from 1e-2 to 1e-1.
    assert found["critical lr"] == pytest.approx(10 ** (-2 + 0.375))
    # 1e-2 (1/5, Wilson high 0.62) is not clearly below 1/2; 1e-3 (0/5, high 0.43) is; 1e-1 (5/5) is above.
    assert (found["interval low"], found["interval high"]) == (1e-3, 1e-1)
    assert (found["last lr without divergence"], found["first diverging lr"]) == (1e-3, 1e-2)


def test_one_seed_per_rate_leaves_the_interval_open_and_edges_are_said():
    table = frontier.outcome_table(_runs([("a", 1e-3, "stable", 0.5, 1.0), ("a", 1e-2, "diverged", 0.9, 1.0)]))
    found = frontier.critical_rate(table)
    assert found["critical lr"] == pytest.approx(10 ** -2.5) and found["interval"] == "[open, open]"
    never = frontier.critical_rate(frontier.outcome_table(_runs([("a", 1e-3, "stable", 0.5, 1.0)])))
    assert math.isnan(never["critical lr"]) and never["critical lr (text)"].startswith("> 0.001")


def test_lr_sensitivity_caps_failures_at_the_initial_loss():
    cells = [("a", 1e-3, "stable", 0.6, 1.0), ("a", 1e-2, "stable", 0.4, 1.0), ("a", 1e-1, "diverged", None, 1.0),
             ("b", 1e-3, "not_learning", 1.2, 1.0), ("b", 1e-2, "stable", 0.5, 1.0), ("b", 1e-1, "stable", 0.5, 1.0)]
    table = frontier.sensitivity(_runs(cells)).set_index("configuration")
    # a: (0.6-0.4 + 0 + 1.0-0.4) / 3; b: the 1.2 is capped at 1.0 → (0.5 + 0 + 0) / 3.
    assert table.loc["a", "LR sensitivity"] == pytest.approx(0.8 / 3)
    assert table.loc["b", "LR sensitivity"] == pytest.approx(0.5 / 3)
    assert table.loc["a", "at lr"] == 1e-2


def test_refinement_goes_between_the_last_all_stable_and_the_first_failing_grid_rate():
    grid = [1e-3, 1e-2, 1e-1]
    cells = [("a", lr, o, 0.5, 1.0) for lr, o in zip(grid, ["stable", "stable", "diverged"])] + \
        [("b", lr, o, 0.5, 1.0) for lr, o in zip(grid, ["stable", "stable", "stable"])] + \
        [("c", lr, o, 0.5, 1.0) for lr, o in zip(grid, ["diverged", "diverged", "diverged"])]
    plan = frontier.refinement_plan(_runs(cells))
    assert set(plan) == {("a", TINY)}   # b never fails; c fails everywhere, so there is no bracket to refine
    assert np.allclose(plan[("a", TINY)], [10 ** (-2 + 1 / 3), 10 ** (-2 + 2 / 3)], rtol=1e-2)
    assert frontier.is_grid(_runs(cells)) and not frontier.is_grid(_runs(cells[:1]))


def test_the_stabilizers_are_compared_with_the_control_at_the_same_rates():
    grid = [1e-3, 1e-2, 1e-1]
    cells = [("enhanced", lr, o, f, 1.0) for lr, o, f in zip(grid, ["stable", "diverged", "diverged"], [0.5, None, None])]
    cells += [("enhanced_qk_norm", lr, o, f, 1.0) for lr, o, f in zip(grid, ["stable", "stable", "diverged"],
                                                                      [0.5, 0.4, None])]
    runs = _runs(cells)
    table = frontier.stabilizer_table(frontier.critical_table(runs), frontier.sensitivity(runs), runs)
    table = table.set_index("configuration")
    # enhanced: 1e-3 → 1e-2 crosses 1/2 at 10^-2.5; qk-norm: 1e-2 → 1e-1 at 10^-1.5, ten times higher.
    assert table.loc["enhanced", "x control"] == pytest.approx(1.0)
    assert table.loc["enhanced_qk_norm", "x control"] == pytest.approx(10.0)
    # sensitivities: enhanced (0 + 0.5 + 0.5) / 3; qk-norm (0.1 + 0 + 0.6) / 3.
    assert table.loc["enhanced_qk_norm", "x control sensitivity"] == pytest.approx(0.7 / 1.0)
    assert "literature" in table.loc["enhanced_qk_norm", "description"]


def test_prevention_is_tested_only_where_both_have_enough_seeds_and_in_both_directions():
    cells = ([("enhanced", 1.3e-2, "diverged", math.nan, 1.0)] * 5 + [("stable_adaptive", 1.3e-2, "stable", 0.5, 1.0)] * 5
             + [("enhanced_sgd", 1.3e-2, "diverged", math.nan, 1.0)] * 5
             + [("enhanced", 1e-2, "stable", 0.5, 1.0)] + [("stable_adaptive", 1e-2, "diverged", math.nan, 1.0)])
    table = frontier.prevention_table(_runs(cells)).set_index("configuration")
    assert set(table.index) == {"stable_adaptive", "enhanced_sgd"}      # 1 seed at 1e-2 is no test
    assert table.loc["stable_adaptive", "control failed"] == "5/5" and table.loc["stable_adaptive", "failed"] == "0/5"
    assert table.loc["stable_adaptive", "p (control fails more)"] == pytest.approx(1 / 252)
    assert table.loc["enhanced_sgd", "p (control fails more)"] == 1.0
    assert frontier.prevention_table(_runs(cells[-2:])).empty


def test_the_stress_facts_bound_the_advised_rate_only_by_configurations_that_have_an_edge():
    from analysis.report import _stress_facts

    nan = float("nan")
    critical = pd.DataFrame({"configuration": ["enhanced", "basic", "upstream_fp16"], "size": [TINY] * 3,
                             "last lr without divergence": [0.0126, 0.0126, nan], "first diverging lr": [0.0159, 0.0159, 1e-4],
                             "critical lr": ["0.0173", "0.0165", "<= 0.0001"], "interval": ["[0.0126, open]"] * 2 + ["—"]})
    runs = _runs([(p, 1e-3, "stable", 0.5, 1.0) for p in ["enhanced", "basic", "upstream_fp16"]], experiment="lr_stress")
    facts = _stress_facts(critical, runs)
    assert "`enhanced` at its documented lr 8e-05 lies 158x below its last rate without divergence 0.0126" in facts[0]
    assert ("the lowest rate at which a configuration with a rate without divergence diverged is 0.0159 (enhanced), "
            "795x that limit; upstream_fp16 diverged at every rate trained, from 0.0001 (5x the limit)") in facts[1]
    sized = _stress_facts(pd.concat([critical, critical.assign(size=SMALL)], ignore_index=True), runs)
    assert f"`enhanced at {SMALL}` at its documented lr 8e-05" in sized[0]


def test_failure_timing_says_when_each_failure_happened_against_the_old_weights_first_possible_move():
    runs = _runs([("a", 1e-2, "diverged", None, 1.0), ("a", 1e-2, "diverged", None, 1.0), ("a", 1e-2, "stable", 0.4, 1.0),
                  ("a", 1e-3, "stable", 0.5, 1.0), ("b", 1e-2, "not_learning", 0.95, 1.0)])
    runs["facts"] = [record.RunFacts(outcome=record.Outcome.DIVERGED, steps_completed=2, diverged_at_step=1),
                     record.RunFacts(outcome=record.Outcome.DIVERGED, steps_completed=900, diverged_at_step=899),
                     record.RunFacts(outcome=record.Outcome.STABLE, steps_completed=3000),
                     record.RunFacts(outcome=record.Outcome.STABLE, steps_completed=3000),
                     record.RunFacts(outcome=record.Outcome.NOT_LEARNING, steps_completed=3000)]
    timing = frontier.failure_timing(runs)
    assert list(timing["configuration"]) == ["a", "b"]    # the rate without a failure has no row
    a, b = timing.iloc[0], timing.iloc[1]
    assert (a["lr"], a["failed"], a["failed at step"], a["first"], a["last"]) == (1e-2, "2/3", "1, 899", 1, 899)
    assert a["at or after the old weight can move"] == "1 (step ≥ 410)"
    assert b["failed at step"] == "3000" and b["at or after the old weight can move"] == "1 (step ≥ 410)"


def test_the_edge_is_defined_by_divergence_alone():
    """A rate whose runs froze or did not learn is reported in the outcome table but does not move the edge."""
    cells = [("a", 1e-3, "stable", 0.5, 1.0), ("a", 1e-2, "frozen", 0.9, 1.0), ("a", 3e-2, "not_learning", 1.0, 1.0),
             ("a", 1e-1, "diverged", None, 1.0)]
    table = frontier.outcome_table(_runs(cells))
    assert list(table["divergence rate"]) == [0.0, 0.0, 0.0, 1.0]
    assert (table["frozen"].sum(), table["not_learning"].sum()) == (1, 1)
    found = frontier.critical_rate(table)
    assert (found[frontier.LAST_CALM], found[frontier.FIRST_DIVERGING]) == (3e-2, 1e-1)
