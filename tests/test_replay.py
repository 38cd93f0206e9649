"""The design note's scenarios replayed through every strategy (the strategies run in a child process)."""
import pytest

from analysis import replay
import itertools


@pytest.fixture(scope="module")
def results():
    return replay.run_strategies()


def test_replay_covers_both_scenarios_and_every_strategy(results):
    assert set(results["scenarios"]) == {"decreasing_then_spike", "plateau_spike_recovery"}
    for data in results["scenarios"].values():
        assert set(data["strategies"]) == {"none", "legacy_tanh", "stable", "uncertainty", "dwa", "gradnorm"}
        assert all(len(s["weight"]) == len(data["loss"]) for s in data["strategies"].values())


def test_old_formula_never_climbs_above_base_and_new_waits_for_warmup(results):
    scenario = results["scenarios"]["decreasing_then_spike"]["strategies"]
    assert max(scenario["legacy_tanh"]["weight"]) <= 2.5  # the note prints a climb to 5.0
    stable = scenario["stable"]["weight"]
    assert set(stable[:100]) == {2.5}
    changes = [i for i in range(1, len(stable)) if stable[i] != stable[i - 1]]
    assert changes and all(b - a >= 50 for a, b in itertools.pairwise(changes))
    assert all(abs(stable[i] / stable[i - 1] - 1) <= 0.05 + 1e-6 for i in changes)


def test_spike_scenario_matches_the_notes_dampened_numbers(results):
    stable = results["scenarios"]["plateau_spike_recovery"]["strategies"]["stable"]
    assert stable["weight"][101] == stable["weight"][100] == 2.5
    assert stable["decision"][101] == "unstable"
    assert stable["weighted_loss"][101] == pytest.approx(10.0)  # 2.5 x (100 x 2/50), as the note prints


def test_markdown_places_measured_next_to_printed(results, tmp_path):
    text = replay.write(tmp_path, results).read_text()
    assert "old (printed)" in text and "new (printed)" in text and "legacy_tanh" in text
    assert "| 250 | 1 | 5 | 2.4 | 2 |" in text  # the note prints 5.0 for the old system; the formula gives 2.0


def test_json_for_the_claims_audit(results, tmp_path):
    import json

    from myxtts.training.weighting import StableWeighting

    replay.write(tmp_path, results)
    saved = json.loads((tmp_path / "replay.json").read_text())
    assert saved["base_weight"] == 2.5 and len(saved["safety_checks"]) == len(StableWeighting.SAFETY_CHECKS)
    for _, method in StableWeighting.SAFETY_CHECKS:      # every counted check names a method that exists
        assert callable(getattr(StableWeighting, method))
    first = saved["scenarios"]["decreasing_then_spike"]
    assert first["printed"]["old (printed)"]["400"] is None and first["printed"]["old (printed)"]["250"] == 5.0
    assert len(first["strategies"]["stable"]["weight"]) == len(results["scenarios"]["decreasing_then_spike"]["loss"])
