"""What the learned user models of a clickbait world know of clickbait.

For a sim-to-real run folder of the `satiation_clickbait` world (`ganrl.sim2real.harness`),
each user model's learned reward r(s, a) for a user with no history, and for users with one
click on each item in turn. Prints, for clickbait items and for the others: the mean r of
the items at the start, the share of clickbait in the start's top k, and how much one click
on such an item moves r of every item (the truth: clickbait lowers every item's utility by
`clickbait_cost`, 1 by default, more than another click does, besides the topic's
tiredness, which both clicks add).

  python -m benchmarks.bench_clickbait_model runs/sim2real/satiation_clickbait__0
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.data.satiation import load_world  # noqa: E402
from ganrl.policy.heuristics import learned_rewards  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a harness run folder of the clickbait world")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--history_length", type=int, default=10)
    args = parser.parse_args()
    with np.load(os.path.join(args.run_dir, "data", "synthetic-truth.npz")) as f:
        world = load_world({key: f[key] for key in f.files})
    if not world.clickbait.any():
        raise SystemExit(f"{args.run_dir}: its world has no clickbait")
    print(
        f"true extra fall of every utility after a clickbait click: {world.config.clickbait_cost}"
    )
    print(
        "| user model | start r: clickbait / other | clickbait in top k "
        "| shift after a click: clickbait / other |"
    )
    print("|---|---|---|---|")
    for name in sorted(os.listdir(args.run_dir)):
        if not name.startswith("user_model_"):
            continue
        model = load_user_model(os.path.join(args.run_dir, name))
        fig = clickbait_figures(model, world.clickbait, args.k, args.history_length)
        print(
            f"| {name} | {fig['start'][0]:.3f} / {fig['start'][1]:.3f} | "
            f"{fig['top_k_share']:.2f} | {fig['shift'][0]:+.3f} / {fig['shift'][1]:+.3f} |"
        )


if __name__ == "__main__":
    main()
