"""Where a learned simulator's sessions part from the truth, step by step.

For a sim-to-real run folder (`experiment_policy/main_sim_to_real.py`, `SAVE_DIR/{world}__{seed}`)
each named policy is loaded through `load_policy` and served
- to the harness's true users (`harness.evaluate_true`: its users, noise and horizon), and
- in the simulator of each of the run's user models (the training LSTM, the test PW, any
  ensemble members), with the test simulator's settings (its leave model on) and the same
  users and random stream for every policy;
and per step t it prints the click rate of the users still there at t and the share still
there. A simulator whose session lengths are wrong (`sim_steps` against `true_steps` in the
run's table) shows here whether it errs at the first slate (how a new user meets the policy's
slate: the leave model and the start state) or later (how the state moves: tiredness, what a
click does).

In a world with a no-click option it then asks where the user models err, along the TRUE
sessions of each policy: per step, over the users still there, the mean click probability
(1 - P(no click)) of the policy's slate and of a slate of k items drawn uniformly from the
catalogue, by the truth and by each user model from the user's true history
(`ChoiceModel.replay_events` of her clicks and the slates she saw). A model right about
the random slates and too hopeful about the policy's own is wrong where the policy chose:
on the items it ranks first in the states the policy leads users into. With ensemble
members in the run (`--ensemble` / `--reward_ensemble`, user models at seed offsets 2 and
up) a last column gives their spread: does the ensemble's disagreement grow where its
members err? A last table per policy does the same for leaving: the true probability of
leaving after the policy's slate (`TrueEnvironment.leave_probabilities`) beside each user
model's leave model, its click feature weighted once by the model's own click probability
(what its simulator does) and once by the truth's (the choice model's click error taken
out, the leave model's own error left).

  python -m benchmarks.bench_session_steps runs/sim2real/satiation__0
      [--policies=gan_greedy,most_popular] [--users=1000] [--variant=VARIANT]
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bench_sim_ranking import user_models  # noqa: E402
from ganrl.policy.export import load_policy, recommend  # noqa: E402
from ganrl.policy.runner import PolicyConfig, run_episodes  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import load_true_env  # noqa: E402
from ganrl.simulator.simulator import Simulator  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402
from ganrl.user_model.leave import leave_features, load_leave_model  # noqa: E402


def step_profile(clicks: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step of `clicks [users, horizon]` (bool or 0/1) and session `lengths [users]`
    (slates seen): the click rate of the users still there (nan where none is) and the
    share of users still there."""
    clicks = np.asarray(clicks, dtype=np.float64)
    horizon = clicks.shape[1]
    present = np.asarray(lengths)[:, None] > np.arange(horizon)[None, :]
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ctr = np.where(count > 0, (clicks * present).sum(axis=0) / count, np.nan)
    return ctr, present.mean(axis=0)


