"""Imports every policy module so that `POLICIES` is complete; `names()` lists them."""

from ganrl.policy import actor_critic, cdqn, ddpg, heuristics  # noqa: F401  (registration)
from ganrl.policy.base import POLICIES


def names() -> list[str]:
    return list(POLICIES)
