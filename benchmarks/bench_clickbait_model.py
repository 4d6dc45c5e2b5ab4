"""What the learned user models of a clickbait world know of clickbait.

For a sim-to-real run folder of the `satiation_clickbait` world (`ganrl.sim2real.harness`),
each user model's learned reward r(s, a) for a user with no history, and for users with one
click on each item in turn. Prints, for clickbait items and for the others: the mean r of
the items at the start, the share of clickbait in the start's top k, and how much one click
on such an item moves r of every item (the truth: clickbait lowers every item's utility by
`clickbait_cost`, 1 by default, more than another click does, besides the topic's
tiredness, which both clicks add).

Then, in each user model's own simulator (its leave model on; k, the horizon and the
reward as the harness has them), the clicks per user of GAN-Greedy by that model and of
the same ranking with the clickbait items left out (told which they are): whether the
learned simulator pays a policy for giving up clickbait; and the same two rankings served to
the harness's true users (its users and noise), which say what giving it up truly pays.

Then how the learned fall accumulates: the extra fall of every r after n clickbait clicks
(one a step, distinct random clickbait items) over n clicks on other items, beside the
truth's clickbait_cost (1 - recovery^n) / (1 - recovery) (`--clicks`). With `--demote`, last,
the same two figures (simulated, true) for GAN-Greedy with clickbait's learned reward lowered
by each delta: whether the simulators and the truth agree on how much giving clickbait up is
worth, which a learner in the simulator would have to find.

  python -m benchmarks.bench_clickbait_model runs/sim2real/satiation_clickbait__0
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.data.satiation import load_world  # noqa: E402
from ganrl.policy.base import PolicyFeatures, top_k_slate  # noqa: E402
from ganrl.policy.heuristics import GanGreedy, learned_rewards  # noqa: E402
from ganrl.policy.runner import run_episodes  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import load_true_env  # noqa: E402
from ganrl.simulator.simulator import Simulator, SimulatorConfig  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402


class Demoted:
    """GAN-Greedy (k items) by a user model with the clickbait items' learned reward lowered
    by `delta` (told which they are; `inf`: never shown)."""

    def __init__(self, model, clickbait: np.ndarray, delta: float, k: int):
        self.greedy = GanGreedy(
            PolicyFeatures.from_user_model(model.reward), k, reward_model=model.reward
        )
        self.penalty = tf.constant(np.where(clickbait, min(delta, 1e9), 0.0), tf.float32)

    def scores(self, history, candidates, events=None) -> tf.Tensor:
        r = self.greedy._scores(history, candidates, events)
        return r - tf.gather(self.penalty, candidates)

    def select(self, observation, explore: bool = False) -> tf.Tensor:
        scores = self.scores(observation.history, observation.candidates, observation.events)
        return top_k_slate(scores, self.greedy.k)


def simulated_clicks(
    model, clickbait: np.ndarray, deltas, k: int, horizon: int, users: int, seed: int
) -> list[float]:
    """Mean reward per user, in `model`'s own simulator, of GAN-Greedy with clickbait demoted
    by each of `deltas`, the same users and noise for each."""
    out = []
    for delta in deltas:
        sim = Simulator(model, SimulatorConfig(k=k, horizon=horizon, seed=seed))
        rewards, _, _ = run_episodes(sim, Demoted(model, clickbait, delta, k), users)
        out.append(float(rewards.sum(axis=1).mean()))
    return out


def true_clicks(
    env, model, clickbait: np.ndarray, deltas, k: int, horizon: int, users: int, seed: int
) -> list[float]:
    """Mean true reward per user of the top k by `model`'s learned reward with clickbait
    demoted by each of `deltas`, served to `users` new users of the true world `env` (the
    harness's users and noise for its `seed`)."""
    out = []
    for delta in deltas:
        demoted = Demoted(model, clickbait, delta, k)

        def recommend(history, candidates, events, demoted=demoted):
            every = tf.tile(tf.constant(candidates)[None], [len(history), 1])
            recent = None if events is None else tf.constant(events)
            r = demoted.scores(tf.constant(history), every, recent).numpy()
            return candidates[np.argsort(-r, axis=1, kind="stable")[:, :k]]

        served = harness.evaluate_true(env, recommend, users, horizon, seed + 100)
        out.append(float(served["reward"].mean()))
    return out


def clickbait_figures(model, clickbait: np.ndarray, k: int, history_length: int) -> dict:
    """{'start': (clickbait, other) mean r with no history, 'top_k_share': clickbait's share
    of the start's top k, 'shift': (clickbait, other) mean change of every item's r after
    one click on such an item}."""
    n = len(clickbait)
    history = np.full((n + 1, history_length), -1, np.int32)
    history[1:, 0] = np.arange(n)
    candidates = tf.tile(tf.range(n, dtype=tf.int32)[None], [n + 1, 1])
    r = learned_rewards(model.reward, tf.constant(history), candidates).numpy()
    start = r[0]
    shift = (r[1:] - start).mean(axis=1)
    return {
        "start": (float(start[clickbait].mean()), float(start[~clickbait].mean())),
        "top_k_share": float(clickbait[np.argsort(-start)[:k]].mean()),
        "shift": (float(shift[clickbait].mean()), float(shift[~clickbait].mean())),
    }


def accumulated_shift(
    model, clickbait: np.ndarray, clicks: int, history_length: int, users: int, seed: int
) -> tuple[float, float]:
    """Mean change of every item's r after `clicks` clicks on distinct random clickbait items
    and after as many on other items (`users` random histories each, most recent first)."""
    rng = np.random.default_rng(seed)
    n = len(clickbait)
    history = np.full((2 * users + 1, history_length), -1, np.int32)
    for row, pool in ((1, np.flatnonzero(clickbait)), (1 + users, np.flatnonzero(~clickbait))):
        for user in range(users):
            history[row + user, :clicks] = rng.choice(pool, clicks, replace=False)
    candidates = tf.tile(tf.range(n, dtype=tf.int32)[None], [len(history), 1])
    r = learned_rewards(model.reward, tf.constant(history), candidates).numpy()
    shift = (r[1:] - r[0]).mean(axis=1)
    return float(shift[:users].mean()), float(shift[users:].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a harness run folder of the clickbait world")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--history_length", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--true_users", type=int, default=1000, help="new users of the truth")
    parser.add_argument(
        "--clicks",
        default="1,3,5",
        help="comma-separated numbers of clicks, one a step, after which the accumulated "
        "fall is read",
    )
    parser.add_argument(
        "--demote",
        default="",
        help="comma-separated deltas (e.g. 0.2,0.4,0.8,1.6,inf): also serve GAN-Greedy with "
        "clickbait's learned reward lowered by each, in each model's simulator and to true users",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.clicks.split(",")]
    truth = os.path.join(args.run_dir, "data", f"{harness.DATASET}-truth.npz")
    with np.load(truth) as f:
        world = load_world({key: f[key] for key in f.files})
    env = load_true_env(truth)
    run_seed = int(os.path.basename(os.path.normpath(args.run_dir)).rsplit("__", 1)[1])
    if not world.clickbait.any():
        raise SystemExit(f"{args.run_dir}: its world has no clickbait")
    print(
        f"true extra fall of every utility after a clickbait click: {world.config.clickbait_cost}"
    )
    print(
        "| user model | start r: clickbait / other | clickbait in top k "
        "| shift after a click: clickbait / other | simulated GAN-Greedy / without clickbait "
        "| true GAN-Greedy / without clickbait |"
    )
    print("|---|---|---|---|---|---|")
    names = [n for n in sorted(os.listdir(args.run_dir)) if n.startswith("user_model_")]
    models = {name: load_user_model(os.path.join(args.run_dir, name)) for name in names}
    for name, model in models.items():
        fig = clickbait_figures(model, world.clickbait, args.k, args.history_length)
        greedy, without = simulated_clicks(
            model, world.clickbait, (0.0, np.inf), args.k, args.horizon, args.users, args.seed
        )
        true_greedy, true_without = true_clicks(
            env,
            model,
            world.clickbait,
            (0.0, np.inf),
            args.k,
            args.horizon,
            args.true_users,
            run_seed,
        )
        print(
            f"| {name} | {fig['start'][0]:.3f} / {fig['start'][1]:.3f} | "
            f"{fig['top_k_share']:.2f} | {fig['shift'][0]:+.3f} / {fig['shift'][1]:+.3f} | "
            f"{greedy:.3f} / {without:.3f} | {true_greedy:.3f} / {true_without:.3f} |",
            flush=True,
        )

    c = world.config
    print(
        "\nExtra fall of every r after n clickbait clicks, one a step, over n other clicks "
        "(the truth: clickbait_cost (1 - recovery^n) / (1 - recovery)):"
    )
    print("| user model | " + " | ".join(f"n = {n}" for n in counts) + " |")
    print("|---|" + "---|" * len(counts))
    truth = [
        c.clickbait_cost * (1 - c.satiation_recovery**n) / (1 - c.satiation_recovery)
        for n in counts
    ]
    print("| truth | " + " | ".join(f"{t:.3f}" for t in truth) + " |")
    for name, model in models.items():
        extra = []
        for n in counts:
            bait, other = accumulated_shift(
                model, world.clickbait, n, args.history_length, 200, args.seed
            )
            extra.append(other - bait)
        print(f"| {name} | " + " | ".join(f"{e:.3f}" for e in extra) + " |", flush=True)

    if not args.demote:
        return
    deltas = [0.0] + [float(d) for d in args.demote.split(",")]
    print(
        "\nGAN-Greedy with clickbait's learned reward lowered by delta (inf: never shown): "
        "clicks per user in the model's own simulator / for true users"
    )
    print("| user model | " + " | ".join(f"delta = {d:g}" for d in deltas) + " |")
    print("|---|" + "---|" * len(deltas))
    for name, model in models.items():
        sim = simulated_clicks(
            model, world.clickbait, deltas, args.k, args.horizon, args.users, args.seed
        )
        true = true_clicks(
            env, model, world.clickbait, deltas, args.k, args.horizon, args.true_users, run_seed
        )
        cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(sim, true, strict=True))
        print(f"| {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
