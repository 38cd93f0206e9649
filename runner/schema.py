"""The top-level configuration: the settings classes of myxtts (one per config group, each checking its
own values) plus the runner's own groups, registered in Hydra's ConfigStore.

Hydra checks types when it composes; `validate()` turns a composed config into the typed `Config`, which
runs every settings class's checks before any run is created. An error names the key, the value and what
is allowed, in one line.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import typing
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from myxtts.checks import SettingError, finite, one_of, require
from myxtts import record, typed
from myxtts.training.settings import TrainingSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# MLflow accepts experiment names of up to 500 characters (mlflow.utils.validation), but the name is also a
# folder (<artifact root>/<experiment>, outputs/multirun/<experiment>): a file name has at most 255 bytes, and
# MLflow's SQL schema keeps 256 characters of it.
EXPERIMENT_NAME_LIMIT = 255
TRACKING_KINDS = ("local", "server")

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


class ConfigError(ValueError):
    """One invalid configuration value; str() is a single line naming key, value and what is allowed."""


@dataclass
class TrackingSettings:
    """Where runs are recorded (runner/tracking.py): the project's SQLite store, or an MLflow server."""

    kind: str = "local"
    uri: str | None = None               # default: the project's store (myxtts.record.STORE_FILE)
    artifact_location: str | None = None  # default: <store's folder>/mlartifacts (local stores only)
    flush_every: int = 50
    progress_every: int = 25

    def __post_init__(self) -> None:
        one_of("tracking.kind", self.kind, TRACKING_KINDS)
        if self.kind == "server":
            require(bool(self.uri) and str(self.uri).startswith(("http://", "https://")), "tracking.uri", self.uri,
                    "an http(s):// address of an MLflow server when tracking=server")
        require(self.flush_every >= 1, "tracking.flush_every", self.flush_every, "an integer >= 1")
        require(self.progress_every >= 1, "tracking.progress_every", self.progress_every, "an integer >= 1")


@dataclass
class RunnerSettings:
    """How a job treats earlier runs and what a sweep writes at its end (runner/job.py, callbacks.py)."""

    rerun: bool = False
    checkpoint_root: str = "${project_root:}/.cache/checkpoints"
    report: bool = True                        # write the report when a multirun ends
    report_dir: str = "${project_root:}/reports"


@dataclass
class AblationSettings:
    """Bookkeeping of sweep=ablation: which preset a run starts from and which factor it flips."""

    base: str = ""
    factor: str = "none"
    direction: str = "none"    # off: corrected in the upstream preset; on: switched on in upstream_fixed


