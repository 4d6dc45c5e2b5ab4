"""How much a synthetic-world user model's ranking of the catalogue follows the logs' exposure.

For sim-to-real run folders of a `ganrl.data.synthetic` world (`{world}__{seed}`), it takes
each user model's learned reward r(s, a) of every item for a user with no history and prints
its Spearman correlation with the items' mean true utility over the world's users (theta . v
+ b) and its Pearson correlation with log(1 + the item's display count in the training
logs).

  python -m benchmarks.bench_exposure runs/sim2real/lag_popular_always__2
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.policy.heuristics import learned_rewards  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402

MODELS = ("user_model_LSTM__0", "user_model_PW__1")


def ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


def exposure(run_dir: str) -> dict[str, tuple[float, float]]:
    """{model folder: (Spearman with mean true utility, Pearson with log display count)}."""
    truth = np.load(os.path.join(run_dir, "data", f"{harness.DATASET}-truth.npz"))
    train = truth["event_split"] == 0
    shown = truth["display"][train][truth["display_mask"][train]]
    n_items = len(truth["item_bias"])
    counts = np.bincount(shown, minlength=n_items)
    mean_utility = (truth["user_taste"] @ truth["item_vectors"].T + truth["item_bias"]).mean(0)
    out = {}
    for folder in MODELS:
        model = load_user_model(os.path.join(run_dir, folder)).reward
        r = learned_rewards(model, tf.fill([1, 10], -1), tf.range(n_items)[None]).numpy()[0]
        out[folder] = (
            float(np.corrcoef(ranks(r), ranks(mean_utility))[0, 1]),
            float(np.corrcoef(r, np.log1p(counts))[0, 1]),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="harness run folders of a synthetic world")
    args = parser.parse_args()
    print("| run | model | Spearman with mean true utility | correlation with log display count |")
    print("|---|---|---|---|")
    for run_dir in args.run_dirs:
        for folder, (spearman, pearson) in exposure(run_dir).items():
            print(f"| {run_dir} | {folder} | {spearman:.3f} | {pearson:.3f} |", flush=True)


if __name__ == "__main__":
    main()
