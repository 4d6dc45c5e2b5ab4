"""The sim-to-real harness: learn simulators from a ground-truth world's logs, train every
policy in them, and serve the policies to the world's true users (`ganrl.sim2real.harness`).

  python experiment_policy/main_sim_to_real.py --world=satiation --seed=0

Writes SAVE_DIR/{world}__{seed}/table.md, table.csv, results.json and sim_vs_true.png (with
--ensemble, in the subfolder ensemble{N}_penalty{L}/); every stage is reused when finished.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganrl.cli import (
    cdqn_flags,  # noqa: E402  (defines the CDQN's flags)
    residual_flags,  # noqa: E402  (the other policies' residual flags)
    selection_flags,  # noqa: E402  (the snapshot-selection flags)
)
from ganrl.cli.errors import report_error, report_stop  # noqa: E402
from ganrl.data.safe_io import DataError  # noqa: E402
from ganrl.data.satiation import SATIATION_WORLDS  # noqa: E402
from ganrl.data.synthetic import DEFAULT_WORLD, world_names  # noqa: E402
from ganrl.policy import registry  # noqa: E402
from ganrl.policy.runner import PolicyConfig  # noqa: E402
from ganrl.sim2real.harness import HarnessConfig, check_settings, run  # noqa: E402
from ganrl.sim2real.true_env import REWARDS  # noqa: E402
from ganrl.simulator.simulator import REWARDS as SIM_REWARDS  # noqa: E402
from ganrl.train.interrupt import Interrupted  # noqa: E402

_DEFAULT = HarnessConfig()
_POLICY_DEFAULT = PolicyConfig(user_model_dir="", test_user_model_dir="", save_dir="")
FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "world",
    DEFAULT_WORLD,
    world_names() + list(SATIATION_WORLDS),
    "The ground-truth world: a ganrl.data.synthetic world, 'satiation' or "
    "'satiation_clickbait' (ganrl.data.satiation).",
)
flags.DEFINE_integer(
    "seed", _DEFAULT.seed, "Seed of the logs, user models, policies and true users."
)
flags.DEFINE_string("save_dir", _DEFAULT.save_dir, "Root of the harness's run folders.")
flags.DEFINE_integer("users", _DEFAULT.users, "Users in the logs.")
flags.DEFINE_float(
    "user_model_epochs",
    _DEFAULT.user_model_epochs,
    "Passes over the training users of each user model (run_gan_user_model.sh's --num_epochs).",
)
flags.DEFINE_list(
    "user_model_args",
    [],
    "Further flags of run_gan_user_model.sh, comma-separated (e.g. --num_itrs=50).",
)
flags.DEFINE_string(
    "policy", "all", "Comma-separated policies, or 'all': " + ", ".join(registry.names())
)
flags.DEFINE_integer(
    "num_itrs",
    _DEFAULT.num_itrs,
    "Training steps of each learning policy in the simulator (episodes x horizon).",
)
flags.DEFINE_integer(
    "sim_eval_users", _DEFAULT.sim_eval_users, "Users of the test simulator's evaluation."
)
flags.DEFINE_integer("true_users", _DEFAULT.true_users, "New users of the true world.")
flags.DEFINE_integer("k", _DEFAULT.k, "Slate size.")
flags.DEFINE_integer("horizon", _DEFAULT.horizon, "Steps per episode.")
flags.DEFINE_integer(
    "ensemble",
    _DEFAULT.ensemble,
    "Further LSTM user models: the policies "
    "train in an ensemble of all but the last and select in the last (0: none).",
)
flags.DEFINE_float(
    "penalty",
    _DEFAULT.penalty,
    "Pessimism of the ensemble: mean - penalty * disagreement (needs --ensemble=2 or more).",
)
flags.DEFINE_integer(
    "reward_ensemble",
    _DEFAULT.reward_ensemble,
    "Further LSTM user models whose mean reward with the training model's GAN-Greedy and "
    "the learning policies' residual rank by; training and selection stay the training "
    "model's (0: none; not with --ensemble).",
)
flags.DEFINE_float(
    "member_share",
    _DEFAULT.member_share,
    "Share of the training users each further LSTM of --ensemble / --reward_ensemble is "
    "fitted to, a different random subset per member (1: all).",
)
flags.DEFINE_enum(
    "true_reward",
    _DEFAULT.true_reward,
    list(REWARDS),
    "Reward in the "
    "ganrl.data.synthetic worlds: the clicked item's true utility, or 1 per "
    "click (the satiation world counts clicks).",
)
flags.DEFINE_enum(
    "sim_reward",
    "auto",
    list(SIM_REWARDS),
    "The learned simulators' reward (PolicyConfig.reward): auto, learned, centred (the "
    "learned reward less the catalogue's mean in the same state) or click.",
)

flags.DEFINE_float(
    "gamma",
    _POLICY_DEFAULT.gamma,
    "The learning policies' discount (PolicyConfig.gamma); the true reward is the "
    "undiscounted sum over the horizon.",
)

flags.DEFINE_boolean(
    "check_flags",
    False,
    "Only check the flags and exit (run_sim_to_real.sh does for every world before the first run).",
)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]} (flags are --NAME=VALUE)", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.WARNING)
    names = () if FLAGS.policy == "all" else tuple(FLAGS.policy.split(","))
    try:
        config = HarnessConfig(
            world=FLAGS.world,
            seed=FLAGS.seed,
            save_dir=FLAGS.save_dir,
            users=FLAGS.users,
            user_model_epochs=FLAGS.user_model_epochs,
            user_model_args=tuple(FLAGS.user_model_args),
            policies=names,
            num_itrs=FLAGS.num_itrs,
            sim_eval_users=FLAGS.sim_eval_users,
            true_users=FLAGS.true_users,
            k=FLAGS.k,
            horizon=FLAGS.horizon,
            true_reward=FLAGS.true_reward,
            ensemble=FLAGS.ensemble,
            penalty=FLAGS.penalty,
            reward_ensemble=FLAGS.reward_ensemble,
            member_share=FLAGS.member_share,
            cdqn=(
                cdqn_flags.non_default_settings()
                + residual_flags.non_default_settings()
                + selection_flags.non_default_settings()
                + ((("reward", FLAGS.sim_reward),) if FLAGS.sim_reward != "auto" else ())
                + ((("gamma", FLAGS.gamma),) if FLAGS.gamma != _POLICY_DEFAULT.gamma else ())
            ),
        )
        if FLAGS.check_flags:
            check_settings(config)
            return 0
        print(f"config: {config}", flush=True)
        run(config)
    except Interrupted as e:
        return report_stop(e)
    except (DataError, FileNotFoundError, ValueError, RuntimeError) as e:
        return report_error(e)
    with open(os.path.join(config.output_dir, "table.md")) as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    app.run(main)
