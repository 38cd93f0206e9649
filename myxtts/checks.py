"""The one way a setting rejects a value: a ValueError whose text is one line naming the key, the value and
what is allowed. Every settings dataclass checks its own fields with `require` in `__post_init__`, so a
value is checked where the code that uses it is, and only there."""
from __future__ import annotations

import math


class SettingError(ValueError):
    """An invalid setting; str() is one line: `key=value is invalid: allowed ...`."""


def require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise SettingError(f"{key}={value!r} is invalid: allowed {allowed}")


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def one_of(key: str, value, choices: tuple) -> None:
    require(value in choices, key, value, f"one of {list(choices)}")