@dataclass
class Config(TrainingSettings):
    """The whole configuration: what a run trains (TrainingSettings, checked by myxtts's settings classes)
    and how the runner records it. Only the top-level keys are checked here."""

    # a strategy's own settings class, chosen by the weighting group (its variants: myxtts.typed)
    weighting: Any = field(default=MISSING, metadata={typed.VARIANTS: typed.variants(TrainingSettings, "weighting")})
    experiment: str = "default"
    preset: str = "base"
    system: str = "base"
    source: str = "code-base defaults"
    # What the preset is and the rate its documents give (its optim.lr refers to it); none of the three is
    # hashed (config_hash): they say what a configuration is, not what it trains.
    description: str = "the code base's defaults"
    documented_lr: float | None = None
    roles: dict[str, str] = field(default_factory=dict)   # the sweep file's design: preset -> record.ROLES
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    ablation: AblationSettings = field(default_factory=AblationSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = str(self.experiment)
        require(bool(re.fullmatch(r"[A-Za-z0-9_.\- ]+", name) and re.search(r"[A-Za-z0-9]", name)), "experiment",
                self.experiment, "a non-empty name of letters, digits, spaces and _ . - with at least one letter or "
                                 "digit (it goes into MLflow filters and paths)")
        if len(name) > EXPERIMENT_NAME_LIMIT:  # the value itself would make the one line unreadable
            raise SettingError(f"experiment is {len(name)} characters long: allowed at most {EXPERIMENT_NAME_LIMIT} "
                               f"(it names a folder of the artifact store and of Hydra's sweep output)")
        one_of("system", self.system, record.SYSTEMS)
        require(self.documented_lr is None or (finite(self.documented_lr) and self.documented_lr > 0), "documented_lr",
                self.documented_lr, "a finite number > 0, or null where the documents give no rate")
        for preset, role in self.roles.items():
            one_of(f"roles.{preset}", role, record.ROLES)

    @property
    def role(self) -> str:
        """The part this configuration plays in its experiment (record.DEFAULT_ROLE where the sweep names none)."""
        return self.roles.get(self.preset, record.DEFAULT_ROLE)


# The groups whose settings class depends on the option chosen (a field with variants, myxtts.typed).
VARIANT_GROUPS = {f.name: choices for f in dataclasses.fields(Config)
                  if (choices := typed.variants(Config, f.name)) is not None}
SCHEMA_SUFFIX = "_schema"


def register() -> None:
    """The base config, and for a group with variants one schema per variant (conf/<group>/<name>.yaml
    extends <name>_schema); every other group is typed by its field of Config."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, choices in VARIANT_GROUPS.items():
        for name, schema in choices.items():
            store.store(group=group, name=f"{name}{SCHEMA_SUFFIX}", node=schema)


register()


def container(node) -> dict[str, typing.Any]:
    """An OmegaConf node as plain, resolved Python containers (a mapping node gives a dict)."""
    return typing.cast(dict[str, typing.Any], OmegaConf.to_container(node, resolve=True))


def _unknown_keys(values: dict, schema: type, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys a `+key=value` override added that no setting reads, with the keys allowed beside them."""
    allowed = [f.name for f in dataclasses.fields(schema)]
    found = []
    for key, value in values.items():
        if key not in allowed:
            found.append((f"{prefix}{key}", allowed))
        elif isinstance(value, dict) and (nested := typed.field_class(schema, key, value)) is not None:
            found += _unknown_keys(value, nested, f"{prefix}{key}.")
    return found


def validate(cfg: DictConfig) -> Config:
    """The typed configuration of one job. Each value is checked by the settings class that holds it
    (in its __post_init__, while OmegaConf builds the objects); a failure is a ConfigError of one line."""
    try:
        resolved = typing.cast(dict[str, typing.Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except Exception as error:  # noqa: BLE001 - OmegaConf raises several types for missing/interpolation
        key = getattr(error, "full_key", None) or "config"
        raise ConfigError(f"{key} is not set: {str(error).splitlines()[0]}") from None
    for key, allowed in _unknown_keys(resolved, Config):
        name = key.rsplit(".", 1)[-1]
        group = key.rsplit(".", 1)[0] if "." in key else "the top level"
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}? " if close else ""
        raise ConfigError(f"{key} is unknown: {hint}allowed keys of {group}: {', '.join(allowed)}")
    merged = typing.cast(DictConfig, OmegaConf.merge(OmegaConf.structured(Config),
                                                     {k: v for k, v in resolved.items() if k not in VARIANT_GROUPS}))
    try:
        for group in VARIANT_GROUPS:  # the variant's own schema types and checks the group's values
            schema = typed.field_class(Config, group, resolved[group])
            if schema is None:
                raise ConfigError(f"{group}.name={resolved[group].get('name')!r} is unknown: allowed "
                               f"{', '.join(VARIANT_GROUPS[group])}")
            merged[group] = OmegaConf.merge(OmegaConf.structured(schema), resolved[group])
        return typing.cast(Config, OmegaConf.to_object(merged))
    except (ValueError, KeyError) as error:
        raise ConfigError(str(error).splitlines()[0]) from None
    except OmegaConfBaseException as error:
        raise ConfigError(f"{getattr(error, 'full_key', '') or 'config'}: {str(error).splitlines()[0]}") from None


def as_dict(config: Config) -> dict:
    """The typed configuration back as plain data: what a run records (params, config.yaml, hash)."""
    return dataclasses.asdict(config)


# Keys that change what is trained; the hash identifies a configuration across sweeps and re-runs.
_HASHED = ("seed", "model", "data", "loss", "optim", "weighting", "guards", "trainer", "fault")


def config_hash(config: Config) -> str:
    values = as_dict(config)
    content = {key: values[key] for key in _HASHED}
    # Where features are cached and how many threads a job uses change nothing that is trained.
    content["data"].pop("cache_dir", None)
    content["trainer"].pop("threads", None)
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
