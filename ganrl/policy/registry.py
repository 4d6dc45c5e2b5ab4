"""Imports every policy module so that `POLICIES` is complete; `names()` lists them."""

from ganrl.policy import baselines, cdqn  # noqa: F401  (registration side effects)
from ganrl.policy.base import POLICIES


def names() -> list[str]:
    return list(POLICIES)
