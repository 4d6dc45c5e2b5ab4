"""The cascading DQN's Q-function and target flags (entry points only), shared by
`main_policy.py`, `main_comparison.py` (through `policy_flags`) and `main_sim_to_real.py`.

Their defaults are `PolicyConfig`'s: the bounded residual over GAN-Greedy's score
(`ganrl.policy.cdqn`). `--cdqn_residual_bound=0` is the unbounded network of the paper (the
CDQN before issue 18).
"""

from __future__ import annotations

from absl import flags

from ganrl.cli import changed_settings
from ganrl.policy.runner import PolicyConfig

FLAGS = flags.FLAGS
_DEFAULT = PolicyConfig(user_model_dir="", test_user_model_dir="", save_dir="")
flags.DEFINE_float(
    "cdqn_residual_bound",
    _DEFAULT.cdqn_residual_bound,
    "CDQN: the learned part moves an item's score by at most this, in the learned reward's "
    "units, around GAN-Greedy's score (0: the unbounded Q-network of the paper).",
)
flags.DEFINE_float(
    "cdqn_uncertainty",
    _DEFAULT.cdqn_uncertainty,
    "CDQN with an ensemble: the bound shrinks by exp(-this * the members' std of the "
    "item's learned reward) (0: not at all).",
)
flags.DEFINE_boolean(
    "cdqn_double_q",
    _DEFAULT.cdqn_double_q,
    "CDQN: the target's next slate picked by the online networks (double Q-learning); "
    "--nocdqn_double_q: by the target networks.",
)
flags.DEFINE_integer(
    "cdqn_n_step", _DEFAULT.cdqn_n_step, "CDQN: rewards per transition before the bootstrap."
)

flags.DEFINE_enum(
    "cdqn_explore",
    _DEFAULT.cdqn_explore,
    ["slate", "bound"],
    "CDQN: an exploring selection shows a uniformly drawn slate ('slate', the paper's) or "
    "the top k of the learned reward plus uniform noise within the residual's bound "
    "('bound': slates the bounded policy could pick).",
)

NAMES = (
    "cdqn_residual_bound",
    "cdqn_uncertainty",
    "cdqn_double_q",
    "cdqn_n_step",
    "cdqn_explore",
)


def cdqn_settings() -> dict:
    """The `PolicyConfig` fields of these flags."""
    return {name: getattr(FLAGS, name) for name in NAMES}


def non_default_settings() -> tuple[tuple[str, object], ...]:
    """`(field, value)` of the settings these flags change from `PolicyConfig`'s defaults
    (`HarnessConfig.cdqn`)."""
    return changed_settings(cdqn_settings(), _DEFAULT)
