"""Does a simulator of a synthetic world's own form, fitted on its logs, rank policies as the
truth does?

For harness run folders of `ganrl.data.synthetic` worlds (`SAVE_DIR/{world}__{seed}`) it fits
the correctly specified reference learner (`benchmarks/reference_mle.py`: the generator's form
with the item vectors v, biases b and history weights free) on the run's logs and makes it a
simulator: the world's `SyntheticEnvironment` with the fitted v, b and lag weights, new users'
tastes drawn from the N(0, I) prior, reward the clicked item's utility. Five fixed policies
meet the harness's true users and this simulator's (same seeds):
- `gan_greedy`: the top k by the run's training user model (`user_model_LSTM__0`);
- `most_popular`: the k items clicked most in the training logs;
- `random`: k items drawn uniformly;
- `fitted_bias`: the top k by the fitted b;
- `fitted_form`: the top k by the fitted form with the prior's mean taste (h . v + b).
It prints each policy's true and simulated reward and the Spearman correlation of the two
over the five (docs/sim_to_real.md, "A simulator of the lag world's own form").

  python -m benchmarks.bench_fitted_simulator runs/sim2real/lag_popular_always__1
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import reference_mle  # noqa: E402
from benchmarks.bench_greedy_models import greedy, harness_run_parser  # noqa: E402
from ganrl.data.dataset import SPLIT_NAMES, load_split_data  # noqa: E402
from ganrl.policy.heuristics import learned_rewards  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import SyntheticEnvironment, load_true_env  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402
from ganrl.user_model_baselines.neighbours import training_clicks  # noqa: E402


class FittedEnvironment(SyntheticEnvironment):
    """A `lag` world's form with fitted item vectors, biases and lag weights `[L]`."""

    def __init__(self, config, item_vectors, item_bias, lag_weights):
        super().__init__(config, item_vectors, item_bias, "utility")
        self.lag_weights = lag_weights

    def utilities(self, items: np.ndarray | None = None) -> np.ndarray:
        taste = self.theta + lag_effect(self.v, self.earlier, self.lag_weights)
        if items is None:
            return taste @ self.v.T + self.b[None, :]
        return np.einsum("ud,und->un", taste, self.v[items]) + self.b[items]


def lag_effect(vectors: np.ndarray, earlier: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`[U, d]` sum_l w_l v(c_l) over each user's last clicks `earlier [U, >= L]` (most recent
    first, -1 for none)."""
    earlier = earlier[:, : len(weights)]
    valid = earlier >= 0
    return np.einsum(
        "ul,uld->ud", weights[None, : earlier.shape[1]] * valid, vectors[np.maximum(earlier, 0)]
    )


def fit_reference(data_folder: str) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """The reference learner fitted on the logs of `data_folder` (dataset `synthetic`): its
    test figures, v, b and lag weights."""
    config = reference_mle.config_for(data_folder, harness.DATASET)
    if config.history != "lag":
        raise ValueError(f"{data_folder}: a {config.history!r} world; expected a 'lag' one")
    data = load_split_data(data_folder, harness.DATASET, mmap=False)
    splits = {
        name: reference_mle.user_tensors(data.splits[name], config.history_depth)
        for name in SPLIT_NAMES
    }
    learner = reference_mle.ReferenceLearner(data.n_items, config, has_no_click=False)
    learner.fit(splits["train"], splits["vali"])
    model = learner.model
    return (
        learner.evaluate(splits["test"]),
        model.item_vectors.numpy().astype(np.float64),
        model.item_bias.numpy().astype(np.float64),
        model.history_weights.numpy().astype(np.float64),
    )


def policies(run_dir: str, data_folder: str, v, b, w, k: int, seed: int) -> dict:
    """{name: recommender(history, candidates, events) -> [U, k]} of the module docstring."""
    model = load_user_model(os.path.join(run_dir, "user_model_LSTM__0")).reward
    score = tf.function(
        lambda h, c, e: learned_rewards(model, h, c, events=e), reduce_retracing=True
    )
    clicks = training_clicks(load_split_data(data_folder, harness.DATASET).splits["train"])
    popular = np.argsort(-clicks, kind="stable")[:k].astype(np.int32)
    by_bias = np.argsort(-b, kind="stable")[:k].astype(np.int32)
    rng = np.random.default_rng(seed)

    def fitted_form(history, candidates, events):
        scores = lag_effect(v, history, w) @ v.T + b[None, :]
        return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int32)

    return {
        "gan_greedy": greedy({"lstm": score}, ("lstm",), False, k),
        "most_popular": lambda h, c, e: np.tile(popular, (len(h), 1)),
        "random": lambda h, c, e: np.argsort(rng.random((len(h), len(c))), axis=1)[:, :k],
        "fitted_bias": lambda h, c, e: np.tile(by_bias, (len(h), 1)),
        "fitted_form": fitted_form,
    }


def compare(run_dir: str, users: int, k: int, horizon: int) -> None:
    seed = int(os.path.basename(os.path.normpath(run_dir)).rsplit("__", 1)[1])
    data_folder = os.path.join(run_dir, "data")
    truth = load_true_env(os.path.join(data_folder, f"{harness.DATASET}-truth.npz"), "utility")
    test, v, b, w = fit_reference(data_folder)
    print(
        f"{run_dir}: reference test prec@1 {test['prec1']:.3f}, loss {test['loss']:.3f}; "
        f"fitted lag weights {np.round(w, 2).tolist()}"
    )
    fitted = FittedEnvironment(truth.config, v, b, w)
    true_means, fitted_means = [], []
    print("| policy | true reward (se) | fitted-form simulator (se) |\n|---|---|---|")
    for name, recommender in policies(run_dir, data_folder, v, b, w, k, seed).items():
        row = []
        for env, means in ((truth, true_means), (fitted, fitted_means)):
            reward = harness.evaluate_true(env, recommender, users, horizon, seed + 100)["reward"]
            means.append(reward.mean())
            row.append(f"{reward.mean():.1f} ({reward.std() / np.sqrt(users):.1f})")
        print(f"| {name} | {row[0]} | {row[1]} |", flush=True)
    print(f"Spearman, simulator vs true: {harness.spearman(true_means, fitted_means):.2f}")


def main() -> None:
    args = harness_run_parser(__doc__.split("\n\n")[0]).parse_args()
    for run_dir in args.run_dirs:
        compare(run_dir, args.users, args.k, args.horizon)


if __name__ == "__main__":
    main()
