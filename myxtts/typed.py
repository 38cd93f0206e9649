"""Plain data back into the settings dataclasses: the one way a recorded configuration (a run's config.yaml,
or the params of a run recorded without one) becomes typed settings again, checked by the classes' own
`__post_init__`. No Hydra or OmegaConf here; the runner composes with those, analysis reads with this.

A field whose class depends on its value (the weighting group: one settings class per strategy) declares
its variants in its metadata, `field(metadata={VARIANTS: {name: class}})`; the value's `name` picks one.
Every reader of such a field asks `field_class`, so no group is special-cased anywhere else.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

VARIANTS = "variants"
NONE_TEXT = "None"   # how str() (and so an MLflow param) spells a null setting


def variants(cls: type, name: str) -> dict[str, type] | None:
    """The classes a field of `cls` can hold, keyed by the value's `name`; None for an ordinary field."""
    found = {f.name: f for f in dataclasses.fields(cls)}.get(name)
    return found.metadata.get(VARIANTS) if found is not None else None


def field_class(cls: type, name: str, value: Any) -> type | None:
    """The settings class a field's value builds into (None for a plain value or an unknown variant)."""
    choices = variants(cls, name)
    if choices is not None:
        return choices.get(str(value.get("name"))) if isinstance(value, Mapping) else None
    hint = typing.get_type_hints(cls).get(name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _scalar(hint: Any, value: Any, key: str) -> Any:
    """A value as its annotation's type; text (a param) is parsed, a YAML number widened to float."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None or (value == NONE_TEXT and type(None) in options):
        return None
    kind = next((o for o in options if o is not type(None)), str)
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"{key}={value!r} is not a boolean")
        return value.lower() == "true"
    if kind in (int, float) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{key}={value!r} is not a{'n' if kind is int else ''} {kind.__name__}") from None
    return value


def build(cls: type, values: Mapping, prefix: str = "") -> Any:
    """`cls` from plain (possibly textual) values; missing fields keep their defaults, an unknown key or a
    value the class rejects raises ValueError naming the key."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]} is not a setting of {cls.__name__}")
    hints = typing.get_type_hints(cls)
    arguments = {}
    for name, value in values.items():
        nested = field_class(cls, name, value)
        if nested is not None and isinstance(value, Mapping):
            arguments[name] = build(nested, value, f"{prefix}{name}.")
        elif (choices := variants(cls, name)) is not None:
            chosen = value.get("name") if isinstance(value, Mapping) else value
            raise ValueError(f"{prefix}{name}.name={chosen!r} is not one of {sorted(choices)}")
        else:
            arguments[name] = _scalar(hints[name], value, f"{prefix}{name}")
    return cls(**arguments)


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"optim.lr": v} → {"optim": {"lr": v}}: params back into the shape of the settings."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested
