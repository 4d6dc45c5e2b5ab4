"""Imports every policy module so that `POLICIES` is complete; `names()` lists them."""

from ganrl.policy import actor_critic, baselines, cdqn, ddpg  # noqa: F401  (registration)
from ganrl.policy.base import POLICIES


def names() -> list[str]:
    return list(POLICIES)
