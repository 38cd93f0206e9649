"""The size axis's fit on hand-made tables: a known slope comes back, an open bracket widens the slope range,
brackets no line passes through are said to be so."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis import scaling

SIZES = [1e6, 1e7, 1e8, 1e9]


def _table(points, low_factor=0.8, high_factor=1.25):
    points = np.asarray(points, float)
    return pd.DataFrame({"parameters": SIZES, "critical lr": points, "interval low": points * low_factor,
                         "interval high": points * high_factor})


def test_a_known_slope_comes_back_and_the_bracket_range_contains_it():
    table = _table([1e-2 * (p / 1e6) ** -0.5 for p in SIZES])      # slope -0.5 in log-log
    found = scaling.fit(table)
    assert found.slope == pytest.approx(-0.5) and found.consistent
    assert found.slope_low < -0.5 < found.slope_high and math.isfinite(found.slope_low)
    assert found.predict(1e8) == pytest.approx(1e-3)
    low, high = scaling.prediction_range(table, 1e10)
    assert low < 1e-2 * (1e4) ** -0.5 < high


def test_an_open_bracket_widens_the_slope_range():
    closed = _table([1e-2 * (p / 1e6) ** -0.5 for p in SIZES])
    opened = closed.copy()
    opened.loc[3, "interval high"] = math.nan      # the largest size: only a lower bound
    opened.loc[0, "interval low"] = math.nan       # the smallest: only an upper bound
    a, b = scaling.fit(closed), scaling.fit(opened)
    assert b.slope_low <= a.slope_low and b.slope_high > a.slope_high
    assert b.slope_high == math.inf or b.slope_high > a.slope_high


def test_brackets_no_line_passes_through_are_said_to_be_so():
    zigzag = _table([1e-2, 1e-4, 1e-2, 1e-4], low_factor=0.9, high_factor=1.1)
    found = scaling.fit(zigzag)
    assert not found.consistent and math.isnan(found.slope_low)
    assert all(math.isnan(v) for v in scaling.prediction_range(zigzag, 1e10))


def test_untrained_shapes_are_predicted_from_the_line_and_not_where_no_line_fits():
    table = _table([1e-2 * (p / 1e6) ** -0.5 for p in SIZES])
    (row,) = scaling.predictions("a", table, scaling.fit(table), {"big": 1e10})
    assert row["least-squares prediction"] == pytest.approx(1e-4)
    low, high = (float(v) for v in row["range through every bracket"].strip("[]").split(","))
    assert low < 1e-4 < high
    zigzag = _table([1e-2, 1e-4, 1e-2, 1e-4], low_factor=0.9, high_factor=1.1)
    (row,) = scaling.predictions("a", zigzag, scaling.fit(zigzag), {"big": 1e10})
    assert math.isnan(row["least-squares prediction"]) and "not extrapolated" in row["range through every bracket"]


@pytest.mark.slow
def test_a_two_size_two_rate_scaling_sweep_end_to_end(tmp_path, small_corpus):
    """sweep=scaling as a user runs it, shrunk: tiny and small at a calm and a diverging rate, into a temporary
    store, rendered to a report with the size section and both figures."""
    from launch import base_args, run

    result = run(["-m", "sweep=scaling", "+preset=enhanced", "model=tiny,small", "optim.lr=1e-3,1.0",
                  "trainer.steps=20", "trainer.validate_every=10", "data.subset=null", "trainer.synthesize=false",
                  *base_args(tmp_path, small_corpus)])
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "reports" / "scaling"
    report = (folder / "report.md").read_text()
    assert "## Model size" in report and "small (7.1 M)" in report and "tiny (0.78 M)" in report
    assert "| enhanced | small (7.1 M) | 1 | 1 | 0 | 1 |" in report       # the outcome table at lr 1: diverged
    assert (folder / "final_loss_vs_lr.png").stat().st_size > 10_000
    assert (folder / "critical_rate_vs_size.png").stat().st_size > 10_000
    assert "step-1 logit" in report                                   # diagnostics.dense_steps recorded step 1
    assert "| enhanced | 2 | -" in report or "| enhanced | 2 |" in report  # a least-squares slope through 2 sizes


def test_the_figure_is_skipped_when_no_size_has_a_bracket(tmp_path):
    from analysis import figures

    nothing = pd.DataFrame({"configuration": ["a"], "parameters": [1e6], "critical lr": [math.nan],
                            "interval low": [math.nan], "interval high": [math.nan]})
    assert figures.critical_rate_vs_size(nothing, {}, {"x": 1e-5}, tmp_path / "f.png") is None


def test_a_documented_rate_is_unsafe_from_the_smallest_size_whose_interval_lies_below_it():
    points = pd.DataFrame({"size": ["tiny", "base"], "parameters": [7.8e5, 8.5e7], "critical lr": [1e-2, 2.5e-5],
                           "interval low": [5e-3, 1.25e-5], "interval high": [2e-2, 5e-5]})
    rows = scaling.unsafe_from("enhanced", points, scaling.fit(points), {"8e-5": 8e-5, "1e-5": 1e-5})
    found = {row["documented rate"]: row for row in rows}
    assert found["8e-5"]["unsafe from (measured)"] == "base"            # base's whole interval lies below 8e-5
    assert found["1e-5"]["unsafe from (measured)"] == "not up to base"
    assert found["1e-5"]["least-squares line reaches it at (extrapolated)"].endswith("parameters")
