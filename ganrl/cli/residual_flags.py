"""The bounded-residual flags of PPO, A2C, DDPG and LinUCB (entry points only), shared by
`main_policy.py`, `main_comparison.py` (through `policy_flags`) and `main_sim_to_real.py`.

Their defaults are `PolicyConfig`'s: each of these policies scores candidates as GAN-Greedy's
learned reward plus a learned part bounded by `--residual_bound` (`ganrl.policy.residual`).
`--residual_bound=0` is each policy as before issue 18. The CDQN has its own
`--cdqn_residual_bound` (`cdqn_flags`).
"""

from __future__ import annotations

from absl import flags

from ganrl.cli import changed_settings
from ganrl.policy.runner import PolicyConfig

FLAGS = flags.FLAGS
_DEFAULT = PolicyConfig(user_model_dir="", test_user_model_dir="", save_dir="")
flags.DEFINE_float(
    "residual_bound",
    _DEFAULT.residual_bound,
    "PPO, A2C, DDPG and LinUCB: the learned part moves a candidate's score by at most this, "
    "in the learned reward's units, around GAN-Greedy's score (0: each policy as before, "
    "unbounded; the CDQN has --cdqn_residual_bound).",
)
flags.DEFINE_float(
    "residual_uncertainty",
    _DEFAULT.residual_uncertainty,
    "PPO, A2C, DDPG and LinUCB with an ensemble: the bound shrinks by exp(-this * the "
    "members' std of the item's learned reward) (0: not at all, as before).",
)

NAMES = ("residual_bound", "residual_uncertainty")


def residual_settings() -> dict:
    """The `PolicyConfig` fields of these flags."""
    return {name: getattr(FLAGS, name) for name in NAMES}


def non_default_settings() -> tuple[tuple[str, object], ...]:
    """`(field, value)` of the settings these flags change from `PolicyConfig`'s defaults
    (`HarnessConfig.cdqn`)."""
    return changed_settings(residual_settings(), _DEFAULT)
