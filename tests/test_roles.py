"""A preset says what it is, an experiment's sweep file says which configuration plays which role, the runner records
both on every new run, and analysis selects and orders configurations by them (runs recorded before the tags
existed are read from the same files)."""
import dataclasses

import pytest
import yaml
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient

from myxtts import record
from runner import lifecycle
from runner.preflight import CONF_DIR, options
from runner.schema import ConfigError, config_hash, validate


def _config(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def test_what_a_configuration_is_and_the_role_it_plays_change_no_configuration_hash():
    """The hash finds a configuration's run across sweeps: the same training under another description, documented
    rate or role is the same run."""
    enhanced = _config("sweep=claims", "+preset=enhanced")
    assert enhanced.role == "control" and enhanced.documented_lr == 8e-5
    relabelled = dataclasses.replace(enhanced, description="anything else", documented_lr=1.0,
                                     roles={"enhanced": "arm", "basic": "control"})
    assert config_hash(relabelled) == config_hash(enhanced)
    # Composed, too: the claims sweep's design with enhanced as an arm trains the same configuration.
    assert config_hash(_config("sweep=claims", "+preset=enhanced", "roles.enhanced=arm")) == config_hash(enhanced)
    # documented_lr is what the preset's optim.lr refers to: overriding it is overriding the rate trained.
    assert config_hash(_config("sweep=claims", "+preset=enhanced", "documented_lr=1e-4")) != config_hash(enhanced)


def test_every_preset_says_what_it_is_and_trains_at_its_documented_rate():
    descriptions = {}
    for name in options("preset"):
        own = yaml.safe_load((CONF_DIR / "preset" / f"{name}.yaml").read_text())
        assert own.get("description"), f"{name}: a preset describes itself (not through the preset it extends)"
        config = _config(f"+preset={name}")
        descriptions[config.description] = name
        if config.documented_lr is not None:
            assert config.optim.lr == config.documented_lr, name
    assert len(descriptions) == len(options("preset")), "two presets with one description"
    assert _config("+preset=basic").documented_lr == 1e-5 and _config("+preset=legacy").documented_lr is None
    # A sweep's rate replaces the rate trained, never the documented one.
    stressed = _config("sweep=frontier", "+preset=upstream_enhanced_tiny", "optim.lr=0.01")
    assert (stressed.optim.lr, stressed.documented_lr) == (0.01, 3e-5)


def _sweep(name):
    return yaml.safe_load((CONF_DIR / "sweep" / f"{name}.yaml").read_text())


def test_every_sweep_gives_the_presets_it_names_a_role():
    ablation_presets = {yaml.safe_load(p.read_text()).get("preset") for p in (CONF_DIR / "ablation").glob("*.yaml")}
    known = set(options("preset")) | ablation_presets
    by_experiment = {}
    for name in options("sweep"):
        design = _sweep(name).get("roles")
        assert design and set(design) <= known, (name, set(design or {}) - known)
        assert set(design.values()) <= set(record.ROLES), name
        # One experiment has one design, whichever stage of it runs (frontier and its refinement).
        assert by_experiment.setdefault(_sweep(name)["experiment"], design) == design, name
    assert _sweep("claims")["roles"]["enhanced"] == "control" and _sweep("positive_control")["roles"]["enhanced"] == "control"
    assert _sweep("frontier")["roles"]["enhanced_sgd"] == "arm" and _sweep("claims")["roles"]["legacy_log"] == "before_fix"


def test_a_role_outside_the_allowed_ones_is_one_line_naming_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError, match=r"^roles\.enhanced='lead' is invalid: allowed one of \['control', "):
        _config("sweep=claims", "+preset=enhanced", "roles.enhanced=lead")
    assert _config("+preset=enhanced", "+roles.enhanced=control").role == "control"
    assert _config("sweep=claims", "+preset=guards_only").role == "arm"            # named: an arm
    assert _config("sweep=baselines", "+preset=basic").role == record.DEFAULT_ROLE  # not named: an arm


def test_a_new_run_records_its_role_its_description_and_its_documented_rate(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("roles", artifact_location=(tmp_path / "art").as_uri())
    tags = {}
    for overrides in (["sweep=claims", "+preset=enhanced"], ["sweep=frontier", "+preset=enhanced_sgd", "optim.lr=0.01"],
                      ["+preset=legacy"]):
        config = _config(*overrides)
        run = lifecycle.claim(client, experiment, config, config_hash(config), config.preset, overrides, None)
        tags[config.preset] = client.get_run(run.run_id).data.tags
    assert (tags["enhanced"]["role"], tags["enhanced"]["documented_lr"]) == ("control", "8e-05")
    assert tags["enhanced"]["description"] == _config("+preset=enhanced").description
    assert (tags["enhanced_sgd"]["role"], tags["enhanced_sgd"]["documented_lr"]) == ("arm", "8e-05")
    assert tags["legacy"]["role"] == "arm" and "documented_lr" not in tags["legacy"]
    assert tags["legacy"]["description"] == "before the three-digit-loss fix"
