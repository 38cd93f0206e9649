"""Plain data back into the settings classes (myxtts/typed.py): the reader of recorded configurations."""
import dataclasses

import pytest

from myxtts import typed
from myxtts.training.settings import WEIGHTING_SETTINGS, LegacyTanhSettings, TrainingSettings


def test_a_recorded_configuration_reads_back_equal_from_yaml_values_and_from_param_text():
    settings = TrainingSettings(weighting=LegacyTanhSettings())
    plain = dataclasses.asdict(settings)
    assert typed.build(TrainingSettings, plain) == settings

    def as_params(node, prefix=""):   # as the runner logs them: dotted keys, str() values
        flat = {}
        for key, value in node.items():
            flat.update(as_params(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": str(value)})
        return flat
    assert typed.build(TrainingSettings, typed.unflatten(as_params(plain))) == settings


def test_the_weighting_field_names_its_variants_and_every_strategy_registered_itself():
    assert typed.variants(TrainingSettings, "weighting") is WEIGHTING_SETTINGS
    assert set(WEIGHTING_SETTINGS) == {"none", "legacy_tanh", "stable", "uncertainty", "dwa", "gradnorm"}
    assert typed.field_class(TrainingSettings, "weighting", {"name": "dwa"}) is WEIGHTING_SETTINGS["dwa"]
    assert typed.field_class(TrainingSettings, "seed", 3) is None


@pytest.mark.parametrize("values, error", [
    ({"optim": {"lr": "fast"}}, "optim.lr='fast' is not a float"),
    ({"optim": {"lr": -1.0}}, "optim.lr=-1.0 is invalid: allowed a finite number > 0"),
    ({"optim": {"rate": 1.0}}, "optim.rate is not a setting of OptimizerSettings"),
    ({"weighting": {"name": "magic"}}, "weighting.name='magic' is not one of"),
    ({"loss": {"huber": "maybe"}}, "loss.huber='maybe' is not a boolean"),
])
def test_a_configuration_the_settings_reject_names_the_key(values, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(".", r"\.")):
        typed.build(TrainingSettings, values)
