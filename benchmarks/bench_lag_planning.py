"""Where planning pays in a lag world, and what the learned user models know of it.

In a `ganrl.data.synthetic` world with a `lag` history a click on item i adds w_l v_i to the
user's taste for her next L steps, so i's own utility rises by about w_1 |v_i|^2 right after
it is clicked. For harness run folders of such a world (`SAVE_DIR/lag_*__{seed}`) this prints:

1. `headroom`: the harness's true users (`harness.evaluate_true`, its users and noise)
   served by policies that know the true state: the top k by u(i) now + lam W |v_i|^2, W the
   sum of the lag weights (what i is worth once the user has clicked it again and again);
   lam = 0 is the myopic oracle. Gaps are paired over users.
2. `lookahead`: GAN-Greedy by a learned user model (the top k by r(s, i)) against a one-step
   lookahead in the same model: of the `--top` items of highest r(s, .), the k of highest
   r(s, i) + g [max_j r(s + i, j) - mean_j r(s + i, j)], s + i the state after a click on i
   (centred: the learned reward's level per state is not identified by choices). Both read the
   click history alone, not the display sets, so GAN-Greedy here may differ a little from the
   harness's (which replays them).
3. `self_gain`: each model's change of r(s, i) - mean_j r(s, j) when i is clicked, from an
   empty history, against the truth's w_1 (|v_i|^2 - v_i . mean v): the mean over the
   catalogue and the correlation over items.
4. `logs`: the share of logged display sets that hold one of the user's last L clicks (and
   the last one), and how often such an item was the one chosen.

  python -m benchmarks.bench_lag_planning runs/sim2real/lag_popular_always__0 [--users=500]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.data.synthetic import earlier_clicks  # noqa: E402
from ganrl.policy.heuristics import learned_rewards  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import SyntheticEnvironment, load_true_env  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402

MODELS = ("user_model_LSTM__0", "user_model_PW__1")
LAMBDAS = (0.0, 0.5, 1.0, 2.0)
# Rows of next states scored at once by the lookahead (memory: this many x the catalogue).
CHUNK = 6000


def lock_in(env: SyntheticEnvironment, lam: float, k: int) -> harness.Recommender:
    """The top k by the true utility now plus lam W |v_i|^2."""
    bonus = lam * env.config.lag_weights().sum() * (env.v**2).sum(axis=1)

    def recommend(history, candidates, events=None):
        score = env.utilities()[:, candidates] + bonus[candidates]
        return candidates[np.argsort(-score, axis=1, kind="stable")[:, :k]]

    return recommend


def reward_function(run_dir: str, folder: str):
    """r(s, .) of a run's user model: `[B, H]` click histories, `[N]` candidates -> `[B, N]`."""
    model = load_user_model(os.path.join(run_dir, folder)).reward
    scores = tf.function(lambda h, c: learned_rewards(model, h, c), reduce_retracing=True)

    def rewards(history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        out = []
        for first in range(0, len(history), CHUNK):
            rows = tf.constant(history[first : first + CHUNK], tf.int32)
            every = tf.tile(tf.constant(candidates, tf.int32)[None], [len(rows), 1])
            out.append(scores(rows, every).numpy())
        return np.concatenate(out)

    return rewards


def lookahead(rewards, gain: float, k: int, top: int) -> harness.Recommender:
    """GAN-Greedy by `rewards` (gain 0) or its one-step lookahead (module docstring)."""

    def recommend(history, candidates, events=None):
        r = rewards(history, candidates)
        if not gain:
            return candidates[np.argsort(-r, axis=1, kind="stable")[:, :k]]
        users = len(history)
        best = np.argsort(-r, axis=1, kind="stable")[:, :top]  # [U, top] candidate indices
        clicked = candidates[best].reshape(-1, 1)
        after = np.concatenate([clicked, np.repeat(history, top, axis=0)[:, :-1]], axis=1)
        r_next = rewards(after, candidates)
        value = np.take_along_axis(r, best, axis=1) + gain * (
            r_next.max(axis=1) - r_next.mean(axis=1)
        ).reshape(users, top)
        chosen = np.take_along_axis(best, np.argsort(-value, axis=1, kind="stable")[:, :k], 1)
        return candidates[chosen]

    return recommend


def self_gain(rewards, env: SyntheticEnvironment) -> tuple[float, float, float]:
    """(learned mean, true mean, correlation over items) of the gain of a click on i on i."""
    n = env.n_items
    items = np.arange(n)
    empty = rewards(np.full((1, env.config.history_depth), -1), items)[0]
    history = np.full((n, env.config.history_depth), -1)
    history[:, 0] = items
    after = rewards(history, items)
    learned = (np.diag(after) - after.mean(axis=1)) - (empty - empty.mean())
    v = env.v
    truth = env.config.lag_weights()[0] * ((v**2).sum(axis=1) - v @ v.mean(axis=0))
    return float(learned.mean()), float(truth.mean()), float(np.corrcoef(learned, truth)[0, 1])


def logged_repeats(truth_path: str, lags: int) -> dict[str, float]:
    """Shares of logged display sets holding one of the user's last `lags` clicks / the last
    one, and how often such an item was the one chosen."""
    with np.load(truth_path, allow_pickle=False) as f:
        display, mask = f["display"], f["display_mask"]
        clicked_pos, offsets = f["clicked_pos"], f["event_offsets"]
    rows = np.arange(len(display))
    clicked = np.where(clicked_pos >= 0, display[rows, np.maximum(clicked_pos, 0)], -1)
    earlier = earlier_clicks(clicked, offsets, lags)  # [E, lags], most recent first
    out = {}
    for name, depth in (("last", 1), (f"last{lags}", lags)):
        recent = earlier[:, :depth]
        hit = ((display[:, :, None] == recent[:, None, :]) & (recent[:, None, :] >= 0)).any(2)
        hit &= mask
        shown = hit.any(axis=1)
        chosen = shown & (clicked_pos >= 0) & hit[rows, np.maximum(clicked_pos, 0)]
        out[f"shown_{name}"] = float(shown.mean())
        out[f"chosen_{name}"] = float(chosen.sum() / max(shown.sum(), 1))
    return out


def describe(reward: np.ndarray, base: np.ndarray) -> str:
    """'mean (se), gap [95% CI]' of `reward` against `base`, paired over users."""
    gap, low, high = harness.paired_gap(reward, base)
    se = reward.std() / np.sqrt(len(reward))
    return f"{reward.mean():.1f} ({se:.1f}), {gap:+.1f} [{low:+.1f}, {high:+.1f}]"


def report(run_dir: str, args: argparse.Namespace) -> None:
    """Prints the four parts of the module docstring for one run folder."""
    seed = int(os.path.basename(os.path.normpath(run_dir)).rsplit("__", 1)[1])
    truth_path = os.path.join(run_dir, "data", f"{harness.DATASET}-truth.npz")
    env = load_true_env(truth_path)
    if not isinstance(env, SyntheticEnvironment) or env.config.history != "lag":
        raise SystemExit(f"{truth_path}: expected a ganrl.data.synthetic world with a lag history")

    def serve(recommender: harness.Recommender) -> np.ndarray:
        true = harness.evaluate_true(env, recommender, args.users, args.horizon, seed + 100)
        return true["reward"]

    print(f"## {run_dir}")
    myopic = serve(lock_in(env, 0.0, args.k))
    for lam in LAMBDAS:
        print(f"headroom lam={lam}: {describe(serve(lock_in(env, lam, args.k)), myopic)}")
    for folder in MODELS:
        rewards = reward_function(run_dir, folder)
        greedy = serve(lookahead(rewards, 0.0, args.k, args.top))
        print(f"lookahead {folder}: GAN-Greedy {describe(greedy, greedy)}")
        for gain in args.gains:
            lookahead_reward = serve(lookahead(rewards, gain, args.k, args.top))
            print(f"lookahead {folder}: g={gain} {describe(lookahead_reward, greedy)}")
        learned, true, corr = self_gain(rewards, env)
        print(f"self_gain {folder}: learned {learned:.2f}, true {true:.2f}, correlation {corr:.2f}")
    repeats = logged_repeats(truth_path, env.config.history_depth)
    print(
        "logs: " + ", ".join(f"{name} {value:.3f}" for name, value in repeats.items()), flush=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="harness run folders of a lag world")
    parser.add_argument("--users", type=int, default=1000, help="true users")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument(
        "--gains",
        type=lambda text: [float(g) for g in text.split(",") if g],
        default=[0.5, 1.0],
        help="comma-separated lookahead weights g",
    )
    parser.add_argument("--top", type=int, default=30, help="items the lookahead considers")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        report(run_dir, args)


if __name__ == "__main__":
    main()
