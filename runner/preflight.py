"""Checks a command line before Hydra runs anything: every job of a sweep is composed and validated,
so a bad value stops the launch with one line and exit code 2, before any MLflow run exists."""
from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.schema import PROJECT_ROOT, SCHEMA_SUFFIX, Config, ConfigError, container, validate

CONF_DIR = PROJECT_ROOT / "conf"
# Hydra's informational flags: nothing is trained, so nothing needs checking.
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc",
              "--version", "--resolve", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
              "--config-dir", "-cd", "--experimental-rerun"}


# Without it Ray replaces a loopback address with the machine's own (a cluster on 127.0.0.1 needs it set).
LOOPBACK_RAY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# Launchers that Hydra plugins provide, and the package each needs.
LAUNCHER_PACKAGES = {"joblib": "hydra-joblib-launcher", "submitit_local": "hydra-submitit-launcher",
                     "submitit_slurm": "hydra-submitit-launcher", "slurm": "hydra-submitit-launcher",
                     "ray": "hydra-ray-launcher", "ray_cluster": "hydra-ray-launcher", "rq": "hydra-rq-launcher"}


def options(group: str) -> list[str]:
    if GlobalHydra.instance().is_initialized():  # also the options that installed plugins add (hydra/launcher)
        # An option of a group with variants extends its schema (<name>_schema), which is not a choice.
        return sorted(o for o in GlobalHydra.instance().config_loader().get_group_options(group)
                      if not o.endswith(SCHEMA_SUFFIX))
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _one_line(error: Exception) -> str:
    if isinstance(error, MissingConfigException):
        match = re.search(r"Could not find '([^']+)'", str(error))
        missing = match.group(1) if match else str(error).splitlines()[0]
        group, _, name = missing.rpartition("/")
        line = f"{group}={name} is unknown: allowed {', '.join(options(group)) or '(none)'}"
        if group == "hydra/launcher" and name in LAUNCHER_PACKAGES:
            package = LAUNCHER_PACKAGES[name]
            line += f"; {name} comes with the {package} package (pip install {package})"
        return line
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    key = getattr(cause, "full_key", None)
    text = lines[0] if lines else type(error).__name__
    return f"{key}: {text}" if key and key not in text else text


def expand(params: dict, overrides: list[str]) -> list[list[str]]:
    """The override list of every job a sweep launches, in the basic sweeper's order: the cartesian product
    of each key's values, keys in their first position (sweeper params from sweep=..., then the command
    line), a key given again replacing its values there. Only Hydra's public override grammar is used."""
    arguments = [f"{key}={value}" for key, value in params.items()] + list(overrides)
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ConfigError(f"{override.input_line}: an interval sweep needs a sweeper that samples it: "
                              f"allowed a list (a,b,c), range(start,stop,step) or glob(...)")
    return [list(job) for job in itertools.product(*choices.values())]


def primary_config(overrides: list[str]) -> DictConfig:
    """The command's config without its value lists, with Hydra's own part (sweeper params, launcher)."""
    parser = OverridesParser.create()
    fixed = [o for o in overrides if not parser.parse_override(o).is_sweep_override()]
    return compose(config_name="config", overrides=fixed, return_hydra_config=True)


def job_overrides(overrides: list[str], multirun: bool, primary: DictConfig | None = None) -> list[list[str]]:
    """The override list of every job Hydra would launch (`primary`: the command's primary_config, composed
    here when not given)."""
    if not multirun:
        if any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides)):
            raise ConfigError("a value list (a,b,...) needs multirun: add -m")
        return [overrides]
    params = (primary if primary is not None else primary_config(overrides)).hydra.sweeper.get("params")
    return expand(container(params) if params else {}, overrides)