class ClickCalibration:
    """`harness.evaluate_true`'s `on_slate`: per step, the mean click probability of the
    policy's slate and of a uniform random slate over the users still there, by the truth
    and by each user model (module docstring); with `members` (names of `models`, at least
    two), also "members' spread": the standard deviation over those models of each user's
    click probability, averaged over the users (the disagreement an ensemble simulator
    sees).

    With `leave_models` ({name of `models`: its `LeaveModel`}), `leave_rows` holds per step
    the mean probability of leaving after the policy's slate: the truth's
    (`env.leave_probabilities`, both columns) and each leave model's, its click feature
    weighted by the model's own click probability (what its simulator does) and by the
    truth's (the leave model alone, given where the user truly stands)."""

    SPREAD = "members' spread"

    def __init__(
        self,
        env,
        models: dict,
        horizon: int,
        seed: int,
        members: tuple = (),
        leave_models: dict | None = None,
    ):
        self.env, self.models = env, models
        self.members = tuple(members) if len(members) >= 2 else ()
        self.leave_models = {k: v for k, v in (leave_models or {}).items() if v is not None}
        self.rng = np.random.default_rng(seed)
        names = ("true", *models, *((self.SPREAD,) if self.members else ()))
        self.rows: dict[str, np.ndarray] = {name: np.full((horizon, 2), np.nan) for name in names}
        self.leave_rows: dict[str, np.ndarray] = {
            name: np.full((horizon, 2), np.nan)
            for name in (("true", *self.leave_models) if self.leave_models else ())
        }

    def __call__(self, t, history, events, slate) -> None:
        there = self.env.active
        if not there.any():
            return
        users, k = slate.shape
        draws = self.rng.random((users, self.env.n_items))
        uniform = np.argsort(draws, axis=1)[:, :k].astype(np.int32)
        true_click = {}
        for column, shown in enumerate((slate, uniform)):
            true_click[column] = self.env.click_probabilities(shown)[:, :-1].sum(axis=1)
            self.rows["true"][t, column] = true_click[column][there].mean()
        if self.leave_rows:
            self.leave_rows["true"][t] = self.env.leave_probabilities(slate)[there].mean()
        per_user = {}
        for name, loaded in self.models.items():
            choice = loaded.behavior_choice
            state = choice.replay_events(
                tf.constant(history), None if events is None else tf.constant(events)
            )
            for column, shown in enumerate((slate, uniform)):
                logits = choice.logits(state, tf.constant(shown))
                p = (1.0 - tf.nn.softmax(logits)[:, -1]).numpy()
                per_user[name, column] = p[there]
                self.rows[name][t, column] = p[there].mean()
                if column == 0 and name in self.leave_models:
                    leave = self._leave(name, logits, t, choice.has_no_click)
                    for weighting, click in enumerate((p, true_click[0])):
                        expected = click * leave[1] + (1.0 - click) * leave[0]
                        self.leave_rows[name][t, weighting] = expected[there].mean()
        for column in (0, 1):
            if self.members:
                spread = np.stack([per_user[m, column] for m in self.members]).std(axis=0)
                self.rows[self.SPREAD][t, column] = spread.mean()

    def _leave(self, name: str, logits, t: int, has_no_click: bool) -> tuple:
        """`([U], [U])` the leave model's P(leave) after the slate of `logits` at step `t`
        without and with a click."""
        steps = tf.fill([logits.shape[0]], float(t))
        return tuple(
            self.leave_models[name]
            .probability(leave_features(logits, tf.fill([logits.shape[0]], c), steps, has_no_click))
            .numpy()
            for c in (False, True)
        )


def profiles(run_dir: str, policies: list[str], users: int, variant: str = "") -> dict:
    """{policy: {"sessions": {"true" or user model folder: (ctr `[H]`, present `[H]`)},
    "calibration": {"true" or folder: `[H, 2]` P(click) of the policy's / a random slate}
    (None in a world without a no-click option)}}."""
    policy_dir = os.path.join(run_dir, f"policy__{variant}" if variant else "policy")
    with open(os.path.join(policy_dir, "config.json")) as f:
        config = PolicyConfig.from_dict(json.load(f))
    with open(os.path.join(run_dir, variant, "results.json")) as f:
        harness_config = json.load(f)["config"]
    truth = glob.glob(os.path.join(run_dir, "data", "*-truth.npz"))[0]
    env = load_true_env(truth, harness_config["true_reward"])
    k, horizon, seed = harness_config["k"], harness_config["horizon"], harness_config["seed"]
    simulators = {
        folder: load_user_model(os.path.join(run_dir, folder)) for folder, _ in user_models(run_dir)
    }
    out = {}
    for name in policies:
        policy = load_policy(policy_dir, name)
        calibration = None
        if math.isfinite(env.no_click_utility) and all(
            m.behavior_choice.has_no_click for m in simulators.values()
        ):
            members = [folder for folder, offset in user_models(run_dir) if offset >= 2]
            leave_models = {
                folder: load_leave_model(os.path.join(run_dir, folder)) for folder in simulators
            }
            calibration = ClickCalibration(
                env, simulators, horizon, seed, tuple(members), leave_models
            )
        true = harness.evaluate_true(
            env,
            lambda h, c, e, p=policy: recommend(p, h, c, k, events=e),
            users,
            horizon,
            seed + 100,
            on_slate=calibration,
        )
        sessions = {"true": step_profile(true["clicks"], true["steps"])}
        for folder, model in simulators.items():
            sim = Simulator(model, config.simulator(1))
            sim.rng.reset_from_seed(config.seed + 1)  # the same users and draws for each
            _, clicks, _ = run_episodes(sim, policy, users)
            sessions[folder] = step_profile(clicks > 0, sim.session_lengths)
        out[name] = {
            "sessions": sessions,
            "calibration": None if calibration is None else calibration.rows,
            "leave": calibration.leave_rows if calibration is not None else {},
        }
    return out


