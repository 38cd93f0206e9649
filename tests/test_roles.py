"""A preset says what it is, an experiment's sweep file says which configuration plays which role, the runner records
both on every new run, and analysis selects and orders configurations by them (runs recorded before the tags
existed are read from the same files)."""
import dataclasses
import math

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient

from analysis import frontier, report, roles, tables
from frames import with_configs
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


def _runs(rows):
    """A runs frame as analysis/load.py makes it: rows of (preset, role tag or "", experiment)."""
    return pd.DataFrame([{"run_id": f"r{i}", "tag.preset": preset, "tag.role": role, "experiment": experiment}
                         for i, (preset, role, experiment) in enumerate(rows)])


def test_analysis_reads_the_role_tag_else_the_experiments_sweep_file_else_arm():
    runs = _runs([("enhanced", "treatment", "claims"),     # tagged: the tag wins
                  ("enhanced", "", "claims"),              # recorded before the tag: the sweep file's design
                  ("legacy_log", "", "claims"), ("guards_only", "", "claims"),
                  ("basic", "", "frontier"),               # frontier_refine.yaml names the same experiment
                  ("enhanced", "", "no_such_experiment")])  # no sweep file: an arm
    assert roles.role(runs).tolist() == ["treatment", "control", "before_fix", "arm", "baseline", "arm"]
    assert roles.with_role(runs, "control")["run_id"].tolist() == ["r1"]
    assert roles.with_role(runs, "baseline")["run_id"].tolist() == ["r4"]
    assert roles.with_role(runs, "weighting_only").empty
    with pytest.raises(ValueError, match=r"role 'contol' is unknown: allowed one of \['control'"):
        roles.with_role(runs, "contol")
    assert roles.role(runs.drop(columns=["experiment", "tag.role"])).eq("arm").all()   # a hand-built frame


def test_analysis_reads_the_description_and_documented_rate_from_the_tags_else_the_preset_files():
    runs = pd.DataFrame({"tag.preset": ["enhanced", "enhanced_warmup", "legacy", "upstream-scale", "unknown"],
                         "tag.description": ["as recorded", "", "", "", ""],
                         "tag.documented_lr": ["1e-3", "", "", "", ""]})
    described = roles.description(runs).tolist()
    assert described[0] == "as recorded" and described[1] == _config("+preset=enhanced_warmup").description
    assert described[3].startswith("upstream with one factor corrected") and described[4] == ""
    rates = roles.documented_lr(runs).tolist()
    assert rates[:2] == [1e-3, 8e-5] and math.isnan(rates[2]) and rates[3] == 8e-5 and math.isnan(rates[4])


def test_tables_list_configurations_by_role_then_system_then_name():
    runs = _runs([("legacy", "before_fix", ""), ("zeta", "", ""), ("basic", "baseline", ""),
                  ("stable_adaptive", "treatment", ""), ("enhanced", "control", ""), ("alpha", "", ""),
                  ("enhanced_noclip", "arm", "")])
    runs["tag.system"] = ["old", "new", "new", "new", "old", "baseline", "old"]
    assert tables.preset_order(runs) == ["enhanced", "stable_adaptive", "basic", "legacy", "enhanced_noclip", "zeta",
                                         "alpha"]


def _grid(edges, rates=(1e-3, 1e-2, 1e-1), seeds=5):
    """Finished runs of each (preset, role) at `rates` x `seeds`: diverged above the preset's edge rate."""
    rows = [{"run_id": f"{preset}-{lr}-{seed}", "status": "FINISHED", "tag.preset": preset, "tag.role": role,
             "tag.outcome": "diverged" if lr > edge else "stable", "param.optim.lr": str(lr)}
            for (preset, role), edge in edges.items() for lr in rates for seed in range(seeds)]
    return with_configs(pd.DataFrame(rows))


def test_the_frontier_compares_the_control_its_treatment_and_the_arms_each_described_by_its_preset():
    runs = _grid({("enhanced", "control"): 1e-3, ("stable_adaptive", "treatment"): 1e-2,
                  ("enhanced_sgd", "arm"): 1e-3, ("basic", "baseline"): 1e-1})
    critical = frontier.critical_table(runs)
    compared = frontier.stabilizer_table(critical, frontier.sensitivity(runs), runs)
    assert compared["configuration"].tolist() == ["enhanced", "stable_adaptive", "enhanced_sgd"]   # no baseline
    assert compared["role"].tolist() == ["control", "treatment", "arm"]
    assert compared["description"].tolist()[:2] == [_config(f"+preset={p}").description
                                                    for p in ("enhanced", "stable_adaptive")]
    ratio = compared.set_index("configuration")["x control"]
    assert ratio["enhanced"] == 1.0 and ratio["stable_adaptive"] > 1.0 and ratio["enhanced_sgd"] == 1.0
    prevention = frontier.prevention_table(runs)
    assert set(prevention["control"]) == {"enhanced"} and "enhanced" not in set(prevention["configuration"])
    at = prevention.set_index(["configuration", "lr"])
    assert at.loc[("stable_adaptive", 1e-2), "control failed"] == "5/5" and at.loc[("stable_adaptive", 1e-2), "failed"] == "0/5"
    # The learning-rate diagnosis names the control's and the baseline's documented rates, from their presets.
    runs["param.optim.clip_norm"] = runs["tag.preset"].map({"enhanced": "0.8"}).fillna("")
    facts = "\n".join(report._stress_facts(critical, with_configs(runs.drop(columns="config"))))
    assert ("the diagnosis that enhanced's lr 8e-05 and clip 0.8 make the gradients explode and basic's lr 1e-05 and "
            "no clip do not: `enhanced` at its documented lr 8e-05 lies 12x below") in facts
    # Without a control in the design there is nothing to compare against.
    relabelled = runs.assign(**{"tag.role": runs["tag.role"].replace("control", "arm")})
    assert frontier.prevention_table(relabelled).empty
    assert frontier.stabilizer_table(critical, frontier.sensitivity(runs), relabelled).empty