def check(argv: list[str]) -> list[Config]:
    """The command line's own values: a single run's validated config; for a multirun the command's config
    without its value lists (its launcher included) — every job of a sweep is expanded and checked by the
    sweeper (runner/sweeper.py), inside Hydra, so the list it checks is the list it launches. Raises
    ConfigError with one line."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "preset":
            raise ConfigError(f"preset={value} is not how a preset is chosen: allowed +preset=NAME "
                              f"(with a plus: presets add to the base config), e.g. +preset={value or 'basic'}")
        if key.lstrip("+~") == "preset" and value and "," not in value and value not in options("preset"):
            raise ConfigError(f"+preset={value} is unknown: allowed {', '.join(options('preset'))}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            if not multirun:
                job_overrides(overrides, multirun=False)   # refuses a value list without -m
            primary = primary_config(overrides)
            check_launcher(primary.hydra.launcher)
            return [] if multirun else check_jobs([overrides], lambda _job: primary)
        except ConfigError:
            raise
        except (HydraException, OmegaConfBaseException, ValueError) as error:
            raise ConfigError(_one_line(error)) from None


def check_jobs(jobs: list[list[str]], compose_job: Callable[[list[str]], DictConfig]) -> list[Config]:
    """The validated config of every job, each composed once by `compose_job` (its overrides -> Hydra's
    composed config); raises ConfigError with one line."""
    try:
        return [validate(_task_part(compose_job(job))) for job in jobs]
    except ConfigError:
        raise
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(_one_line(error)) from None


def _task_part(cfg: DictConfig) -> DictConfig:
    """A job's config as its task function sees it: without Hydra's own node."""
    return OmegaConf.masked_copy(cfg, [str(key) for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg


def prepare(configs: list[Config]) -> None:
    """Before any job starts: every store the jobs write to is reachable and usable (created once, here),
    and every corpus they read is built. Raises ConfigError with one line."""
    from runner import tracking

    locations = {tracking.resolve_store(c.tracking.uri, c.tracking.artifact_location) for c in configs}
    stores = {uri for uri, _ in locations}
    for uri in sorted(stores):  # an unreachable server stops the launch here, not minutes into a job
        tracking.check_reachable(uri)
    for artifacts in sorted({artifacts for _, artifacts in locations if artifacts}):
        tracking.check_artifact_root(artifacts)
    for uri in sorted(stores):
        try:
            tracking.ensure_store(uri)
        except Exception as error:  # noqa: BLE001 - a store that cannot be used ends the launch in one line
            raise ConfigError(f"tracking.uri={uri} cannot be used as an MLflow store ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}): allowed a writable "
                              f"sqlite:///path or a running MLflow server") from None
    for config in configs:
        config.data.ensure_corpus()


def check_launcher(launcher: DictConfig) -> None:
    """A launcher that joins a running cluster (Ray) must reach it before the sweep's parent run exists."""
    if str(launcher.get("_target_", "")).endswith("RayLauncher") and launcher.ray.init.get("address"):
        check_ray_address(str(launcher.ray.init.address))


def check_ray_address(address: str) -> None:
    import socket

    from ray._private.services import canonicalize_bootstrap_address  # what ray.init will connect to

    key = f"hydra.launcher.ray.init.address={address}"
    allowed = ("allowed the HOST:PORT of a running Ray cluster (ray start --head --port=PORT), or "
               "hydra/launcher=ray for a private Ray in this process")
    try:
        host, _, port = str(canonicalize_bootstrap_address(address)).rpartition(":")
        socket.create_connection((host, int(port)), timeout=5).close()
    except (ConnectionError, OSError, ValueError) as error:
        hint = ""
        if address.split(":")[0] in ("127.0.0.1", "localhost") and not os.environ.get(LOOPBACK_RAY):
            hint = f" (a loopback cluster also needs {LOOPBACK_RAY}=0 here and where Ray was started)"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{key} is unreachable ({reason}): {allowed}{hint}") from None


def is_informational(argv: list[str]) -> bool:
    return any(a.split("=")[0] in INFO_FLAGS for a in argv)


__all__ = ["OmegaConf", "check", "is_informational", "options"]
