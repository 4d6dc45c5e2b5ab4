"""Policies trained on the types world's logs, served to its TRUE users.

The sim-to-real check of `ganrl/sim2real/harness.py`, for a world the harness does not hold:
`benchmarks/types_world.py`'s (`TypesEnvironment`). Train the policies as a user would, on
the world's logs, then serve them here through the public API (`load_policy`, `recommend`):

  python -m benchmarks.types_world --out=DIR --seed=0
  ./process_data.sh --data_folder=DIR --dataset=types
  experiment_policy/run_policy.sh --data_folder=DIR --dataset=types --save_dir=RUN
  python -m benchmarks.bench_types_sim_to_real --world_seed=0 --run_dir=RUN

Prints, per policy (and the myopic oracle, which knows each user's type), the mean true
clicks per user over the horizon (se), the display sets seen before leaving, and the gap to
GAN-Greedy with a paired 95% interval; every policy meets the same users and noise.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.types_world import TypesEnvironment  # noqa: E402
from ganrl.sim2real.harness import evaluate_true, myopic_oracle, paired_gap  # noqa: E402

flags.DEFINE_integer("world_seed", 0, "Seed the world's log was generated with.")
flags.DEFINE_string("run_dir", None, "The policy run folder (run_policy.sh --save_dir).")
flags.DEFINE_list("policies", [], "Policies to serve (default: every one the run saved).")
flags.DEFINE_list(
    "extra", [], "More policies as NAME=RUN_DIR, e.g. one trained in another run folder."
)
flags.DEFINE_integer("users", 1000, "New true users.")
flags.DEFINE_integer("horizon", 10, "Display sets per user at most.")
flags.DEFINE_integer("k", 5, "Slate size.")
flags.DEFINE_integer("seed", 100, "Seed of the users and their noise.")
FLAGS = flags.FLAGS


def main(argv) -> None:
    del argv
    from ganrl.policy.export import load_policy, recommend

    sources = {}
    if FLAGS.run_dir:
        saved = sorted(
            name[: -len(".json")]
            for name in os.listdir(os.path.join(FLAGS.run_dir, "policies"))
            if name.endswith(".json")
        )
        sources = {name: FLAGS.run_dir for name in FLAGS.policies or saved}
    for pair in FLAGS.extra:
        name, _, folder = pair.partition("=")
        if not folder:
            raise app.UsageError(f"--extra={pair!r}: expected NAME=RUN_DIR")
        sources[name] = folder
    if "gan_greedy" not in sources:
        raise app.UsageError("no gan_greedy among the policies: the gaps are to it")
    env = TypesEnvironment(FLAGS.world_seed)
    recommenders = {}
    for name, folder in sources.items():
        policy = load_policy(folder, name)
        recommenders[name] = lambda h, c, e, p=policy: recommend(p, h, c, FLAGS.k, events=e)
    recommenders["oracle_myopic"] = myopic_oracle(env, FLAGS.k)
    true = {
        name: evaluate_true(env, fn, FLAGS.users, FLAGS.horizon, FLAGS.seed)
        for name, fn in recommenders.items()
    }
    greedy = true["gan_greedy"]["reward"]
    print("| policy | true clicks (se) | sets seen | gap to GAN-Greedy [95% CI] |")
    print("|---|---|---|---|")
    for name, result in true.items():
        reward = result["reward"]
        gap, low, high = paired_gap(reward, greedy)
        se = reward.std(ddof=1) / np.sqrt(len(reward))
        print(
            f"| {name} | {reward.mean():.3f} ({se:.3f}) | {result['steps'].mean():.2f} "
            f"| {gap:+.3f} [{low:+.3f}, {high:+.3f}] |"
        )


if __name__ == "__main__":
    flags.mark_flag_as_required("world_seed")
    app.run(main)
