"""Every preset composes to exactly what its source document's table says, and nothing more."""
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner.preflight import CONF_DIR, job_overrides, options
from runner.schema import validate
from runner.sweep import sample_jobs

# The documents' tables: the values each preset must carry (everything else stays at the base config).
EXPECTED = {
    "legacy": {"system": "old", "loss.mel_loss_weight": 35.0, "loss.total_loss_clip": 100.0, "optim.clip_norm": None},
    "legacy_fixed": {"system": "new", "loss.mel_loss_weight": 2.5, "loss.kl_loss_weight": 1.0,
                     "loss.total_loss_clip": 10.0, "optim.clip_norm": 0.5},
    "enhanced": {"system": "old", "optim.lr": 8e-5, "loss.mel_loss_weight": 2.5, "loss.kl_loss_weight": 1.8,
                 "optim.clip_norm": 0.8, "weighting.name": "legacy_tanh", "loss.label_smoothing": True,
                 "loss.huber": True, "guards.nonfinite": "propagate", "guards.spike_dampening": False},
    "basic": {"system": "new", "optim.lr": 1e-5, "loss.mel_loss_weight": 1.0, "loss.kl_loss_weight": 0.5,
              "optim.clip_norm": 0.5, "weighting.name": "none", "loss.label_smoothing": False, "loss.huber": False},
    "stable_adaptive": {"system": "new", "optim.lr": 8e-5, "loss.mel_loss_weight": 2.5, "loss.kl_loss_weight": 1.8,
                        "optim.clip_norm": 0.8, "weighting.name": "stable", "loss.label_smoothing": True,
                        "loss.huber": True, "guards.nonfinite": "skip", "guards.spike_dampening": True},
}
# Upstream's NaN report at tiny scale: the enhanced values with every upstream factor on, and corrected.
EXPECTED["upstream_fixed"] = {**EXPECTED["enhanced"], "loss.label_smoothing": False}
EXPECTED["upstream"] = {**EXPECTED["enhanced"], "data.features.scale": "log", "model.attention_mask": "inverted",
                        "trainer.precision": "mixed_float16", "optim.clip_order": "scaled",
                        "optim.schedule": "cosine_restarts", "loss.stop_positive_weight": 5.0,
                        "loss.label_smoothing_factor": 0.1, "guards.nonfinite": "zero"}
# The weight-fix values on upstream's log mels and stop weight; upstream clips the raw mel term, not the total.
EXPECTED["legacy_log"] = {**EXPECTED["legacy"], "data.features.scale": "log", "loss.stop_positive_weight": 5.0,
                          "loss.total_loss_clip": None}
EXPECTED["legacy_fixed_log"] = {**EXPECTED["legacy_fixed"], "data.features.scale": "log",
                                "loss.stop_positive_weight": 5.0, "loss.total_loss_clip": None}
for baseline in ("uncertainty", "dwa", "gradnorm"):
    EXPECTED[baseline] = {**EXPECTED["enhanced"], "system": "baseline", "weighting.name": baseline}
# The frontier's arms and the literature's mitigations: one change each on top of enhanced.
for arm, change in {"enhanced_warmup": {"optim.warmup_fraction": 0.1}, "enhanced_noclip": {"optim.clip_norm": None},
                    "enhanced_sgd": {"optim.name": "sgd", "optim.momentum": 0.9},
                    "enhanced_qk_norm": {"model.qk_norm": True}, "enhanced_beta2": {"optim.beta_2": 0.95},
                    "enhanced_zloss": {"loss.stop_z_loss_weight": 1e-4}}.items():
    EXPECTED[arm] = {**EXPECTED["enhanced"], **change}
# The late-failure search's arms (docs/plans/): a fixed 30-step warmup, without weight decay, float16 as upstream.
EXPECTED["enhanced_warmup30"] = {**EXPECTED["enhanced"], "optim.warmup_steps": 30}
EXPECTED["enhanced_warmup30_no_wd"] = {**EXPECTED["enhanced_warmup30"], "optim.weight_decay": 0.0}
EXPECTED["enhanced_fp16"] = {**EXPECTED["enhanced"], "trainer.precision": "mixed_float16", "trainer.overflow": "apply"}
# The upstream code base's per-size "enhanced" level at its tiny size (the size axis's documented rates at base).
EXPECTED["upstream_enhanced_tiny"] = {**EXPECTED["enhanced"], "optim.lr": 3e-5, "optim.clip_norm": 0.5,
                                      "loss.mel_loss_weight": 2.0}
EXPECTED["upstream_fp16"] = {**EXPECTED["upstream"], "model.softmax_dtype": "compute", "trainer.overflow": "apply"}
# stable_adaptive's three changes one at a time: the weighting alone, the guards alone.
EXPECTED["stable_weight_only"] = {**EXPECTED["enhanced"], "system": "new", "weighting.name": "stable"}
EXPECTED["guards_only"] = {**EXPECTED["enhanced"], "system": "new", "guards.nonfinite": "skip",
                           "guards.spike_dampening": True}