def markdown(name: str, rows: dict) -> str:
    """One policy's table: a row per world (the truth, then each simulator), a column per
    step, each cell "click rate (share still there)"."""
    horizon = len(next(iter(rows.values()))[0])
    lines = [
        f"{name} | " + " | ".join(f"step {t + 1}" for t in range(horizon)) + " | mean slates",
        "|".join(["---"] * (horizon + 2)),
    ]
    for world, (ctr, present) in rows.items():
        cells = [f"{c:.2f} ({p:.2f})" for c, p in zip(ctr, present)]
        lines.append(f"{world} | " + " | ".join(cells) + f" | {present.sum():.2f}")
    return "\n".join(f"| {line} |" for line in lines)


def calibration_markdown(name: str, rows: dict) -> str:
    """One policy's calibration table: a row per step, per world "policy's slate / random
    slate" mean click probabilities along the true sessions."""
    worlds = list(rows)
    lines = [
        f"{name}: P(click) | " + " | ".join(worlds),
        "|".join(["---"] * (len(worlds) + 1)),
    ]
    for t in range(len(rows["true"])):
        if np.isnan(rows["true"][t, 0]):
            break
        cells = [f"{rows[w][t, 0]:.2f} / {rows[w][t, 1]:.2f}" for w in worlds]
        lines.append(f"step {t + 1} | " + " | ".join(cells))
    return "\n".join(f"| {line} |" for line in lines)


def leave_markdown(name: str, rows: dict) -> str:
    """One policy's leave table: a row per step, the truth's P(leave) after the policy's slate
    and per leave model "with its own / the truth's click probability"."""
    models = [m for m in rows if m != "true"]
    lines = [
        f"{name}: P(leave) | true | " + " | ".join(models),
        "|".join(["---"] * (len(models) + 2)),
    ]
    for t in range(len(rows["true"])):
        if np.isnan(rows["true"][t, 0]):
            break
        cells = [f"{rows[m][t, 0]:.3f} / {rows[m][t, 1]:.3f}" for m in models]
        lines.append(f"step {t + 1} | {rows['true'][t, 0]:.3f} | " + " | ".join(cells))
    return "\n".join(f"| {line} |" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="harness run folders")
    parser.add_argument("--policies", default="gan_greedy,most_popular")
    parser.add_argument("--users", type=int, default=1000, help="users per policy and world")
    parser.add_argument(
        "--variant", default="", help="the policy settings' folder suffix (policy__VARIANT)"
    )
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        print(f"{run_dir}:")
        result = profiles(run_dir, args.policies.split(","), args.users, args.variant)
        for name, parts in result.items():
            print(markdown(name, parts["sessions"]) + "\n", flush=True)
            if parts["calibration"] is not None:
                print(calibration_markdown(name, parts["calibration"]) + "\n", flush=True)
            if parts["leave"]:
                print(leave_markdown(name, parts["leave"]) + "\n", flush=True)


if __name__ == "__main__":
    main()
