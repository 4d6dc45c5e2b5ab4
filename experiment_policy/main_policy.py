"""Trains recommendation policies in a learned simulator and tests them in another.

  python experiment_policy/main_policy.py --user_model_dir=runs/yelp__LSTM__entropy__0 \
      --test_user_model_dir=runs/yelp__PW__entropy__1 --policy=all

Flags become a frozen `PolicyConfig`; `ganrl.policy.runner` does the work.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganrl.data.safe_io import DataError  # noqa: E402
from ganrl.policy import registry  # noqa: E402
from ganrl.policy.runner import PolicyConfig, PolicyRunner  # noqa: E402
from ganrl.train.distribute import STRATEGIES, make_strategy  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("user_model_dir", None, "Run folder of the training simulator's user model.")
flags.DEFINE_string("test_user_model_dir", None, "Run folder of the test simulator's user model "
                    "(trained apart: other users, seed or encoder).")
flags.DEFINE_string("policy", "all", "Comma-separated policies, or 'all': "
                    + ", ".join(registry.names()))
flags.DEFINE_integer("k", 5, "Slate size.")
flags.DEFINE_integer("n_candidates", 0, "Candidates drawn per user and step (0: all items).")
flags.DEFINE_integer("horizon", 10, "Steps per episode.")
flags.DEFINE_enum("reward", "auto", ["auto", "learned", "click"], "Reward: the learned "
                  "reward of the clicked item, or the click indicator; auto: the click "
                  "indicator where the user model learned a no-click option, else learned.")
flags.DEFINE_float("gamma", 0.9, "Discount.")
flags.DEFINE_float("learning_rate", 0.001, "CDQN learning rate.")
flags.DEFINE_integer("num_itrs", 2000, "Training steps in the simulator (episodes x horizon).")
flags.DEFINE_integer("batch_size", 64, "Simulated users per episode.")
flags.DEFINE_integer("train_batch_size", 256, "Replay minibatch.")
flags.DEFINE_float("epsilon_start", 1.0, "Exploration at the start.")
flags.DEFINE_float("epsilon_end", 0.05, "Exploration at the end of the schedule.")
flags.DEFINE_integer("epsilon_steps", 1000, "Selections over which epsilon decays linearly.")
flags.DEFINE_integer("target_update", 100, "Updates between target-network copies.")
flags.DEFINE_integer("hidden", 64, "Hidden units of each Q^j.")
flags.DEFINE_integer("eval_users", 1000, "Users simulated in the test simulator.")
flags.DEFINE_integer("adapt_itrs", 300, "Online steps of the adaptation experiment (0: skip).")
flags.DEFINE_integer("select_every", 20, "Validate a learning policy in the training "
                     "simulator every this many episodes and test its best snapshot (0: the "
                     "last one).")
flags.DEFINE_integer("regret_itrs", 300, "Online steps of LinUCB's regret measurement in the "
                     "test simulator (0: skip).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("save_dir", "", "Run folder (default runs/policy/{model}__{seed}).")
flags.DEFINE_enum("distribution", "default", list(STRATEGIES), "tf.distribute strategy of the "
                  "CDQN's updates: one device, the GPUs of this host, or the hosts of "
                  "TF_CONFIG.")
flags.DEFINE_integer("cpu_replicas", 0, "With --distribution=mirrored on a machine without "
                     "GPUs: split the CPU into this many logical devices (for testing).")


def config_from_flags(user_model_dir: str, test_user_model_dir: str, save_dir: str,
                      seed: int) -> PolicyConfig:
    """The frozen config of one protocol run: these four from the caller, the rest from
    the flags (shared with `main_comparison.py`)."""
    names = registry.names() if FLAGS.policy == "all" else FLAGS.policy.split(",")
    return PolicyConfig(
        user_model_dir=user_model_dir, test_user_model_dir=test_user_model_dir,
        save_dir=save_dir, policies=tuple(names), k=FLAGS.k, n_candidates=FLAGS.n_candidates,
        horizon=FLAGS.horizon, reward=FLAGS.reward, gamma=FLAGS.gamma,
        learning_rate=FLAGS.learning_rate, num_itrs=FLAGS.num_itrs,
        batch_size=FLAGS.batch_size, train_batch_size=FLAGS.train_batch_size,
        hidden=FLAGS.hidden, epsilon_start=FLAGS.epsilon_start, epsilon_end=FLAGS.epsilon_end,
        epsilon_steps=FLAGS.epsilon_steps, target_update=FLAGS.target_update,
        eval_users=FLAGS.eval_users, adapt_itrs=FLAGS.adapt_itrs,
        regret_itrs=FLAGS.regret_itrs, select_every=FLAGS.select_every, seed=seed)


def strategy_from_flags():
    """The strategy of --distribution (call before anything touches a device)."""
    return make_strategy(FLAGS.distribution, FLAGS.cpu_replicas)


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    strategy = strategy_from_flags()
    save_dir = FLAGS.save_dir or os.path.join(
        "runs", "policy", f"{os.path.basename(FLAGS.user_model_dir.rstrip('/'))}__{FLAGS.seed}")
    try:
        config = config_from_flags(FLAGS.user_model_dir, FLAGS.test_user_model_dir, save_dir,
                                   FLAGS.seed)
        runner = PolicyRunner(config, strategy=strategy)  # checks the flags against the models
        print(f"config: {config}", flush=True)
        results = runner.run()
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"\nin the test simulator ({config.test_user_model_dir}), {config.eval_users} users, "
          f"{config.horizon} steps:")
    for name, r in results["policies"].items():
        line = (f"  {name:>13}: cumulative reward {r['cumulative_reward']['mean']:8.3f} "
                f"+- {r['cumulative_reward']['ci95']:.3f}")
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