# What a preset says it is, not what it trains (documented_lr is what its optim.lr refers to).
BOOKKEEPING = {"preset", "source", "system", "description", "documented_lr"}


def _flat(cfg):
    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value
    return dict(walk(OmegaConf.to_container(cfg, resolve=True)))


@pytest.fixture(scope="module")
def composed():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        base = _flat(compose(config_name="config"))
        presets = {name: _flat(compose(config_name="config", overrides=[f"+preset={name}"])) for name in options("preset")}
    return base, presets


def test_every_preset_is_tested():
    assert set(options("preset")) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_carries_its_seed_table_and_changes_nothing_else(composed, name):
    base, presets = composed
    values = presets[name]
    for key, expected in EXPECTED[name].items():
        assert values[key] == pytest.approx(expected) if isinstance(expected, float) else values[key] == expected, key
    # A strategy's own knobs come with it at their defaults (each strategy has its settings class).
    knobs = {key for key in values if key.startswith("weighting.") and key not in base}
    changed = {key for key in values if values[key] != base.get(key)} - BOOKKEEPING - knobs
    documented = {key for key, expected in EXPECTED[name].items() if base.get(key) != expected} - BOOKKEEPING
    assert changed == documented
    assert values["preset"] == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_names_its_source_document(name):
    lines = (CONF_DIR / "preset" / f"{name}.yaml").read_text().splitlines()
    assert lines[0] == "# @package _global_"
    assert lines[1].startswith("# Source: ") or lines[1].startswith("# Published baseline")
    assert any(word in lines[1].lower() for word in ("note", "report", "baseline", "upstream", "literature")), lines[1]
    assert not any(f"{n:03d}" in "\n".join(lines) for n in range(5))   # documents by subject, not by file number


def test_presets_validate(composed):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for name in options("preset"):
            validate(compose(config_name="config", overrides=[f"+preset={name}"]))


def test_sweeps_expand_to_presets_times_seeds():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        before_after = job_overrides(["sweep=before_after"], multirun=True)
        stress = job_overrides(["sweep=lr_stress"], multirun=True)
        baselines = job_overrides(["sweep=baselines"], multirun=True)
        claims = job_overrides(["sweep=claims"], multirun=True)
        ablation = job_overrides(["sweep=ablation"], multirun=True)
    assert len(before_after) == 12 and len(stress) == 60 and len(baselines) == 15
    assert len(claims) == 110 and len(ablation) == 17 * 3
    presets = {o.split("=")[1] for job in before_after for o in job if o.startswith("+preset=")}
    assert presets == {"enhanced", "basic", "stable_adaptive", "upstream"}
    presets |= {"legacy", "legacy_fixed", "upstream_fixed"}
    assert {o for job in claims for o in job if o.startswith("seed=")} == {f"seed={s}" for s in range(10)}
    assert {o.split("=")[1] for job in claims for o in job if o.startswith("+preset=")} == presets | {
        "legacy_log", "legacy_fixed_log", "stable_weight_only", "guards_only"}
    assert {o for job in stress for o in job if o.startswith("optim.lr_multiplier=")} == {
        f"optim.lr_multiplier={m}" for m in (1, 4, 16, 64)}
    # The frontier: the same absolute grid for every configuration, 1e-4 .. 1 with at least 3 rates per decade.
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        grid = job_overrides(["sweep=frontier"], multirun=True)
    rates = sorted({float(o.split("=")[1]) for job in grid for o in job if o.startswith("optim.lr=")})
    configurations = {o.split("=")[1] for job in grid for o in job if o.startswith("+preset=")}
    assert len(grid) == len(rates) * len(configurations) == 13 * 13
    decades = [sum(10.0 ** k <= r < 10.0 ** (k + 1) for r in rates) for k in range(-4, 0)]
    assert rates[0] == 1e-4 and rates[-1] == 1.0 and min(decades) >= 3
    assert {"legacy_fixed", "enhanced", "basic", "stable_adaptive", "upstream", "upstream_fixed",
            "upstream_fp16"} < configurations
    # The stabilizers are compared at the same stress: every configuration the design gives a role trains on the grid.
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        designed = validate(compose(config_name="config", overrides=["sweep=frontier", *grid[0]])).roles
    assert set(designed) == configurations


# sweep=ablation: each option differs from its base preset in exactly one factor's keys.
FACTOR_KEYS = {"scale": {"data.features.scale"}, "precision": {"trainer.precision", "optim.clip_order"},
               "mask": {"model.attention_mask"}, "schedule": {"optim.schedule"},
               "loss": {"loss.stop_positive_weight", "loss.label_smoothing"}, "nonfinite": {"guards.nonfinite"}}


