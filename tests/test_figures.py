"""Figures a reader can read: distinct series, one feature scale per axis, small multiples beyond a few series."""
import pandas as pd

from analysis import figures
from frames import with_configs


def _runs(presets_by_scale):
    rows = [{"run_id": f"{preset}-0", "tag.preset": preset, "param.data.features.scale": scale}
            for scale, presets in presets_by_scale.items() for preset in presets]
    runs = with_configs(pd.DataFrame(rows))
    wide = pd.DataFrame({run_id: [1.0, 0.9] for run_id in runs["run_id"]})
    return runs, wide


def test_every_style_is_distinct():
    assert len(set(figures.STYLES)) == len(figures.STYLES) >= 3 * figures.MAX_SERIES_PER_AXIS


def test_losses_on_different_feature_scales_never_share_an_axis():
    runs, wide = _runs({"standardized": ["enhanced", "basic"], "log": ["upstream"]})
    panels = figures._loss_panels(runs, wide)
    assert [(title, [m[0] for m in members]) for title, members in panels] == \
        [("standardized features", ["basic", "enhanced"]), ("log features", ["upstream"])]


def test_more_series_than_an_axis_holds_become_small_multiples():
    many = [f"p{i}" for i in range(figures.MAX_SERIES_PER_AXIS + 1)]
    runs, wide = _runs({"standardized": many})
    panels = figures._loss_panels(runs, wide)
    assert len(panels) == len(many) and all(len(members) == 1 for _, members in panels)
