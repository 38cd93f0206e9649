"""What each run is in its experiment: the role its configuration plays there (the experiment's design, from its
sweep file), what its preset is (the preset's description) and the learning rate its documents give. Analysis
selects and orders configurations by these, never by a preset's name.

The runner records all three as tags (myxtts/record.py: ROLE, DESCRIPTION, DOCUMENTED_LR). A run recorded before
those tags existed is read from the configuration files the runner would have read them from:
- its role from the `roles` mapping of its experiment's sweep file: conf/sweep/<experiment>.yaml, else the sweep
  files whose `experiment` is that name (a refinement stage's); a preset the mapping does not name, or a run of an
  experiment without a sweep file, is an arm (record.DEFAULT_ROLE);
- its description and documented rate from its preset's yaml (conf/preset/<preset>.yaml, or the ablation option
  that names the preset), through the presets it extends; "" and NaN where none says.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd
import yaml

from myxtts import record

ROLES = record.ROLES
CONF = Path(__file__).resolve().parents[1] / "conf"
# The runs-frame column that names each run's experiment (analysis/load.py writes it).
EXPERIMENT = "experiment"


def _tag(runs: pd.DataFrame, name: str) -> pd.Series:
    """A tag's column as text, "" where a run lacks it (analysis.tables.tag, without importing the tables)."""
    column = record.tag_column(name)
    if column not in runs:
        return pd.Series("", index=runs.index, dtype=object)
    return runs[column].astype(object).where(runs[column].notna(), "").astype(str)


def _load(path: Path) -> dict:
    values = yaml.safe_load(path.read_text()) if path.is_file() else None
    return values if isinstance(values, dict) else {}


@functools.cache
def design(experiment: str) -> dict[str, str]:
    """The experiment's roles as its sweep file writes them (preset -> role); {} when no sweep file names it."""
    own = CONF / "sweep" / f"{experiment}.yaml"
    files = [own] if own.is_file() else [p for p in sorted((CONF / "sweep").glob("*.yaml"))
                                         if _load(p).get("experiment") == experiment]
    found: dict[str, str] = {}
    for path in files:
        found.update({str(k): str(v) for k, v in (_load(path).get("roles") or {}).items()})
    return found


def _defined_in(preset: str) -> Path | None:
    """The file that makes a preset: its own, or the ablation option whose `preset` is that name."""
    own = CONF / "preset" / f"{preset}.yaml"
    if own.is_file():
        return own
    return next((p for p in sorted((CONF / "ablation").glob("*.yaml")) if _load(p).get("preset") == preset), None)


def _composed(path: Path) -> dict:
    """A preset file's top-level values over those of the presets it extends (Hydra's order: `_self_` last)."""
    values = _load(path)
    merged: dict = {}
    for entry in values.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            parent = CONF / entry.lstrip("/") if entry.startswith("/") else path.parent / entry
            merged.update(_composed(parent.with_suffix(".yaml")))
    merged.update({k: v for k, v in values.items() if k != "defaults"})
    return merged


@functools.cache
def preset_values(preset: str) -> dict:
    """What a preset's yaml says of it (its description, its documented_lr ...); {} for an unknown preset."""
    path = _defined_in(preset)
    return _composed(path) if path is not None else {}


def role(runs: pd.DataFrame) -> pd.Series:
    """Each run's role: its tag, else its experiment's sweep file's, else record.DEFAULT_ROLE."""
    tagged = _tag(runs, record.ROLE)
    presets = _tag(runs, record.PRESET)
    experiments = runs[EXPERIMENT].astype(str) if EXPERIMENT in runs else pd.Series("", index=runs.index)
    designed = [design(e).get(p, record.DEFAULT_ROLE) if e else record.DEFAULT_ROLE
                for e, p in zip(experiments, presets)]
    return tagged.where(tagged != "", pd.Series(designed, index=runs.index, dtype=object))


def with_role(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The runs whose configuration plays `name` (one of ROLES) in their experiment."""
    if name not in ROLES:
        raise ValueError(f"role {name!r} is unknown: allowed one of {list(ROLES)}")
    return runs[role(runs) == name]


def rank(name: str) -> int:
    """A role's place in ROLES (tables list configurations in this order); an unknown one comes last."""
    return ROLES.index(name) if name in ROLES else len(ROLES)


def description(runs: pd.DataFrame) -> pd.Series:
    """What each run's preset is, one line: its tag, else its preset's yaml ("" where neither says)."""
    tagged = _tag(runs, record.DESCRIPTION)
    known = [str(preset_values(p).get("description") or "") for p in _tag(runs, record.PRESET)]
    return tagged.where(tagged != "", pd.Series(known, index=runs.index, dtype=object))


def documented_lr(runs: pd.DataFrame) -> pd.Series:
    """The learning rate each run's preset documents (its tag, else its preset's yaml); NaN where none is given."""
    tagged = pd.to_numeric(_tag(runs, record.DOCUMENTED_LR).replace("", math.nan), errors="coerce")
    known = [preset_values(p).get("documented_lr") for p in _tag(runs, record.PRESET)]
    files = pd.to_numeric(pd.Series(known, index=runs.index, dtype=object), errors="coerce")
    return tagged.fillna(files).astype(float)
