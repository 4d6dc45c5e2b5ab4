"""The protocol flags of `main_policy.py` and `main_comparison.py` (entry points only).

Every flag of `PolicyConfig` but the user models, the run folder and the seed, which each
entry point sets its own way; `config_from_flags` adds those four.
"""

from __future__ import annotations

from absl import flags

from ganrl.cli import (
    cdqn_flags,  # (defines the CDQN's flags)
    residual_flags,  # (defines the other learning policies' residual flags)
    selection_flags,  # (defines the snapshot-selection flags)
)
from ganrl.policy import registry
from ganrl.policy.runner import PolicyConfig

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "policy", "all", "Comma-separated policies, or 'all': " + ", ".join(registry.names())
)
flags.DEFINE_integer("k", 5, "Slate size.")
flags.DEFINE_integer("n_candidates", 0, "Candidates drawn per user and step (0: all items).")
flags.DEFINE_integer("horizon", 10, "Steps per episode.")
flags.DEFINE_enum(
    "reward",
    "auto",
    ["auto", "learned", "centred", "click"],
    "Reward: the learned "
    "reward of the clicked item, the same less the catalogue's mean learned reward in that "
    "state (centred), or the click indicator; auto: the click "
    "indicator where the user model learned a no-click option, else learned.",
)
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
flags.DEFINE_integer(
    "select_every",
    20,
    "Validate a learning policy in the training "
    "simulator every this many episodes and test its best snapshot (0: the "
    "last one).",
)
flags.DEFINE_integer(
    "regret_itrs",
    300,
    "Online steps of LinUCB's regret measurement in the test simulator (0: skip).",
)
flags.DEFINE_list(
    "ensemble_dirs",
    [],
    "Further user models of the training simulator: it "
    "becomes an ensemble of --user_model_dir and these but the last, in which "
    "snapshots are selected (held out).",
)
flags.DEFINE_list(
    "reward_dirs",
    [],
    "Further user models of the same logs (other seeds): GAN-Greedy and the learning "
    "policies' bounded residual rank by the mean learned reward of --user_model_dir and "
    "these; the training simulator and snapshot selection stay --user_model_dir's. Not "
    "with --ensemble_dirs.",
)
flags.DEFINE_boolean(
    "mean_reward",
    True,
    "With --ensemble_dirs or --reward_dirs: GAN-Greedy and the learning policies' bounded "
    "residual rank by the members' mean learned reward, not by --user_model_dir's alone.",
)
flags.DEFINE_float(
    "penalty",
    0.0,
    "Pessimism: the training reward is the ensemble's mean less "
    "this times its disagreement (needs two --ensemble_dirs or more).",
)
flags.DEFINE_integer(
    "off_policy_users",
    500,
    "Logged validation users of the off-policy estimates of every policy (0: none).",
)
flags.DEFINE_integer(
    "off_policy_events",
    50,
    "The off-policy estimates replay each of those users' first this many events.",
)
flags.DEFINE_boolean(
    "leave",
    True,
    "Simulated users leave by their user model's leave model (leave_model.json in its run "
    "folder; none there: sessions last the horizon). --noleave turns it off.",
)


def config_from_flags(
    user_model_dir: str, test_user_model_dir: str, save_dir: str, seed: int
) -> PolicyConfig:
    """The frozen config of one protocol run: these four from the caller, the rest from
    the flags."""
    names = registry.names() if FLAGS.policy == "all" else FLAGS.policy.split(",")
    return PolicyConfig(
        user_model_dir=user_model_dir,
        test_user_model_dir=test_user_model_dir,
        save_dir=save_dir,
        policies=tuple(names),
        k=FLAGS.k,
        n_candidates=FLAGS.n_candidates,
        horizon=FLAGS.horizon,
        reward=FLAGS.reward,
        gamma=FLAGS.gamma,
        learning_rate=FLAGS.learning_rate,
        num_itrs=FLAGS.num_itrs,
        batch_size=FLAGS.batch_size,
        train_batch_size=FLAGS.train_batch_size,
        hidden=FLAGS.hidden,
        epsilon_start=FLAGS.epsilon_start,
        epsilon_end=FLAGS.epsilon_end,
        epsilon_steps=FLAGS.epsilon_steps,
        target_update=FLAGS.target_update,
        eval_users=FLAGS.eval_users,
        adapt_itrs=FLAGS.adapt_itrs,
        regret_itrs=FLAGS.regret_itrs,
        select_every=FLAGS.select_every,
        seed=seed,
        ensemble_dirs=tuple(FLAGS.ensemble_dirs),
        reward_dirs=tuple(FLAGS.reward_dirs),
        penalty=FLAGS.penalty,
        mean_reward=FLAGS.mean_reward,
        off_policy_users=FLAGS.off_policy_users,
        off_policy_events=FLAGS.off_policy_events,
        leave=FLAGS.leave,
        **cdqn_flags.cdqn_settings(),
        **residual_flags.residual_settings(),
        **selection_flags.selection_settings(),
    )
