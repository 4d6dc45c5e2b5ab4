"""The paper's policy protocol (Section 6.2): train in the learned simulator, test in another.

Policies are trained in the simulator built from the training user model and evaluated, with
no learning and no exploration, in a separate test simulator (a user model trained apart) that
no policy saw. Reported per policy: cumulative reward per user over the horizon and the click
rate per step (clicks / steps), mean and 95% confidence interval over users. The click rate is
reported only when the test model learned a no-click option (data with no-click events); on
always-click data every step has a click and it carries no information.

Snapshot selection: a learning policy is validated in the training simulator (a separate
random stream, the same for every validation) before training and every `select_every`
episodes; the snapshot with the best cumulative reward is the one tested. The recommender
owns its simulator, so this is model selection on its own validation, never on the test
simulator; an agent whose training does not help ends as its untrained start (for the CDQN
with the learned-reward residual: GAN-Greedy's ranking).

Regret (with `linucb` among the policies): LinUCB learns online, from scratch, in the test
simulator, as a bandit does; at every step its expected reward is compared with that of the
test simulator's best slate (`Simulator.best_slate`), and the cumulative regret per user is
reported against the interaction steps, beside GAN-Greedy's and random's (frozen).

Adaptation: a cascading DQN pre-trained in the training simulator and one started from scratch
both keep learning online in the test simulator; their click rate (or reward) per interaction
step shows how much pre-training saves.

Run folder: config.json, curves.csv (policy, phase, iteration, reward, ctr, loss),
tensorboard/, checkpoints/{policy}__{phase}/ (resumable), checkpoints/{policy}__train_best/
(the selected snapshot, named in its best.json), policies/{policy}.json (finished policies
are not retrained), results.json (written last) and curves.png. A rerun resumes or reuses
the folder only with the same flags (but the policies: it trains those it lacks), and one run
at a time writes it (`ganrl.train.run_folder`).

Resuming: a checkpoint holds the policy's variables (networks, target network, optimiser,
epsilon schedule), its numpy state (exploration stream and replay memory, `NumpyState`) and
the simulator's random stream, so a killed run, rerun, ends with the figures and curves of
an uninterrupted one; the curve rows after the checkpoint are dropped when it resumes.

Under a `tf.distribute` strategy the CDQN's updates run on every replica (see
`CascadingDQN`); under a multi-worker one every worker runs the same simulation (same seeds)
and saves (a collective operation), but only the chief writes the run folder: the others
write to a temporary folder they delete, and resume from the chief's checkpoints.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.data import safe_io
from ganrl.data.dataset import load_split_data
from ganrl.policy.base import POLICIES, NumpyState, Policy, PolicyFeatures
from ganrl.policy import registry  # noqa: F401  (fills POLICIES)
from ganrl.simulator.simulator import Simulator, SimulatorConfig
from ganrl.train import run_folder
from ganrl.train.user_model import is_chief
from ganrl.user_model import LoadedUserModel, load_user_model

CURVE_FIELDS = ("policy", "phase", "iteration", "reward", "ctr", "loss")
# Settings a rerun into a run folder may change: where it is, how often it saves, and the
# policies (a finished run takes more policies and trains only those).
RERUN_MAY_CHANGE = ("save_dir", "checkpoint_secs", "policies")


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Attributes: see `experiment_policy/main_policy.py`'s flags."""

    user_model_dir: str
    test_user_model_dir: str
    save_dir: str
    policies: tuple[str, ...] = ("cdqn", "gan_greedy", "linucb", "wd_lr", "most_popular",
                                 "random")
    k: int = 5
    n_candidates: int = 0
    horizon: int = 10
    reward: str = "auto"
    gamma: float = 0.9
    learning_rate: float = 1e-3
    num_itrs: int = 2000
    batch_size: int = 64
    train_batch_size: int = 256
    hidden: int = 64
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_steps: int = 1000
    target_update: int = 100
    eval_users: int = 1000
    adapt_itrs: int = 300
    regret_itrs: int = 300
    select_every: int = 20
    select_users: int = 256
    history_length: int = 10
    seed: int = 0
    checkpoint_secs: float = 30.0

    def __post_init__(self):
        if not self.policies:
            raise ValueError("policy='': expected at least one policy")
        for name in self.policies:
            if name not in POLICIES:
                raise ValueError(f"policy={name!r}: expected one of "
                                 f"{', '.join(sorted(POLICIES))}")
        self.simulator()  # checks k, n_candidates, horizon, reward and history_length
        config_checks.check(self, "a positive integer", "num_itrs", "batch_size",
                            "train_batch_size", "hidden", "epsilon_steps", "target_update",
                            "eval_users", "select_users")
        config_checks.check(self, "a non-negative integer", "adapt_itrs", "regret_itrs",
                            "select_every", "seed")
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(self, "a number in [0, 1]", "gamma", "epsilon_start", "epsilon_end")
        config_checks.check(self, "a non-negative number", "checkpoint_secs")

    @classmethod
    def from_dict(cls, values: dict) -> "PolicyConfig":
        """The config of a run folder's config.json (a field it predates has its default)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if "policies" in values:
            values["policies"] = tuple(values["policies"])
        return cls(**values)

    def simulator(self, seed_offset: int = 0) -> SimulatorConfig:
        return SimulatorConfig(k=self.k, n_candidates=self.n_candidates, horizon=self.horizon,
                               reward=self.reward, history_length=self.history_length,
                               seed=self.seed + seed_offset)


def mean_ci(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "ci95": float(half)}


def make_policy(name: str, config: PolicyConfig, features: PolicyFeatures,
                train_model: LoadedUserModel, train_events, n_candidates: int,
                strategy: tf.distribute.Strategy | None = None) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}: expected one of {sorted(POLICIES)}")
    clicked = train_events.clicked_item
    counts = np.bincount(clicked[clicked >= 0], minlength=train_model.n_items).astype(float)
    return POLICIES[name](
        features, config.k, config.seed, n_candidates=n_candidates,
        history_length=config.history_length, hidden=config.hidden, gamma=config.gamma,
        learning_rate=config.learning_rate, batch_size=config.train_batch_size,
        target_update=config.target_update, epsilon_start=config.epsilon_start,
        epsilon_end=config.epsilon_end, epsilon_steps=config.epsilon_steps,
        click_counts=counts, reward_model=train_model.reward, train_events=train_events,
        strategy=strategy)


def remove_other_snapshots(folder: str, keep: str) -> None:
    """Deletes the files of every snapshot in `folder` but `keep` (its best.json stays)."""
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if entry != "best.json" and entry.split(".")[0] != keep and os.path.isfile(path):
            os.remove(path)


def run_episodes(sim: Simulator, policy: Policy, users: int, learn: bool = False,
                 explore: bool = False, regret: list | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list]:
    """One episode of `users` users: `[users, horizon]` rewards and clicks, and the losses.
    With a `regret` list, appends each step's mean expected regret against the simulator's
    best slate (`Simulator.best_slate`)."""
    obs = sim.reset(users)
    rewards, clicks, losses = [], [], []
    done = False
    while not done:
        slate = policy.select(obs, explore=explore)
        if regret is not None:
            gap = (sim.expected_slate_reward(obs, sim.best_slate(obs))
                   - sim.expected_slate_reward(obs, slate))
            regret.append(float(tf.reduce_mean(gap)))
        result = sim.step(obs, slate)
        if learn:
            policy.observe(obs, slate, result.reward, result.clicked_index,
                           result.observation, result.done)
            info = policy.train_step()
            if "loss" in info:
                losses.append(info["loss"])
        rewards.append(result.reward.numpy())
        clicks.append(result.clicked.numpy())
        obs, done = result.observation, result.done
    return np.stack(rewards, 1), np.stack(clicks, 1), losses


class PolicyRunner:
    """Trains every policy in the training simulator and tests it in the test simulator."""

    def __init__(self, config: PolicyConfig, progress=print,
                 strategy: tf.distribute.Strategy | None = None):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = is_chief(self.strategy)
        self.read_dir = config.save_dir  # finished work and checkpoints: the chief's folder
        if not self.chief:
            config = dataclasses.replace(config,
                                         save_dir=tempfile.mkdtemp(prefix="ganrl-worker-"))
        self.config = config
        self.progress = progress if self.chief else (lambda _: None)
        self.train_model = load_user_model(config.user_model_dir)
        self.test_model = load_user_model(config.test_user_model_dir)
        if self.train_model.n_items != self.test_model.n_items:
            raise ValueError("the training and test user models have different catalogues")
        self.features = PolicyFeatures.from_user_model(self.train_model.reward)
        cfg = self.train_model.config
        data = load_split_data(cfg["data_folder"], cfg["dataset"])
        if data.n_items != self.train_model.n_items:
            raise safe_io.DataError(
                f"{os.path.join(cfg['data_folder'], cfg['dataset'])}: {data.n_items} items, "
                f"expected {self.train_model.n_items} (the catalogue of the user model in "
                f"{config.user_model_dir})")
        self.train_events = data.splits["train"]
        self.train_sim = Simulator(self.train_model, config.simulator(0))
        self.test_sim = Simulator(self.test_model, config.simulator(1))
        self.select_sim = Simulator(self.train_model, config.simulator(2))
        self.n_candidates = self.train_sim.n_candidates

    def _policy(self, name: str) -> Policy:
        return make_policy(name, self.config, self.features, self.train_model,
                           self.train_events, self.n_candidates, self.strategy)

    def _log(self, row: dict) -> None:
        path = os.path.join(self.config.save_dir, "curves.csv")
        new = not os.path.exists(path)
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, CURVE_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        with self.writer.as_default(step=int(row["iteration"])):
            for key in ("reward", "ctr", "loss"):
                if row.get(key) not in (None, "") and math.isfinite(float(row[key])):
                    tf.summary.scalar(f"{row['policy']}/{row['phase']}/{key}", float(row[key]))

    def _resume_curve(self, name: str, phase: str, last_step: int) -> list[dict]:
        """Drops the curve rows of `name` in `phase` after interaction step `last_step` (and
        any row a kill cut short) and returns the rows kept, as `train` makes them."""
        path = os.path.join(self.config.save_dir, "curves.csv")
        rows = [r for r in safe_io.read_csv_rows(path)
                if (r["policy"], r["phase"]) != (name, phase) or int(r["iteration"]) <= last_step]
        with safe_io.atomic_open(path, "w") as f:
            writer = csv.DictWriter(f, CURVE_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        return [{"policy": name, "phase": phase, "iteration": int(r["iteration"]),
                 **{key: float(r[key]) for key in ("reward", "ctr", "loss")}}
                for r in rows if (r["policy"], r["phase"]) == (name, phase)]

    def train(self, name: str, policy: Policy, sim: Simulator, itrs: int, phase: str,
              resume: bool = True) -> list[dict]:
        """Trains a learning policy for `itrs` episodes of `batch_size` users (resumable)."""
        cfg = self.config
        iteration = tf.Variable(0, dtype=tf.int64, trainable=False)
        ckpt = tf.train.Checkpoint(iteration=iteration, **policy.checkpoint_objects(),
                                   numpy_state=NumpyState(policy), simulator=sim.rng)
        folder = os.path.join("checkpoints", f"{name}__{phase}")
        manager = tf.train.CheckpointManager(ckpt, os.path.join(cfg.save_dir, folder), 1)
        latest = tf.train.latest_checkpoint(os.path.join(self.read_dir, folder))
        if resume and latest:
            ckpt.restore(latest)
            self.progress(f"resuming {name} ({phase}) at episode {int(iteration.numpy())}")
        curve = self._resume_curve(name, phase, int(iteration.numpy()) * cfg.horizon)
        last_save = time.monotonic()
        episodes = max(1, itrs // cfg.horizon)
        select = phase == "train" and cfg.select_every > 0
        best_folder = folder + "_best"
        best_path = os.path.join(self.read_dir, best_folder, "best.json")
        best, snapshot = None, tf.train.Checkpoint(**policy.checkpoint_objects())
        if select and os.path.exists(best_path):
            with open(best_path) as f:
                best = json.load(f)

        def consider() -> None:
            # Each snapshot is written under its own name, then best.json (replaced
            # atomically) names it: a kill while writing one leaves the previous one whole.
            nonlocal best
            score = self.validate(policy)
            if best is None or score > best["score"]:
                episode = int(iteration.numpy())
                snapshot.write(os.path.join(cfg.save_dir, best_folder, f"best-{episode}"))
                best = {"score": score, "episode": episode, "checkpoint": f"best-{episode}"}
                safe_io.dump_json(os.path.join(cfg.save_dir, best_folder, "best.json"), best)
                remove_other_snapshots(os.path.join(cfg.save_dir, best_folder),
                                       best["checkpoint"])

        if select and best is None:
            consider()  # the untrained policy
        while int(iteration.numpy()) < episodes:
            rewards, clicks, losses = run_episodes(sim, policy, cfg.batch_size, learn=True,
                                                   explore=True)
            iteration.assign_add(1)
            step = int(iteration.numpy()) * cfg.horizon
            row = {"policy": name, "phase": phase, "iteration": step,
                   "reward": float(rewards.mean()), "ctr": float(clicks.mean()),
                   "loss": float(np.mean(losses)) if losses else float("nan")}
            curve.append(row)
            self._log(row)
            # Validation comes before the checkpoint, so a run killed in between validates
            # this episode again when it resumes (validation changes no state).
            if select and (int(iteration.numpy()) % cfg.select_every == 0
                           or int(iteration.numpy()) == episodes):
                consider()
            if time.monotonic() - last_save >= cfg.checkpoint_secs or \
                    int(iteration.numpy()) == episodes:
                manager.save(checkpoint_number=int(iteration.numpy()))
                last_save = time.monotonic()
        if select:
            # A run folder that predates named snapshots has one snapshot, "best".
            snapshot.read(os.path.join(self.read_dir, best_folder,
                                       best.get("checkpoint", "best"))).assert_consumed()
            self.progress(f"{name}: the snapshot of episode {best['episode']} (validation "
                          f"reward {best['score']:.3f} in the training simulator)")
        return curve

    def validate(self, policy: Policy) -> float:
        """Mean cumulative reward, frozen, in the training simulator's validation stream."""
        self.select_sim.rng.reset_from_seed(self.config.seed + 3)
        rewards, _, _ = run_episodes(self.select_sim, policy, self.config.select_users)
        return float(rewards.sum(axis=1).mean())

    def evaluate(self, policy: Policy) -> dict:
        """Frozen, in the test simulator. Every policy meets the same random stream (common
        random numbers: the same candidate draws, and the same click noise wherever the
        slates agree), so differences between policies are not sampling noise of the
        simulator."""
        self.test_sim.rng.reset_from_seed(self.config.seed + 1)
        rewards, clicks, _ = run_episodes(self.test_sim, policy, self.config.eval_users)
        out = {"cumulative_reward": mean_ci(rewards.sum(axis=1)),
               "reward_curve": np.cumsum(rewards, axis=1).mean(axis=0).tolist()}
        if self.test_sim.has_no_click:
            out["ctr"] = mean_ci(clicks.mean(axis=1))
            out["ctr_curve"] = clicks.mean(axis=0).tolist()
        return out

    def run(self) -> dict:
        """Trains and evaluates every policy (reusing finished ones); returns the results.

        The chief holds the run folder meanwhile (`run_folder.claim`): a second run into it,
        or a rerun with other flags (but the policies), is refused before anything is written.
        """
        try:
            if not self.chief:  # its save_dir is a temporary folder of its own
                return self._run()
            with run_folder.claim(self.config.save_dir, dataclasses.asdict(self.config),
                                  lambda saved: dataclasses.asdict(PolicyConfig.from_dict(saved)),
                                  ignore=RERUN_MAY_CHANGE):
                return self._run()
        finally:
            if not self.chief:
                shutil.rmtree(self.config.save_dir, ignore_errors=True)

    def _run(self) -> dict:
        cfg = self.config
        results_path = os.path.join(cfg.save_dir, "results.json")
        if os.path.exists(os.path.join(self.read_dir, "results.json")):
            with open(os.path.join(self.read_dir, "results.json")) as f:
                finished = json.load(f)
            if set(cfg.policies) <= set(finished["policies"]):
                return finished
            # Policies were added: the finished ones are reused from policies/*.json below.
        safe_io.dump_json(os.path.join(cfg.save_dir, "config.json"), dataclasses.asdict(cfg))
        self.writer = tf.summary.create_file_writer(os.path.join(cfg.save_dir, "tensorboard"))
        results = {"policies": {}, "has_no_click": self.test_sim.has_no_click}
        if not self.test_sim.has_no_click:
            results["ctr_note"] = ("the test user model was trained on data where every "
                                   "display set has a click, so it never clicks nothing: "
                                   "CTR is 1 by construction and is not reported")
        trained = {}
        for name in cfg.policies:
            done_path = os.path.join(cfg.save_dir, "policies", f"{name}.json")
            policy = self._policy(name)
            finished = os.path.join(self.read_dir, "policies", f"{name}.json")
            if os.path.exists(finished):
                with open(finished) as f:
                    results["policies"][name] = json.load(f)
                if policy.learns:
                    self.train(name, policy, self.train_sim, cfg.num_itrs, "train")
                trained[name] = policy
                continue
            tic = time.perf_counter()
            if policy.learns:
                self.train(name, policy, self.train_sim, cfg.num_itrs, "train")
            seconds = time.perf_counter() - tic
            result = self.evaluate(policy)
            result["train_seconds"] = seconds
            safe_io.dump_json(done_path, result)
            results["policies"][name] = result
            trained[name] = policy
            line = f"{name:>13}: cumulative reward {result['cumulative_reward']['mean']:.3f}"
            if "ctr" in result:
                line += f"  CTR {result['ctr']['mean']:.3f}"
            self.progress(line + f"  (trained {seconds:.1f}s)")
        if "cdqn" in trained and cfg.adapt_itrs > 0:
            results["adaptation"] = self.adaptation(trained["cdqn"])
        if "linucb" in trained and cfg.regret_itrs > 0:
            results["regret"] = self.regret()
        safe_io.dump_json(results_path, results)
        self.plot(results)
        return results

    def adaptation(self, pretrained: Policy) -> dict:
        """Pre-trained vs from-scratch CDQN, both learning online in the test simulator."""
        out = {}
        scratch = self._policy("cdqn")
        adapted = copy.copy(pretrained)  # keeps the pre-trained networks; new counters below
        adapted.selections = tf.Variable(pretrained.epsilon[2], dtype=tf.int64)  # low epsilon
        for label, policy in (("pretrained", adapted), ("scratch", scratch)):
            # Both meet the same test-simulator stream, a function of the seed alone (not of
            # the evaluations before, which a rerun of a killed run skips).
            self.test_sim.rng.reset_from_seed(self.config.seed + 4)
            curve = self.train("cdqn", policy, self.test_sim, self.config.adapt_itrs,
                               f"adapt_{label}")
            key = "ctr" if self.test_sim.has_no_click else "reward"
            out[label] = [row[key] for row in curve]
        out["metric"] = "ctr" if self.test_sim.has_no_click else "reward"
        return out

    def regret(self) -> dict:
        """Cumulative expected regret per user over online steps in the test simulator:
        LinUCB learning from scratch; GAN-Greedy and random, frozen, for reference."""
        cfg, out = self.config, {}
        for name, learn in (("linucb", True), ("gan_greedy", False), ("random", False)):
            policy, per_step = self._policy(name), []
            self.test_sim.rng.reset_from_seed(cfg.seed + 2)
            for _ in range(max(1, cfg.regret_itrs // cfg.horizon)):
                run_episodes(self.test_sim, policy, cfg.batch_size, learn=learn, explore=learn,
                             regret=per_step)
            out[name] = np.cumsum(per_step).tolist()
        return out

    def plot(self, results: dict) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        panels = ["reward_curve"] + (["ctr_curve"] if results["has_no_click"] else [])
        panels += [p for p in ("adaptation", "regret") if p in results]
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
        for ax, panel in zip(axes[0], panels):
            if panel == "regret":
                for name, curve in results["regret"].items():
                    ax.plot(range(1, len(curve) + 1), curve, label=name)
                ax.set_xlabel("online step in the test simulator")
                ax.set_ylabel("cumulative regret per user")
            elif panel == "adaptation":
                for label in ("pretrained", "scratch"):
                    ax.plot(results["adaptation"][label], label=f"cdqn {label}")
                ax.set_xlabel("online episode in the test simulator")
                ax.set_ylabel(results["adaptation"]["metric"])
            else:
                for name, r in results["policies"].items():
                    ax.plot(range(1, len(r[panel]) + 1), r[panel], label=name)
                ax.set_xlabel("time step")
                ax.set_ylabel("cumulative reward" if panel == "reward_curve" else "CTR")
            ax.legend(fontsize=8)
        fig.tight_layout()
        with safe_io.atomic_open(os.path.join(self.config.save_dir, "curves.png")) as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)
