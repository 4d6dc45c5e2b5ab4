"""The snapshot-selection (and training-reward) flags of the learning policies (entry points
only), shared by `main_policy.py`, `main_comparison.py` (through `policy_flags`) and
`main_sim_to_real.py`.

Their defaults are `PolicyConfig`'s (`ganrl.policy.runner`, "Snapshot selection"): a
snapshot ranks by the lower bound of its validation gain over the untrained start, and is
never taken if the logs say it loses clicks against the start (by self-normalised IPS or
by the doubly robust estimate).
"""

from __future__ import annotations

from absl import flags

from ganrl.cli import changed_settings
from ganrl.policy.runner import PolicyConfig

FLAGS = flags.FLAGS
_DEFAULT = PolicyConfig(user_model_dir="", test_user_model_dir="", save_dir="")
flags.DEFINE_float(
    "select_margin",
    _DEFAULT.select_margin,
    "Snapshot selection: a snapshot ranks by the lower bound mean - select_margin * se of "
    "its paired gain over the untrained start on the validation users (0: by its mean).",
)
flags.DEFINE_float(
    "select_log_drop",
    _DEFAULT.select_log_drop,
    "Snapshot selection: never take a snapshot whose self-normalised IPS estimate of clicks "
    "on the logged validation users is more than this share below the untrained start's "
    "(1: no such check).",
)

flags.DEFINE_list(
    "select_log_estimators",
    list(_DEFAULT.select_log_estimators),
    "Snapshot selection: the off-policy estimates (of snips, dr) select_log_drop checks "
    "against the untrained start's: self-normalised IPS and doubly robust (empty: none).",
)

flags.DEFINE_integer(
    "select_users",
    _DEFAULT.select_users,
    "Snapshot selection: the validation users each snapshot is run on.",
)
flags.DEFINE_boolean(
    "expected_reward",
    _DEFAULT.expected_reward,
    "Learning policies learn from, and are validated by, each slate's expected reward under "
    "the simulator (its click probabilities) instead of the sampled click's.",
)

NAMES = (
    "select_margin",
    "select_log_drop",
    "select_log_estimators",
    "select_users",
    "expected_reward",
)


def selection_settings() -> dict:
    """The `PolicyConfig` fields of these flags."""
    settings = {name: getattr(FLAGS, name) for name in NAMES}
    settings["select_log_estimators"] = tuple(settings["select_log_estimators"])
    return settings


def non_default_settings() -> tuple[tuple[str, object], ...]:
    """`(field, value)` of the settings these flags change from the defaults
    (`HarnessConfig.cdqn`)."""
    return changed_settings(selection_settings(), _DEFAULT)