@pytest.mark.parametrize("base, flip", [("upstream", "without"), ("upstream_fixed", "with")])
def test_each_ablation_option_flips_exactly_one_factor(composed, base, flip):
    _, presets = composed
    bookkeeping = BOOKKEEPING | {"ablation.base", "ablation.factor", "ablation.direction"}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for factor, keys in FACTOR_KEYS.items():
            option = _flat(compose(config_name="config", overrides=[f"+ablation={base}_{flip}_{factor}"]))
            changed = {key for key in option if option[key] != presets[base].get(key)} - bookkeeping
            assert changed == keys, factor
            assert (option["ablation.base"], option["ablation.factor"]) == (base, factor)
        reference = _flat(compose(config_name="config", overrides=[f"+ablation={base}"]))
        # upstream's float16 order (softmax dtype and overflow handling) as one factor, both ways.
        order = {"upstream_fixed_with_fp16_order": "upstream_fixed", "upstream_fp16_without_fp16_order": "upstream_fp16"}
        flips = {name: _flat(compose(config_name="config", overrides=[f"+ablation={name}"])) for name in order}
    assert {key for key in reference if reference[key] != presets[base].get(key)} <= bookkeeping
    for name, start in order.items():
        changed = {key for key in flips[name] if flips[name][key] != presets[start].get(key)} - bookkeeping
        assert changed == {"model.softmax_dtype", "trainer.overflow"}, name


STAGE_OF = {"frontier_refine": "frontier", "edge_probe": "before_after"}


def test_every_job_of_every_sweep_validates():
    """Each sweep's every configuration composes and passes every settings class's checks (what the launch
    checks); its jobs differ from each other only in the seed, which is checked on its own."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for sweep in options("sweep"):
            jobs = job_overrides([f"sweep={sweep}"], multirun=True)
            for number in sample_jobs(jobs):
                config = validate(compose(config_name="config", overrides=jobs[number]))
                # a sweep writes to its own experiment, a stage of another to that one's (refinement, the probe)
                assert config.experiment == STAGE_OF.get(sweep, sweep), (sweep, jobs[number])
            seeds = {o.split("=", 1)[1] for job in jobs for o in job if o.startswith("seed=")}
            assert seeds and all(seed.isdigit() for seed in seeds), (sweep, seeds)


def test_the_slurm_launcher_carries_partition_gpus_time_and_array_parallelism():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        launcher = compose(config_name="config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                           return_hydra_config=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min, launcher.array_parallelism) == (
        "gpu", 1, 240, 16)


def test_the_ray_cluster_launcher_joins_a_running_cluster_one_cpu_per_job():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        launcher = compose(config_name="config", overrides=["hydra/launcher=ray_cluster"],
                           return_hydra_config=True).hydra.launcher
    assert launcher._target_.endswith("RayLauncher")
    assert launcher.ray.init.address == "auto" and launcher.ray.init.object_store_memory is None
    assert launcher.ray.remote.num_cpus == 1


def test_a_sweep_renders_one_sample_per_configuration_from_its_first_seed():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        jobs = job_overrides(["sweep=before_after"], multirun=True)
        stress = job_overrides(["sweep=lr_stress"], multirun=True)
    chosen = sample_jobs(jobs)
    assert len(chosen) == 4 and all("seed=0" in jobs[n] for n in chosen)
    assert len({next(o for o in jobs[n] if o.startswith("+preset=")) for n in chosen}) == 4
    # lr_stress: 5 presets x 4 learning-rate multipliers x 3 seeds; every multiplier is its own configuration
    assert len(sample_jobs(stress)) == 20
    assert sample_jobs([["+preset=basic", "seed=3"], ["+preset=basic", "seed=1"]]) == [0]


def test_data_ljspeech_without_a_path_is_refused_not_replaced_by_the_generated_corpus():
    from runner.schema import ConfigError

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose(config_name="config", overrides=["+preset=basic", "data=ljspeech"])
    with pytest.raises(ConfigError, match=r"^data\.path is required for data=ljspeech: allowed an LJSpeech-layout"):
        validate(config)


def test_a_sweep_expands_as_hydras_basic_sweeper_launches_it():
    """The product of every key's values, keys in their first place, a key given again replacing its values
    there (the command line over the sweep file); an interval needs a sampling sweeper."""
    from runner.preflight import expand
    from runner.schema import ConfigError

    jobs = expand({"+preset": "a,b", "seed": "0,1"}, ["seed=5,6,7", "optim.lr=1e-2"])
    assert len(jobs) == 6 and jobs[0] == ["+preset=a", "seed=5", "optim.lr=0.01"]   # values as Hydra prints them
    assert jobs[-1] == ["+preset=b", "seed=7", "optim.lr=0.01"]
    assert expand({}, ["x=range(0,3)"]) == [["x=0"], ["x=1"], ["x=2"]]
    with pytest.raises(ConfigError, match="an interval sweep needs a sweeper that samples it"):
        expand({}, ["optim.lr=interval(0.1,1)"])
