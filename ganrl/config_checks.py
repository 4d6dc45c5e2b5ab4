"""Checks of configuration values, for the frozen config dataclasses' `__post_init__`.

A config field has the name of its command-line flag, so a failed check raises a one-line
`ValueError` that names the flag, the value given and what was expected, e.g.
"learning_rate=-1.0: expected a positive number". Entry points print it and exit with 1
before they create anything.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# What a field may hold, by the words of the error message.
RULES: dict[str, Callable[[Any], bool]] = {
    "a positive integer": lambda v: _integer(v) and v > 0,
    "a non-negative integer": lambda v: _integer(v) and v >= 0,
    "a positive number": lambda v: _number(v) and v > 0,
    "a non-negative number": lambda v: _number(v) and v >= 0,
    "a number in [0, 1)": lambda v: _number(v) and 0 <= v < 1,
    "a number in [0, 1]": lambda v: _number(v) and 0 <= v <= 1,
}


def check(config: Any, rule: str, *names: str) -> None:
    """Raises `ValueError` for the first field of `config` among `names` that breaks `rule`
    (a key of `RULES`)."""
    for name in names:
        value = getattr(config, name)
        if not RULES[rule](value):
            raise ValueError(f"{name}={value!r}: expected {rule}")


def check_choice(config: Any, name: str, choices: Iterable[str]) -> None:
    """Raises `ValueError` unless field `name` of `config` is one of `choices`."""
    choices = tuple(choices)
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
