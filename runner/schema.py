"""Typed configuration: dataclass schemas registered in Hydra's ConfigStore, and their range checks.

Hydra checks types when it composes; `validate()` checks every range before any run is created and
turns a config into the settings objects the training code takes. An error names the key, the value
and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import typing
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from myxtts.training.diagnostics import DiagnosticsSettings
from myxtts.training.settings import WEIGHTING_NAMES, FaultSettings, GuardSettings, StableSettings
from myxtts.switches import ATTENTION_MASKS, CLIP_ORDERS, FEATURE_SCALES, PRECISIONS, SCHEDULES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("base", "old", "new", "baseline")
DATA_KINDS = ("espeak", "ljspeech")
TRACKING_KINDS = ("local", "server")
MODEL_SIZES = ("tiny", "small", "base")

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


class ConfigError(ValueError):
    """One invalid configuration value; str() is a single line naming key, value and what is allowed."""


@dataclass
class ModelConf:
    size: str = "tiny"
    attention_mask: str = "correct"   # inverted: upstream's double-negated additive mask


@dataclass
class FeaturesConf:
    scale: str = "standardized"       # log: upstream's raw log-mels; minmax: per utterance to [0, 1]


@dataclass
class DataConf:
    kind: str = "espeak"
    path: str = MISSING
    utterances: int = 96          # espeak only: the corpus built when path holds none
    speakers: int = 4
    corpus_seed: int = 0
    validation_fraction: float = 0.1
    max_seconds: float = 8.0
    max_text_length: int = 200
    reference_frames: int = 96
    subset: Optional[int] = None  # a deterministic N-utterance subset (null: the whole corpus)
    features: FeaturesConf = field(default_factory=FeaturesConf)
    cache_dir: str = "${project_root:}/.cache/features"


@dataclass
class LossConf:
    mel_loss_weight: float = 2.5
    stop_loss_weight: float = 1.0
    kl_loss_weight: float = 1.0
    attention_loss_weight: float = 1.0
    huber: bool = False
    huber_delta: float = 1.0
    label_smoothing: bool = False
    label_smoothing_factor: float = 0.1
    stop_positive_weight: float = 1.0
    total_loss_clip: Optional[float] = None
    loss_smoothing_factor: float = 0.1


@dataclass
class OptimConf:
    lr: float = 1e-4
    lr_multiplier: float = 1.0
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    clip_norm: Optional[float] = None
    accumulation_steps: int = 1
    clip_order: str = "unscaled"      # scaled: upstream clipped float16 gradients before unscaling them
    restart_period: int = 8000        # cosine_restarts (upstream's enhanced path, no warmup)
    restart_t_mul: float = 0.8
    restart_m_mul: float = 1.0
    min_lr: float = 1.0e-7


@dataclass
class WeightingConf(StableSettings):
    """The strategy's name, the stable strategy's knobs (inherited) and the baselines' own."""

    name: str = "none"
    temperature: float = 2.0      # dwa
    window: int = 20              # dwa
    alpha: float = 1.5            # gradnorm
    learning_rate: float = 0.025  # gradnorm
    tanh_factor_min: float = 0.8  # legacy_tanh: the documented clip; earlier upstream used [0.7, 1.3]
    tanh_factor_max: float = 1.2


@dataclass
class TrainerConf:
    steps: int = 300
    batch_size: int = 8
    xla: bool = False
    precision: str = "float32"    # mixed_bfloat16 | mixed_float16 (with dynamic loss scaling)
    validate_every: int = 100
    checkpoint_every: int = 100
    synthesize: bool = True
    synthesis_max_frames: int = 400


@dataclass
class TrackingConf:
    kind: str = "local"
    uri: Optional[str] = None               # default: sqlite:///<project>/mlflow.db
    artifact_location: Optional[str] = None  # default: <project>/mlartifacts (local stores only)
    flush_every: int = 50
    progress_every: int = 25


@dataclass
class RunnerConf:
    rerun: bool = False
    checkpoint_root: str = "${project_root:}/.cache/checkpoints"
    report: bool = True                        # write the report when a multirun ends
    report_dir: str = "${project_root:}/reports"


@dataclass
class AblationConf:
    """Bookkeeping of sweep=ablation: which preset a run starts from and which factor it flips."""

    base: str = ""
    factor: str = "none"
    direction: str = "none"    # off: corrected in the upstream preset; on: switched on in upstream_fixed


@dataclass
class Config:
    seed: int = 0
    experiment: str = "default"
    preset: str = "base"
    system: str = "base"
    source: str = "code-base defaults"
    model: ModelConf = field(default_factory=ModelConf)
    data: DataConf = field(default_factory=DataConf)
    loss: LossConf = field(default_factory=LossConf)
    optim: OptimConf = field(default_factory=OptimConf)
    weighting: WeightingConf = field(default_factory=WeightingConf)
    guards: GuardSettings = field(default_factory=GuardSettings)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    fault: FaultSettings = field(default_factory=FaultSettings)
    runner: RunnerConf = field(default_factory=RunnerConf)
    ablation: AblationConf = field(default_factory=AblationConf)
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings)


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schema in (("model", ModelConf), ("data", DataConf), ("weighting", WeightingConf),
                          ("guards", GuardSettings), ("trainer", TrainerConf), ("tracking", TrackingConf),
                          ("fault", FaultSettings), ("diagnostics", DiagnosticsSettings)):
        store.store(group=group, name=f"{group}_schema", node=schema)


