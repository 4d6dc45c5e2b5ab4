"""Trains recommendation policies in a learned simulator and tests them in another.

  python experiment_policy/main_policy.py --user_model_dir=runs/yelp__LSTM__entropy__0 \
      --test_user_model_dir=runs/yelp__PW__entropy__1 --policy=all

Flags (`ganrl.cli.policy_flags` and the four below) become a frozen `PolicyConfig`;
`ganrl.policy.runner` does the work.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from absl import app, flags, logging  # noqa: E402

from ganrl.cli import policy_flags  # noqa: E402  (defines the protocol's flags)
from ganrl.cli.distribution_flags import strategy_from_flags  # noqa: E402
from ganrl.cli.errors import report_error, report_stop  # noqa: E402
from ganrl.data.safe_io import DataError  # noqa: E402
from ganrl.policy.runner import PolicyRunner  # noqa: E402
from ganrl.train.interrupt import Interrupted  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("user_model_dir", None, "Run folder of the training simulator's user model.")
flags.DEFINE_string(
    "test_user_model_dir",
    None,
    "Run folder of the test simulator's user model (trained apart: other users, seed or encoder).",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("save_dir", "", "Run folder (default runs/policy/{model}__{seed}).")
flags.DEFINE_boolean(
    "check_flags",
    False,
    "Only check the flags and exit (the run script does, before it trains user models).",
)


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    save_dir = FLAGS.save_dir or os.path.join(
        "runs", "policy", f"{os.path.basename(FLAGS.user_model_dir.rstrip('/'))}__{FLAGS.seed}"
    )
    try:
        config = policy_flags.config_from_flags(
            FLAGS.user_model_dir, FLAGS.test_user_model_dir, save_dir, FLAGS.seed
        )
        if FLAGS.check_flags:
            return 0
        strategy = strategy_from_flags()
        runner = PolicyRunner(config, strategy=strategy)  # checks the flags against the models
        print(f"config: {config}", flush=True)
        results = runner.run()
    except Interrupted as e:
        return report_stop(e)
    except (DataError, FileNotFoundError, ValueError) as e:
        return report_error(e)
    print(
        f"\nin the test simulator ({config.test_user_model_dir}), {config.eval_users} users, "
        f"{config.horizon} steps:"
    )
    for name, r in results["policies"].items():
        line = (
            f"  {name:>13}: cumulative reward {r['cumulative_reward']['mean']:8.3f} "
            f"+- {r['cumulative_reward']['ci95']:.3f}"
        )
        if "ctr" in r:
            line += f"   CTR {r['ctr']['mean']:.3f} +- {r['ctr']['ci95']:.3f}"
        print(line)
    if "ctr_note" in results:
        print(f"  (no CTR: {results['ctr_note']})")
    print(f"results: {os.path.join(config.save_dir, 'results.json')}")
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("user_model_dir")
    flags.mark_flag_as_required("test_user_model_dir")
    app.run(main)
