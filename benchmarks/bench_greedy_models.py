"""Which of a sim-to-real run's user models makes the better greedy recommender for TRUE users.

For harness run folders (`experiment_policy/main_sim_to_real.py`, `SAVE_DIR/{world}__{seed}`)
it serves the harness's true users (`harness.evaluate_true`, same users and noise as the
harness's table) with the top k by the learned reward r(s, a) of the training user model
(LSTM, what GAN-Greedy uses), of the test user model (PW), and of the mean of the two (raw,
and with each model's scores standardised per user over the catalogue), each replaying the
users' recent display sets (`learned_rewards(..., events=)`). A run folder with ensemble
members (`--ensemble`, `user_model_LSTM__2`, ...) also gets the mean of the training model and
every member ("members"): the same architecture on the same logs, other seeds; each member
alone; and the average of the single LSTMs' figures ("single_average": what GAN-Greedy with
one LSTM of a random seed serves on average; not a ranking). It prints the true reward of
each and its paired gap to the training model's.

  python -m benchmarks.bench_greedy_models runs/sim2real/lag_popular_always__0
"""

from __future__ import annotations

import argparse
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.policy.heuristics import learned_rewards  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import load_true_env  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402

MODELS = {"lstm": "user_model_LSTM__0", "pw": "user_model_PW__1"}
RANKINGS = {
    "lstm": (("lstm",), False),
    "pw": (("pw",), False),
    "mean": (("lstm", "pw"), False),
    "mean_standardised": (("lstm", "pw"), True),
}
MEMBER = re.compile(r"user_model_LSTM__([2-9]|[1-9][0-9]+)$")


def members(run_dir: str) -> dict[str, str]:
    """{name: folder} of the run folder's finished ensemble members, in seed order."""
    found = []
    for folder in os.listdir(run_dir):
        match = MEMBER.match(folder)
        if match and os.path.exists(os.path.join(run_dir, folder, "results.json")):
            found.append((int(match.group(1)), folder))
    return {f"member{offset}": folder for offset, folder in sorted(found)}


def greedy(scores: dict, names: tuple[str, ...], standardise: bool, k: int):
    """The recommender of the top k by the mean of the named models' scores."""

    def recommend(history, candidates, events):
        every = tf.tile(tf.constant(candidates)[None], [len(history), 1])
        recent = None if events is None else tf.constant(events)
        parts = []
        for name in names:
            r = scores[name](tf.constant(history), every, recent).numpy()
            if standardise:
                r = (r - r.mean(1, keepdims=True)) / (r.std(1, keepdims=True) + 1e-9)
            parts.append(r)
        return candidates[np.argsort(-np.mean(parts, axis=0), axis=1)[:, :k]]

    return recommend


def compare(
    run_dir: str, users: int, k: int, horizon: int, true_reward: str, max_members: int = 0
) -> dict:
    """{ranking: `[users]` true rewards} of one run folder."""
    seed = int(os.path.basename(os.path.normpath(run_dir)).rsplit("__", 1)[1])
    env = load_true_env(os.path.join(run_dir, "data", f"{harness.DATASET}-truth.npz"), true_reward)
    scores = {}
    found = members(run_dir)
    folders = {**MODELS, **dict(list(found.items())[: max_members or len(found)])}
    rankings = dict(RANKINGS)
    if len(folders) > len(MODELS):
        ensemble = ("lstm",) + tuple(folders)[len(MODELS) :]
        rankings.update(members=(ensemble, False), members_standardised=(ensemble, True))
        rankings.update({name: ((name,), False) for name in ensemble[1:]})
    for name, folder in folders.items():
        model = load_user_model(os.path.join(run_dir, folder)).reward
        scores[name] = tf.function(
            lambda h, c, e, m=model: learned_rewards(m, h, c, events=e), reduce_retracing=True
        )
    rewards = {
        ranking: harness.evaluate_true(
            env, greedy(scores, names, standardise, k), users, horizon, seed + 100
        )["reward"]
        for ranking, (names, standardise) in rankings.items()
    }
    if "members" in rankings:  # what one LSTM of a random seed serves, on average
        singles = rankings["members"][0]
        rewards["single_average"] = np.mean([rewards[name] for name in singles], axis=0)
    return rewards


def harness_run_parser(description: str) -> argparse.ArgumentParser:
    """A benchmark's command line over harness run folders: the folders, and the harness's
    true users, slate size and horizon."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run_dirs", nargs="+", help="harness run folders ({world}__{seed})")
    parser.add_argument("--users", type=int, default=1000, help="the harness's true users")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=10)
    return parser


def main() -> None:
    parser = harness_run_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--true_reward", default="utility", help="as the harness's flag")
    parser.add_argument(
        "--max_members", type=int, default=0, help="ensemble members used (0: every one)"
    )
    args = parser.parse_args()
    print("true reward (se); gap to the LSTM's ranking [95% CI], paired over users")
    for run_dir in args.run_dirs:
        rewards = compare(
            run_dir, args.users, args.k, args.horizon, args.true_reward, args.max_members
        )
        print("| run | " + " | ".join(rewards) + " |")
        print("|---|" + "---|" * len(rewards))
        cells = []
        for reward in rewards.values():
            gap, low, high = harness.paired_gap(reward, rewards["lstm"])
            d = 1 if abs(rewards["lstm"].mean()) >= 100 else 3  # decimals
            cells.append(
                f"{reward.mean():.{d}f} ({reward.std() / np.sqrt(len(reward)):.{d}f}), "
                f"{gap:+.{d}f} [{low:+.{d}f}, {high:+.{d}f}]"
            )
        print(f"| {run_dir} | " + " | ".join(cells) + " |", flush=True)
        if "single_average" in rewards:
            gap, low, high = harness.paired_gap(rewards["members"], rewards["single_average"])
            d = 1 if abs(rewards["lstm"].mean()) >= 100 else 3
            print(f"members - single_average: {gap:+.{d}f} [{low:+.{d}f}, {high:+.{d}f}]")


if __name__ == "__main__":
    main()