register()


# --- range checks ---------------------------------------------------------------------------------------
def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: allowed {allowed}")


def _finite_nonneg(key: str, value: float) -> None:
    _check(value is not None and math.isfinite(value) and value >= 0, key, value, "a finite number >= 0")


def _positive(key: str, value: float) -> None:
    _check(value is not None and math.isfinite(value) and value > 0, key, value, "a finite number > 0")


def _unknown_keys(values: dict, schema: type, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys a `+key=value` override added that no setting reads, with the keys allowed beside them."""
    hints = typing.get_type_hints(schema)
    allowed = [f.name for f in dataclasses.fields(schema)]
    found = []
    for key, value in values.items():
        if key not in allowed:
            found.append((f"{prefix}{key}", allowed))
        elif dataclasses.is_dataclass(hints.get(key)) and isinstance(value, dict):
            found += _unknown_keys(value, hints[key], f"{prefix}{key}.")
    return found


def _read_corpus(path: Path) -> list:
    from myxtts.data.corpus_reader import SkipReport, read_metadata

    return read_metadata(path, SkipReport())


def _check_corpus_lists_audio(path: Path) -> None:
    """A user's corpus must name at least one utterance whose wav exists, before any run is created."""
    from myxtts.data.corpus_reader import SkipReport, read_metadata

    skipped = SkipReport()
    utterances = read_metadata(path, skipped)
    if not utterances:
        detail = f" ({skipped.summary()})" if skipped.total else ""
        raise ConfigError(f"data.path={str(path)!r} is invalid: its metadata.csv lists no usable utterance{detail}; "
                          f"allowed a corpus with lines id|text|normalized_text")
    if not any(u.wav_path.is_file() for u in utterances):
        raise ConfigError(f"data.path={str(path)!r} is invalid: none of the {len(utterances)} wavs metadata.csv "
                          f"names exists under {path / 'wavs'}; allowed wavs/<id>.wav for each line")


def validate(cfg: DictConfig) -> DictConfig:
    """Check every range; returns the config with every interpolation resolved."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception as error:  # noqa: BLE001 - OmegaConf raises several types for missing/interpolation
        key = getattr(error, "full_key", None) or "config"
        raise ConfigError(f"{key} is not set: {str(error).splitlines()[0]}") from None
    for key, allowed in _unknown_keys(resolved, Config):
        name = key.rsplit(".", 1)[-1]
        group = key.rsplit(".", 1)[0] if "." in key else "the top level"
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}? " if close else ""
        raise ConfigError(f"{key} is unknown: {hint}allowed keys of {group}: {', '.join(allowed)}")
    c = OmegaConf.create(resolved)
    _check(c.seed >= 0, "seed", c.seed, "an integer >= 0")
    _check(bool(str(c.experiment).strip()), "experiment", c.experiment, "a non-empty name")
    _check(c.system in SYSTEMS, "system", c.system, f"one of {list(SYSTEMS)}")
    _check(c.model.size in MODEL_SIZES, "model.size", c.model.size, f"one of {list(MODEL_SIZES)}")
    _check(c.model.attention_mask in ATTENTION_MASKS, "model.attention_mask", c.model.attention_mask,
           f"one of {list(ATTENTION_MASKS)}")

    d = c.data
    _check(d.kind in DATA_KINDS, "data.kind", d.kind, f"one of {list(DATA_KINDS)}")
    path = Path(d.path)
    if d.kind == "ljspeech":
        _check(path.is_dir(), "data.path", d.path, "an existing LJSpeech-layout directory")
        _check((path / "metadata.csv").is_file(), "data.path", d.path, "a directory containing metadata.csv")
        _check_corpus_lists_audio(path)
    else:
        _check(not path.exists() or path.is_dir(), "data.path", d.path, "a directory (built if missing)")
        _check(d.utterances >= 1, "data.utterances", d.utterances, "an integer >= 1")
        _check(1 <= d.speakers <= 8, "data.speakers", d.speakers, "an integer in [1, 8]")
        _check(d.corpus_seed >= 0, "data.corpus_seed", d.corpus_seed, "an integer >= 0")
    _check(0 <= d.validation_fraction < 1, "data.validation_fraction", d.validation_fraction, "a number in [0, 1)")
    _positive("data.max_seconds", d.max_seconds)
    _check(d.max_text_length >= 2, "data.max_text_length", d.max_text_length, "an integer >= 2")
    _check(d.reference_frames >= 1, "data.reference_frames", d.reference_frames, "an integer >= 1")
    _check(d.features.scale in FEATURE_SCALES, "data.features.scale", d.features.scale,
           f"one of {list(FEATURE_SCALES)}")
    if d.subset is not None:
        available = d.utterances if d.kind == "espeak" else len(_read_corpus(path))
        _check(1 <= d.subset <= available, "data.subset", d.subset,
               f"an integer in [1, {available}] (the corpus's utterances) or null")

    loss = c.loss
    for key in ("mel_loss_weight", "stop_loss_weight", "kl_loss_weight", "attention_loss_weight"):
        _finite_nonneg(f"loss.{key}", loss[key])
    _positive("loss.huber_delta", loss.huber_delta)
    _check(0 <= loss.label_smoothing_factor < 1, "loss.label_smoothing_factor", loss.label_smoothing_factor,
           "a number in [0, 1)")
    _positive("loss.stop_positive_weight", loss.stop_positive_weight)
    _check(loss.total_loss_clip is None or (math.isfinite(loss.total_loss_clip) and loss.total_loss_clip > 0),
           "loss.total_loss_clip", loss.total_loss_clip, "a number > 0 or null (no clip)")
    _check(0 < loss.loss_smoothing_factor <= 1, "loss.loss_smoothing_factor", loss.loss_smoothing_factor,
           "a number in (0, 1]")

    o = c.optim
    _positive("optim.lr", o.lr)
    _positive("optim.lr_multiplier", o.lr_multiplier)
    _check(o.schedule in SCHEDULES, "optim.schedule", o.schedule, f"one of {list(SCHEDULES)}")
    _check(o.clip_order in CLIP_ORDERS, "optim.clip_order", o.clip_order, f"one of {list(CLIP_ORDERS)}")
    _check(o.restart_period >= 1, "optim.restart_period", o.restart_period, "an integer >= 1")
    _positive("optim.restart_t_mul", o.restart_t_mul)
    _positive("optim.restart_m_mul", o.restart_m_mul)
    _check(0 <= o.min_lr < o.lr, "optim.min_lr", o.min_lr, "a number in [0, optim.lr)")
    _check(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "an integer >= 0")
    _finite_nonneg("optim.weight_decay", o.weight_decay)
    _check(o.clip_norm is None or (math.isfinite(o.clip_norm) and o.clip_norm > 0), "optim.clip_norm", o.clip_norm,
           "a number > 0 or null (no clipping)")
    _check(o.accumulation_steps >= 1, "optim.accumulation_steps", o.accumulation_steps, "an integer >= 1")

    w = c.weighting
    _check(w.name in WEIGHTING_NAMES, "weighting.name", w.name, f"one of {list(WEIGHTING_NAMES)}")
    for key in ("temperature", "learning_rate"):
        _positive(f"weighting.{key}", w[key])
    _check(w.window >= 1, "weighting.window", w.window, "an integer >= 1")
    _finite_nonneg("weighting.alpha", w.alpha)
    _check(0 < w.tanh_factor_min <= 1 <= w.tanh_factor_max, "weighting.tanh_factor_min/max",
           f"{w.tanh_factor_min}/{w.tanh_factor_max}", "0 < min <= 1 <= max")

    for key, settings in (("guards", GuardSettings), ("fault", FaultSettings), ("weighting", StableSettings),
                          ("diagnostics", DiagnosticsSettings)):
        try:
            settings(**stable_fields(c[key]) if settings is StableSettings else OmegaConf.to_container(c[key]))
        except ValueError as error:
            raise ConfigError(str(error)) from None

    t = c.trainer
    _check(t.steps > 0, "trainer.steps", t.steps, "an integer > 0")
    _check(t.precision in PRECISIONS, "trainer.precision", t.precision, f"one of {list(PRECISIONS)}")
    _check(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "an integer >= 1")
    _check(t.validate_every >= 0, "trainer.validate_every", t.validate_every, "an integer >= 0 (0 = at the end)")
    _check(t.checkpoint_every >= 0, "trainer.checkpoint_every", t.checkpoint_every, "an integer >= 0")
    _check(t.synthesis_max_frames >= 1, "trainer.synthesis_max_frames", t.synthesis_max_frames, "an integer >= 1")

    tr = c.tracking
    _check(tr.kind in TRACKING_KINDS, "tracking.kind", tr.kind, f"one of {list(TRACKING_KINDS)}")
    if tr.kind == "server":
        _check(bool(tr.uri) and str(tr.uri).startswith(("http://", "https://")), "tracking.uri", tr.uri,
               "an http(s):// address of an MLflow server when tracking=server")
    _check(tr.flush_every >= 1, "tracking.flush_every", tr.flush_every, "an integer >= 1")
    _check(tr.progress_every >= 1, "tracking.progress_every", tr.progress_every, "an integer >= 1")

    return c


def stable_fields(weighting: DictConfig) -> dict:
    """The stable strategy's settings out of the weighting config."""
    return {f.name: weighting[f.name] for f in dataclasses.fields(StableSettings)}


# Keys that change what is trained; the hash identifies a configuration across sweeps and re-runs.
_HASHED = ("seed", "model", "data", "loss", "optim", "weighting", "guards", "trainer", "fault")


def config_hash(cfg: DictConfig) -> str:
    content = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
               for key in _HASHED}
    for volatile in ("cache_dir",):
        content["data"].pop(volatile, None)
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
