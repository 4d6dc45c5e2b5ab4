"""The paper's policy protocol (Section 6.2): train in the learned simulator, test in another.

Policies are trained in the simulator built from the training user model and evaluated, with
no learning and no exploration, in a separate test simulator (a user model trained apart) that
no policy saw. Reported per policy: cumulative reward per user over the horizon, the session
length (slates seen before leaving, by the test user model's leave model; the horizon without
one) and the click rate per slate seen (clicks / slates), mean and 95% confidence interval
over users. The click rate is reported only when the test model learned a no-click option
(data with no-click events); on always-click data every step has a click and it carries no
information.

Leaving (`PolicyConfig.leave`, on by default): every simulator whose user model has a leave
model ends users' sessions by it (`ganrl.simulator.simulator`); learners store only the steps
of users still there, a user's last slate terminal (`ganrl.policy.base.transition_flags`).
An ensemble's members do not leave (their `advance` keeps everyone).

Training simulator: the user model of `user_model_dir`, or, with `ensemble_dirs`, an ensemble
(`ganrl.simulator.ensemble`) of it and every ensemble member but the last, paying the members'
reward less `penalty` times their disagreement (pessimistic training, as MOPO). With an
ensemble (and `mean_reward`, the default) GAN-Greedy's learned reward r(s, a), which the
learning policies' bounded residual starts from, is the mean of the training members' r
(`heuristics.MeanReward`): one model's ranking of the catalogue depends much on its seed.
With `reward_dirs` instead (further user models of the same logs), GAN-Greedy and the
residuals rank by the mean r of the training model and those, while the training simulator
and the selection stay the training model's alone.

Each learning policy trains on its own stream of the training simulator (its candidates,
clicks and leaves; `training_stream_seed`, from the run's seed and the policy's name), so what
it learns does not depend on which policies the run trains before it.

Snapshot selection: a learning policy is validated (a separate random stream, the same for
every validation) before training and every `select_every` episodes; the snapshot with the
best lower bound on its paired gain over the untrained start (mean - `select_margin` x se
over the validation users, `selection_score`) is the one tested, unless an off-policy
estimate of its clicks on the logged validation users falls below the start's (by more than
the share `select_log_drop`, default 0): such a snapshot is never taken (`logged_clicks`).
The estimates checked are `select_log_estimators`: self-normalised IPS (model-free, so a
snapshot that exploits a user model's errors cannot raise it) and doubly robust (the
training user model as its direct method, corrected by the logged clicks: lower variance
where the policy's slates seldom match the logged sets).
With `ensemble_dirs` it is validated in the last member, a user model training never saw;
without, in the training simulator itself (which favours snapshots that exploit that
model's errors). Never on the test simulator; an agent whose training does not help ends as
its untrained start (for the CDQN, PPO, A2C and DDPG with the bounded residual, the default:
GAN-Greedy's ranking).

The bounded residual (issue 18): the CDQN (`cdqn_residual_bound`) and PPO, A2C, DDPG and
LinUCB (`residual_bound`, `residual_uncertainty`) score candidates as GAN-Greedy's learned
reward plus a learned part bounded by c in its units (`ganrl.policy.residual`); c = 0 is
each policy as before. A run folder older than these settings loads with c = 0
(`LEGACY_CDQN`, `LEGACY_RESIDUAL`).

Expected rewards (`expected_reward`, off by default): a learning policy learns from, and is
validated by, each slate's expected reward under the simulator (its click probabilities
times what each click pays, `StepResult.expected_reward`) rather than the sampled click's
(LinUCB, which credits the reward to the clicked item, still learns from the sampled one).
The mean is the same; the click's noise is gone from every transition and from the paired
validation gains (the paths still differ by the sampled clicks and leaves).

Off-policy estimates: every evaluated policy also gets IPS, SNIPS, direct-method and doubly
robust estimates on the first `off_policy_users` logged validation users
(`ganrl.policy.off_policy`, with its assumptions), what the logs say beside the test
simulator's figure.

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

import csv
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.data import safe_io
from ganrl.data.dataset import EventArrays, SplitData, load_run_data
from ganrl.policy import (
    actor_critic,
    cdqn,
    ddpg,
    heuristics,
    off_policy,
    registry,  # noqa: F401  (fills POLICIES)
)
from ganrl.policy.base import POLICIES, NumpyState, Policy, PolicyFeatures
from ganrl.reporting.curves import plot_policy_run
from ganrl.simulator.ensemble import EnsembleSimulator
from ganrl.simulator.simulator import Simulator, SimulatorConfig
from ganrl.train import interrupt, run_folder
from ganrl.train.user_model import in_cluster, is_chief
from ganrl.user_model import LoadedUserModel, load_user_model
from ganrl.user_model.model import UserModel

CURVE_FIELDS = ("policy", "phase", "iteration", "reward", "ctr", "loss")
# The CDQN settings of a run folder written before they existed: the unbounded Q-network
# with one-step double-Q targets (issue 18 made the bounded residual the default).
LEGACY_CDQN = {
    "cdqn_residual_bound": 0.0,
    "cdqn_uncertainty": 0.0,
    "cdqn_double_q": True,
    "cdqn_n_step": 1,
}
# The bounded residual of PPO, A2C, DDPG and LinUCB in a run folder written before it: none
# (issue 18 made it their default too).
LEGACY_RESIDUAL = {"residual_bound": 0.0, "residual_uncertainty": 0.0}
# Snapshot selection in a run folder written before the lower-bound rule: the best mean.
LEGACY_SELECTION = {"select_margin": 0.0, "select_log_drop": 1.0}
# The off-policy estimates the logs check in a run folder written before the doubly robust
# one joined: self-normalised IPS alone.
LEGACY_LOG_ESTIMATORS = {"select_log_estimators": ("snips",)}
# The estimates `select_log_estimators` may name (`ganrl.policy.off_policy.ESTIMATORS`).
LOG_ESTIMATORS = ("snips", "dr")
# A run folder written before `mean_reward`: r(s, a) was the training user model's alone.
LEGACY_MEAN_REWARD = {"mean_reward": False}
# The policies that take `residual_bound` and `residual_uncertainty` (the CDQN has its own).
RESIDUAL_POLICIES = ("ppo", "a2c", "ddpg", "linucb")
# The policies that read the learned reward r(s, a) (GAN-Greedy's ranking).
REWARD_POLICIES = ("gan_greedy", "cdqn", *RESIDUAL_POLICIES)
# Settings a rerun into a run folder may change: where it is, how often it saves, and the
# policies (a finished run takes more policies and trains only those).
RERUN_MAY_CHANGE = ("save_dir", "checkpoint_secs", "policies")
# Seconds of wall time between progress lines of a long stage: under 30 s, so that a line
# comes at least every 30 s while an episode takes under 10 s.
PROGRESS_EVERY = 20.0


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Attributes: see `experiment_policy/main_policy.py`'s flags."""

    user_model_dir: str
    test_user_model_dir: str
    save_dir: str
    policies: tuple[str, ...] = ("cdqn", "gan_greedy", "linucb", "wd_lr", "most_popular", "random")
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
    select_margin: float = 2.0
    select_log_drop: float = 0.0
    select_log_estimators: tuple[str, ...] = LOG_ESTIMATORS
    expected_reward: bool = False
    history_length: int = 10
    seed: int = 0
    checkpoint_secs: float = 30.0
    ensemble_dirs: tuple[str, ...] = ()
    reward_dirs: tuple[str, ...] = ()
    penalty: float = 0.0
    off_policy_users: int = 500
    off_policy_events: int = 50
    leave: bool = True
    cdqn_residual_bound: float = 1.0
    cdqn_uncertainty: float = 1.0
    cdqn_double_q: bool = True
    cdqn_n_step: int = 1
    cdqn_explore: str = "slate"
    residual_bound: float = 1.0
    residual_uncertainty: float = 1.0
    mean_reward: bool = True

    def __post_init__(self):
        if not self.policies:
            raise ValueError("policy='': expected at least one policy")
        for name in self.policies:
            if name not in POLICIES:
                raise ValueError(f"policy={name!r}: expected one of {', '.join(sorted(POLICIES))}")
        self.simulator()  # checks k, n_candidates, horizon, reward and history_length
        config_checks.check(
            self,
            "a positive integer",
            "num_itrs",
            "batch_size",
            "train_batch_size",
            "hidden",
            "epsilon_steps",
            "target_update",
            "eval_users",
            "select_users",
        )
        config_checks.check(
            self, "a non-negative integer", "adapt_itrs", "regret_itrs", "select_every", "seed"
        )
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(self, "a number in [0, 1]", "gamma", "epsilon_start", "epsilon_end")
        config_checks.check(
            self, "a non-negative number", "checkpoint_secs", "penalty", "select_margin"
        )
        config_checks.check(self, "a number in [0, 1]", "select_log_drop")
        for name in self.select_log_estimators:
            if name not in LOG_ESTIMATORS:
                raise ValueError(
                    f"select_log_estimators: {name!r}, expected some of {', '.join(LOG_ESTIMATORS)}"
                )
        config_checks.check(self, "a non-negative integer", "off_policy_users")
        config_checks.check(self, "a positive integer", "off_policy_events", "cdqn_n_step")
        config_checks.check_choice(self, "cdqn_explore", cdqn.EXPLORATIONS)
        config_checks.check(
            self,
            "a non-negative number",
            "cdqn_residual_bound",
            "cdqn_uncertainty",
            "residual_bound",
            "residual_uncertainty",
        )
        if self.reward_dirs and self.ensemble_dirs:
            raise ValueError(
                "reward_dirs and ensemble_dirs: expected one of them (an ensemble's training "
                "members already give the mean reward)"
            )
        if self.penalty > 0 and len(self.ensemble_dirs) < 2:
            raise ValueError(
                f"penalty={self.penalty}: expected at least two ensemble_dirs "
                "beside user_model_dir (the last member is held out for "
                "selection, and a penalty needs two members to disagree)"
            )

    def uses_ensemble(self, policy: str) -> bool:
        """Whether `policy`'s residual bound shrinks where the training ensemble disagrees
        (it then needs the members' rewards, in training and in serving)."""
        if not self.reward_member_dirs:
            return False
        if policy == "cdqn":
            return bool(self.cdqn_residual_bound and self.cdqn_uncertainty)
        return policy in RESIDUAL_POLICIES and bool(
            self.residual_bound and self.residual_uncertainty
        )

    def averages_reward(self, policy: str) -> bool:
        """Whether `policy`'s learned reward r(s, a) is the mean of the training ensemble's
        members (`MeanReward`; it then needs them, in training and in serving)."""
        return self.mean_reward and bool(self.reward_member_dirs) and policy in REWARD_POLICIES

    @property
    def reward_member_dirs(self) -> tuple[str, ...]:
        """The user models whose rewards the policies average (`mean_reward`) and whose
        disagreement shrinks the residuals' bound, user_model_dir first: with reward_dirs,
        user_model_dir and those; with ensemble_dirs, the training ensemble's members (all
        but the held-out last; none when that leaves one); else none."""
        if self.reward_dirs:
            return (self.user_model_dir, *self.reward_dirs)
        return self.member_dirs[:-1] if len(self.member_dirs) > 2 else ()

    @property
    def member_dirs(self) -> tuple[str, ...]:
        """Every user model of the training simulator: user_model_dir and ensemble_dirs."""
        return (self.user_model_dir, *self.ensemble_dirs)

    @classmethod
    def from_dict(cls, values: dict) -> "PolicyConfig":
        """The config of a run folder's config.json (a field it predates has its default, but
        the CDQN settings of a folder older than them are those it was trained with,
        `LEGACY_CDQN`, and so are the other policies' residual settings, `LEGACY_RESIDUAL`,
        the selection rule, `LEGACY_SELECTION` and `LEGACY_LOG_ESTIMATORS`, and the learned
        reward, `LEGACY_MEAN_REWARD`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        legacies = (
            LEGACY_CDQN,
            LEGACY_RESIDUAL,
            LEGACY_SELECTION,
            LEGACY_LOG_ESTIMATORS,
            LEGACY_MEAN_REWARD,
        )
        for legacy in legacies:
            if not any(name in values for name in legacy):
                values = {**legacy, **values}
        for name in ("policies", "ensemble_dirs", "reward_dirs", "select_log_estimators"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def simulator(self, seed_offset: int = 0) -> SimulatorConfig:
        return SimulatorConfig(
            k=self.k,
            n_candidates=self.n_candidates,
            horizon=self.horizon,
            reward=self.reward,
            history_length=self.history_length,
            seed=self.seed + seed_offset,
            leave=self.leave,
        )


def mean_ci(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "ci95": float(half)}


def load_training_data(model: LoadedUserModel) -> SplitData:
    """The logs a user model was trained on, split as it was (`load_run_data`: with
    `resplit` or `train_share` its training users are drawn with its seed), and the policies
    fitted to the logs (most popular, W&D-LR) must see only them."""
    cfg = model.config
    data = load_run_data(cfg, model.run_dir)
    if data.n_items != model.n_items:
        raise safe_io.DataError(
            f"{os.path.join(cfg['data_folder'], cfg['dataset'])}: {data.n_items} items, "
            f"expected {model.n_items} (the catalogue of the user model in {model.run_dir})"
        )
    return data


@dataclasses.dataclass(frozen=True)
class PolicyInputs:
    """What the policies of a run are built from beside their settings.

    Attributes:
      features: the item and state features (from the training user model).
      reward_model: the training user model's reward r(s, a).
      train_events: the training logs of that user model's training users.
      n_candidates: candidates per user and step in the simulators.
      strategy: the `tf.distribute` strategy of the CDQN's updates (None: the default).
      ensemble_models: the rewards of `PolicyConfig.reward_member_dirs` (two or more; empty
        for one model), whose disagreement shrinks the bounded residual of the CDQN, PPO,
        A2C, DDPG and LinUCB (`ganrl.policy.residual`).
      mean_reward: whether GAN-Greedy's and the residuals' r(s, a) is the mean of the
        `ensemble_models` (when there are any; `learned_reward`).
    """

    features: PolicyFeatures
    reward_model: UserModel
    train_events: EventArrays
    n_candidates: int
    strategy: tf.distribute.Strategy | None = None
    ensemble_models: tuple[UserModel, ...] = ()
    mean_reward: bool = False

    @property
    def learned_reward(self) -> UserModel | heuristics.MeanReward:
        """The r(s, a) that GAN-Greedy ranks by and the learning policies' bounded residual
        starts from: the training ensemble's mean with `mean_reward`, else the training
        user model's."""
        if self.mean_reward and self.ensemble_models:
            return heuristics.MeanReward(self.ensemble_models)
        return self.reward_model

    def click_counts(self) -> np.ndarray:
        """`[n_items]` clicks of each item in the training logs."""
        clicked = self.train_events.clicked_item
        return np.bincount(clicked[clicked >= 0], minlength=self.train_events.n_items).astype(float)


def reward_members(
    config: PolicyConfig, loaded: dict[str, LoadedUserModel]
) -> tuple[UserModel, ...]:
    """The rewards of `config.reward_member_dirs` (empty for none), taken from `loaded`
    (run folder -> model; the training model's at least) and loading the others."""
    models = []
    for folder in config.reward_member_dirs:
        model = loaded.get(folder) or load_user_model(folder)
        if model.n_items != loaded[config.user_model_dir].n_items:
            raise ValueError(
                f"{folder}: {model.n_items} items, expected the "
                f"{loaded[config.user_model_dir].n_items} of {config.user_model_dir}"
            )
        models.append(model.reward)
    return tuple(models)


def _actor_critic(config: PolicyConfig) -> dict:
    """The protocol's settings that the actor-critic configs take (PPO's, A2C's and
    DDPG's)."""
    return {
        "hidden": config.hidden,
        "gamma": config.gamma,
        "learning_rate": config.learning_rate,
        **_residual(config),
    }


def _residual(config: PolicyConfig) -> dict:
    """The bounded residual's settings of PPO, A2C, DDPG and LinUCB's configs."""
    return {"residual_bound": config.residual_bound, "uncertainty": config.residual_uncertainty}


def _reward_models(inputs: PolicyInputs) -> dict:
    """The reward model and ensemble members that the residual policies take."""
    return {"reward_model": inputs.learned_reward, "ensemble_models": inputs.ensemble_models}


# Policy name -> its builder from the protocol's config: each passes only what it needs.
BUILDERS: dict[str, Callable[[PolicyConfig, PolicyInputs], Policy]] = {
    "random": lambda c, i: heuristics.RandomPolicy(i.features, c.k, c.seed),
    "most_popular": lambda c, i: heuristics.MostPopular(
        i.features, c.k, c.seed, click_counts=i.click_counts()
    ),
    "gan_greedy": lambda c, i: heuristics.GanGreedy(
        i.features, c.k, c.seed, reward_model=i.learned_reward
    ),
    "linucb": lambda c, i: heuristics.LinUCB(
        i.features, c.k, c.seed, heuristics.LinUCBConfig(**_residual(c)), **_reward_models(i)
    ),
    "wd_lr": lambda c, i: heuristics.WideLogisticRegression(
        i.features, c.k, c.seed, train_events=i.train_events, history_length=c.history_length
    ),
    "cdqn": lambda c, i: cdqn.CascadingDQN(
        i.features,
        c.k,
        c.seed,
        cdqn.CDQNConfig(
            hidden=c.hidden,
            gamma=c.gamma,
            learning_rate=c.learning_rate,
            batch_size=c.train_batch_size,
            target_update=c.target_update,
            epsilon_start=c.epsilon_start,
            epsilon_end=c.epsilon_end,
            epsilon_steps=c.epsilon_steps,
            residual_bound=c.cdqn_residual_bound,
            uncertainty=c.cdqn_uncertainty,
            double_q=c.cdqn_double_q,
            n_step=c.cdqn_n_step,
            explore=c.cdqn_explore,
        ),
        n_candidates=i.n_candidates,
        history_length=c.history_length,
        reward_model=i.learned_reward,
        ensemble_models=i.ensemble_models,
        strategy=i.strategy,
    ),
    "ppo": lambda c, i: actor_critic.PPO(
        i.features,
        c.k,
        c.seed,
        actor_critic.PPOConfig(**_actor_critic(c)),
        **_reward_models(i),
    ),
    "a2c": lambda c, i: actor_critic.A2C(
        i.features,
        c.k,
        c.seed,
        actor_critic.A2CConfig(**_actor_critic(c)),
        **_reward_models(i),
    ),
    "ddpg": lambda c, i: ddpg.DDPG(
        i.features,
        c.k,
        c.seed,
        ddpg.DDPGConfig(**_actor_critic(c), batch_size=c.train_batch_size),
        **_reward_models(i),
    ),
}


def make_policy(name: str, config: PolicyConfig, inputs: PolicyInputs) -> Policy:
    """Policy `name` with its own config from the protocol's `config`."""
    if name not in BUILDERS:
        raise ValueError(f"unknown policy {name!r}: expected one of {sorted(BUILDERS)}")
    return BUILDERS[name](config, inputs)


def print_line(line: str) -> None:
    print(line, flush=True)


class Heartbeat:
    """Progress lines by wall time, not by iteration: `beat(message)` passes `message()` to
    `progress` when at least `every` seconds have passed since the last line it passed (or
    since it was made); `message` is called only then."""

    def __init__(
        self,
        progress: Callable[[str], None],
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.progress, self.every, self.clock = progress, every, clock
        self.last = clock()

    def __call__(self, message: Callable[[], str]) -> None:
        now = self.clock()
        if now - self.last >= self.every:
            self.progress(message())
            self.last = now


def selection_score(rewards: np.ndarray, start: np.ndarray | None, margin: float) -> float:
    """How a snapshot ranks in selection: the lower bound mean(d) - margin * se(d) of its
    paired gain d over the untrained start on the same validation users (the start scores
    0). A snapshot that is better than the start only within the validation noise is not
    taken: the noise a long run of validations would otherwise pick up is most often
    where the policy exploits the simulator. Without a start (a best.json older than this
    rule) or with margin 0, snapshots rank by their mean reward's gain."""
    if start is None:
        return float(np.mean(rewards))
    gain = np.asarray(rewards, np.float64) - np.asarray(start, np.float64)
    se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    return float(gain.mean() - margin * se)


def training_stream_seed(seed: int, name: str) -> int:
    """The seed of the training simulator's stream for policy `name`: a function of the run's
    seed and the name alone, so a policy trains alike whichever policies the run lists before
    it (apart from the streams of seed + 1 to seed + 4 that validation and testing use)."""
    return seed + 1000 + zlib.crc32(name.encode()) % 1_000_000


def keeps_logged_clicks(
    logged: dict[str, float] | None, start: dict[str, float] | None, drop: float
) -> bool:
    """Whether every off-policy estimate of logged clicks of a snapshot (`logged`, by
    estimator name) is within the share `drop` of the untrained start's same estimate
    (`start`); an estimate either lacks (or nan) is not checked."""
    for name, value in (logged or {}).items():
        base = (start or {}).get(name)
        if base is None or math.isnan(value) or math.isnan(base):
            continue
        if value < base - drop * abs(base):
            return False
    return True


def start_estimates(best: dict) -> dict[str, float] | None:
    """The untrained start's off-policy estimates kept in a best.json: `start_logged` holds
    them by name, or (a best.json older than the doubly robust check) the SNIPS figure
    alone."""
    start = best.get("start_logged")
    if start is None or isinstance(start, dict):
        return start
    return {"snips": float(start)}


def remove_other_snapshots(folder: str, keep: str) -> None:
    """Deletes the files of every snapshot in `folder` but `keep` (its best.json stays)."""
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if entry != "best.json" and entry.split(".")[0] != keep and os.path.isfile(path):
            os.remove(path)


def run_episodes(
    sim: Simulator,
    policy: Policy,
    users: int,
    learn: bool = False,
    explore: bool = False,
    regret: list | None = None,
    expected: bool = False,
) -> tuple[np.ndarray, np.ndarray, list]:
    """One episode of `users` users: `[users, horizon]` rewards and clicks (0 after a user
    left; `sim.session_lengths` holds her slates seen), and the losses. With a `regret`
    list, appends each step's mean expected regret against the simulator's best slate
    (`Simulator.best_slate`) over the users still there. With `expected`, each step's
    reward (returned, and what a learning policy observes) is its expectation over the
    click given the slate (`StepResult.expected_reward`), not the sampled click's: the same
    mean, without the click's noise; a policy that credits the reward to the clicked item
    (`Policy.credits_clicked_item`, LinUCB) still observes the sampled reward, since a
    slate's expectation credited to one item would be that item's click probability times
    the whole slate's reward."""
    obs = sim.reset(users)
    rewards, clicks, losses = [], [], []
    done = False
    while not done:
        slate = policy.select(obs, explore=explore)
        if regret is not None:
            gap = sim.expected_slate_reward(obs, sim.best_slate(obs)) - sim.expected_slate_reward(
                obs, slate
            )
            if obs.alive is not None:
                gap *= tf.cast(obs.alive, gap.dtype)
            regret.append(float(tf.reduce_mean(gap)))
        result = sim.step(obs, slate)
        reward = result.reward
        if expected:
            if result.expected_reward is None:
                raise ValueError(f"{type(sim).__name__} gives no expected reward")
            reward = result.expected_reward
        if learn:
            observed = result.reward if policy.credits_clicked_item else reward
            policy.observe(
                obs, slate, observed, result.clicked_index, result.observation, result.done
            )
            info = policy.train_step()
            if "loss" in info:
                losses.append(info["loss"])
        rewards.append(np.asarray(reward))
        clicks.append(result.clicked.numpy())
        obs, done = result.observation, result.done
    if obs.alive is not None and not np.any(obs.alive):
        # Everyone left before the horizon: the steps left pay nothing and regret nothing
        # (one regret entry per step, so that curves stay aligned by interaction step).
        missing = sim.config.horizon - len(rewards)
        rewards += [np.zeros(users, np.float32)] * missing
        clicks += [np.zeros(users, bool)] * missing
        if regret is not None:
            regret += [0.0] * missing
    return np.stack(rewards, 1), np.stack(clicks, 1), losses


class PolicyRunner:
    """Trains every policy in the training simulator and tests it in the test simulator."""

    def __init__(
        self,
        config: PolicyConfig,
        progress: Callable[[str], None] = print_line,
        strategy: tf.distribute.Strategy | None = None,
        progress_every: float = PROGRESS_EVERY,
    ):
        safe_io.check_folder_path(config.save_dir, "--save_dir")  # before anything is built
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = is_chief(self.strategy)
        self._stop_asked = lambda: False  # a stop on a signal (`run` installs the handler)
        self.read_dir = config.save_dir  # finished work and checkpoints: the chief's folder
        if not self.chief:
            config = dataclasses.replace(config, save_dir=tempfile.mkdtemp(prefix="ganrl-worker-"))
        self.config = config
        self.progress = progress if self.chief else (lambda _: None)
        self.progress_every = progress_every
        # Training seconds per (policy, phase), over every segment of a resumed run.
        self.clock = time.perf_counter
        self.train_seconds: dict[tuple[str, str], float] = {}
        members = [load_user_model(folder) for folder in config.member_dirs]
        self.train_model = members[0]
        self.test_model = load_user_model(config.test_user_model_dir)
        for model in members[1:] + [self.test_model]:
            if model.n_items != self.train_model.n_items:
                raise ValueError(
                    f"{model.run_dir}: {model.n_items} items, expected the "
                    f"{self.train_model.n_items} of {config.user_model_dir}"
                )
        self.features = PolicyFeatures.from_user_model(self.train_model.reward)
        data = load_training_data(self.train_model)
        self.data_fingerprint = data.fingerprint()
        if len(members) > 1:
            # Trained in every member but the last (their mean, less the penalty times their
            # disagreement); snapshots selected in the last, which training never saw.
            self.train_sim = EnsembleSimulator(
                members[:-1], config.simulator(0), penalty=config.penalty
            )
            self.select_sim = Simulator(members[-1], config.simulator(2))
            self.selection = f"the held-out user model {members[-1].run_dir}"
        else:
            self.train_sim = Simulator(self.train_model, config.simulator(0))
            self.select_sim = Simulator(self.train_model, config.simulator(2))
            self.selection = (
                "the training simulator's own validation stream (no held-out "
                "user model: pass ensemble_dirs)"
            )
        self.test_sim = Simulator(self.test_model, config.simulator(1))
        self.train_events, self.validation_events = data.splits["train"], data.splits["vali"]
        self.propensity = off_policy.display_propensities(self.train_events)
        self.inputs = PolicyInputs(
            self.features,
            self.train_model.reward,
            self.train_events,
            self.train_sim.n_candidates,
            self.strategy,
            reward_members(config, dict(zip(config.member_dirs, members))),
            config.mean_reward,
        )

    def _policy(self, name: str) -> Policy:
        return make_policy(name, self.config, self.inputs)

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
        rows = [
            r
            for r in safe_io.read_csv_rows(path)
            if (r["policy"], r["phase"]) != (name, phase) or int(r["iteration"]) <= last_step
        ]
        safe_io.write_csv_rows(path, CURVE_FIELDS, rows)
        return [
            {
                "policy": name,
                "phase": phase,
                "iteration": int(r["iteration"]),
                **{key: float(r[key]) for key in ("reward", "ctr", "loss")},
            }
            for r in rows
            if (r["policy"], r["phase"]) == (name, phase)
        ]

    def train(
        self, name: str, policy: Policy, sim: Simulator, itrs: int, phase: str, resume: bool = True
    ) -> list[dict]:
        """Trains a learning policy for `itrs` episodes of `batch_size` users (resumable)."""
        cfg = self.config
        iteration = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The seconds of the segments before a kill (a checkpoint older than it has none).
        seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        ckpt = tf.train.Checkpoint(
            iteration=iteration,
            train_seconds=seconds,
            **policy.checkpoint_objects(),
            numpy_state=NumpyState(policy),
            simulator=sim.rng,
        )
        folder = os.path.join("checkpoints", f"{name}__{phase}")
        manager = tf.train.CheckpointManager(ckpt, os.path.join(cfg.save_dir, folder), 1)
        latest = tf.train.latest_checkpoint(os.path.join(self.read_dir, folder))
        if phase == "train":
            # A resumed run restores the stream where it was (`simulator` above).
            sim.rng.reset_from_seed(training_stream_seed(cfg.seed, name))
        if resume and latest:
            ckpt.restore(latest)
            self.progress(f"resuming {name} ({phase}) at episode {int(iteration.numpy())}")
        curve = self._resume_curve(name, phase, int(iteration.numpy()) * cfg.horizon)
        earlier, tic = float(seconds.numpy()), self.clock()
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
            rewards = self.validate(policy)
            # The untrained start's per-user rewards and logged clicks, the baselines of
            # every later snapshot (a best.json older than them ranks by the mean alone).
            start = rewards if best is None else best.get("start_rewards")
            score = selection_score(rewards, start, cfg.select_margin)
            checks = cfg.select_log_drop < 1 and cfg.select_log_estimators
            logged = self.logged_clicks(policy) if checks else None
            start_logged = logged if best is None else start_estimates(best)
            refused = not keeps_logged_clicks(logged, start_logged, cfg.select_log_drop)
            if refused:
                score = -math.inf  # loses clicks the logs can check: never taken
            episode = int(iteration.numpy())
            self.progress(
                f"{name}: validation at episode {episode}: reward {rewards.mean():.3f}, "
                f"gain lower bound {score:.3f}"
                + (
                    " (refused: an off-policy estimate of logged clicks fell below the start's)"
                    if refused
                    else ""
                )
                + "".join(
                    f", logged clicks ({estimator}) {value:.4f} "
                    f"(start {start_logged[estimator]:.4f})"
                    for estimator, value in (logged or {}).items()
                    if start_logged and estimator in start_logged
                )
            )
            if best is None or score > best["score"]:
                snapshot.write(os.path.join(cfg.save_dir, best_folder, f"best-{episode}"))
                best = {
                    "score": score,
                    "reward": float(rewards.mean()),
                    "episode": episode,
                    "checkpoint": f"best-{episode}",
                }
                if start is not None:
                    best["start_rewards"] = [float(r) for r in start]
                if start_logged is not None:
                    best["start_logged"] = start_logged
                    best["logged"] = logged
                safe_io.dump_json(os.path.join(cfg.save_dir, best_folder, "best.json"), best)
                remove_other_snapshots(os.path.join(cfg.save_dir, best_folder), best["checkpoint"])

        if int(iteration.numpy()) < episodes:
            self.progress(f"{name} ({phase}): {episodes} episodes of {cfg.batch_size} users")
        beat = Heartbeat(self.progress, self.progress_every)
        if select and best is None:
            consider()  # the untrained policy
        while int(iteration.numpy()) < episodes:
            rewards, clicks, losses = run_episodes(
                sim, policy, cfg.batch_size, learn=True, explore=True, expected=cfg.expected_reward
            )
            iteration.assign_add(1)
            step = int(iteration.numpy()) * cfg.horizon
            row = {
                "policy": name,
                "phase": phase,
                "iteration": step,
                "reward": float(rewards.mean()),
                "ctr": float(clicks.mean()),
                "loss": float(np.mean(losses)) if losses else float("nan"),
            }
            curve.append(row)
            self._log(row)
            beat(
                lambda: (
                    f"{name} ({phase}): episode {int(iteration.numpy())}/{episodes}, "
                    f"reward {row['reward']:.3f}"
                    # A learner without a loss (LinUCB's closed-form update) reports none.
                    + ("" if np.isnan(row["loss"]) else f", loss {row['loss']:.4g}")
                )
            )
            # Validation comes before the checkpoint, so a run killed in between validates
            # this episode again when it resumes (validation changes no state).
            if select and (
                int(iteration.numpy()) % cfg.select_every == 0 or int(iteration.numpy()) == episodes
            ):
                consider()
            asked = self._stop_asked()
            if (
                time.monotonic() - last_save >= cfg.checkpoint_secs
                or int(iteration.numpy()) == episodes
                or asked
            ):
                seconds.assign(earlier + self.clock() - tic)
                manager.save(checkpoint_number=int(iteration.numpy()))
                last_save = time.monotonic()
            if asked and int(iteration.numpy()) < episodes:
                raise interrupt.Interrupted(
                    f"{cfg.save_dir}: {name} ({phase}) stopped at episode "
                    f"{int(iteration.numpy())} on a signal, its checkpoint saved; rerun the "
                    "same command to resume from there"
                )
        if select:
            # A run folder that predates named snapshots has one snapshot, "best".
            snapshot.read(
                os.path.join(self.read_dir, best_folder, best.get("checkpoint", "best"))
            ).assert_consumed()
            self.progress(
                f"{name}: the snapshot of episode {best['episode']} (validation reward "
                f"{best.get('reward', best['score']):.3f} in {self.selection})"
            )
        self.train_seconds[name, phase] = earlier + self.clock() - tic
        return curve

    def validate(self, policy: Policy) -> np.ndarray:
        """Each validation user's cumulative reward, frozen, in the selection simulator's
        validation stream (the same users and random numbers at every validation); with
        `expected_reward`, the sum of each slate's expected reward along her path."""
        self.select_sim.rng.reset_from_seed(self.config.seed + 3)
        rewards, _, _ = run_episodes(
            self.select_sim,
            policy,
            self.config.select_users,
            expected=self.config.expected_reward,
        )
        return rewards.sum(axis=1)

    def logged_clicks(self, policy: Policy) -> dict[str, float]:
        """The off-policy estimates named by `select_log_estimators` of `policy`'s clicks per
        logged event on the first `off_policy_users` (or, when 0, `select_users`) logged
        validation users (`ganrl.policy.off_policy`), by name; {} without validation users.
        Self-normalised IPS is model-free (a snapshot that exploits a user model's errors
        cannot raise it); the doubly robust estimate corrects the training user model's
        prediction by the logged clicks. The reported off-policy estimates (`off_policy`)
        replay the same users: a selected snapshot's there is not blind."""
        wanted = self.config.off_policy_users or self.config.select_users
        users = np.arange(min(wanted, self.validation_events.n_users))
        if not len(users):
            return {}
        terms = off_policy.event_terms(
            policy,
            self.train_model,
            self.validation_events.subset(users),
            self.propensity,
            self.config.k,
            self.config.history_length,
            max_events=self.config.off_policy_events,
            reference=self.train_events,
        )
        estimates = terms.estimates(self.config.k)
        return {
            name: estimates[name]["value"]
            for name in self.config.select_log_estimators
            if not math.isnan(estimates[name]["value"])
        }

    def evaluate(self, policy: Policy) -> dict:
        """Frozen, in the test simulator. Every policy meets the same random stream (common
        random numbers: the same candidate draws, and the same click noise wherever the
        slates agree), so differences between policies are not sampling noise of the
        simulator."""
        self.test_sim.rng.reset_from_seed(self.config.seed + 1)
        rewards, clicks, _ = run_episodes(self.test_sim, policy, self.config.eval_users)
        steps = self.test_sim.session_lengths
        out = {
            "cumulative_reward": mean_ci(rewards.sum(axis=1)),
            "reward_curve": np.cumsum(rewards, axis=1).mean(axis=0).tolist(),
            # Slates seen before leaving (the horizon without a leave model).
            "session_length": mean_ci(steps),
        }
        if self.test_sim.has_no_click:
            # Clicks per slate seen (per step of the horizon when nobody leaves).
            out["ctr"] = mean_ci(clicks.sum(axis=1) / np.maximum(steps, 1))
            out["ctr_curve"] = clicks.mean(axis=0).tolist()
        if self.config.off_policy_users:
            out["off_policy"] = self.off_policy(policy)
        return out

    def off_policy(self, policy: Policy) -> dict:
        """The off-policy estimates (`ganrl.policy.off_policy`) of `policy` on the first
        `off_policy_users` logged validation users (the first `off_policy_events` events of
        each): what the logs say beside what the test simulator says; the direct method is
        the test user model's."""
        users = np.arange(min(self.config.off_policy_users, self.validation_events.n_users))
        return off_policy.estimate(
            policy,
            self.test_model,
            self.validation_events.subset(users),
            self.train_events,
            self.config.k,
            self.config.history_length,
            max_events=self.config.off_policy_events,
            progress=Heartbeat(self.progress, self.progress_every),
        )

    def run(self) -> dict:
        """Trains and evaluates every policy (reusing finished ones); returns the results.

        The chief holds the run folder meanwhile (`run_folder.claim`): a second run into it,
        or a rerun with other flags (but the policies), is refused before anything is written.
        """
        try:
            if not self.chief:  # its save_dir is a temporary folder of its own
                return self._run()
            with (
                run_folder.claim(
                    self.config.save_dir,
                    dataclasses.asdict(self.config),
                    lambda saved: dataclasses.asdict(PolicyConfig.from_dict(saved)),
                    ignore=RERUN_MAY_CHANGE,
                ),
                interrupt.stop_requests(enabled=not in_cluster(self.strategy)) as self._stop_asked,
            ):
                run_folder.require_same_data(
                    self.config.save_dir,
                    f"the logs of the user model {self.train_model.run_dir}",
                    self.data_fingerprint,
                )
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
        results = {
            "policies": {},
            "has_no_click": self.test_sim.has_no_click,
            "snapshot_selection": self.selection,
        }
        if not self.test_sim.has_no_click:
            results["ctr_note"] = (
                "the test user model was trained on data where every "
                "display set has a click, so it never clicks nothing: "
                "CTR is 1 by construction and is not reported"
            )
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
            seconds = 0.0
            if policy.learns:
                self.train(name, policy, self.train_sim, cfg.num_itrs, "train")
                seconds = self.train_seconds[name, "train"]
            result = self.evaluate(policy)
            result["train_seconds"] = seconds
            safe_io.dump_json(done_path, result)
            results["policies"][name] = result
            trained[name] = policy
            line = f"{name:>13}: cumulative reward {result['cumulative_reward']['mean']:.3f}"
            if "ctr" in result:
                line += f"  CTR {result['ctr']['mean']:.3f}"
            line += f"  session {result['session_length']['mean']:.2f} slates"
            self.progress(line + f"  (trained {seconds:.1f}s)")
        if "cdqn" in trained and cfg.adapt_itrs > 0:
            results["adaptation"] = self.adaptation(trained["cdqn"])
        if "linucb" in trained and cfg.regret_itrs > 0:
            results["regret"] = self.regret()
        safe_io.dump_json(results_path, results)
        plot_policy_run(results, os.path.join(cfg.save_dir, "curves.png"))
        return results

    def adaptation(self, pretrained: Policy) -> dict:
        """Pre-trained vs from-scratch CDQN, both learning online in the test simulator."""
        out = {}
        scratch = self._policy("cdqn")
        adapted = pretrained.fine_tuning_copy()  # the pre-trained networks, low epsilon
        for label, policy in (("pretrained", adapted), ("scratch", scratch)):
            # Both meet the same test-simulator stream, a function of the seed alone (not of
            # the evaluations before, which a rerun of a killed run skips).
            self.test_sim.rng.reset_from_seed(self.config.seed + 4)
            curve = self.train(
                "cdqn", policy, self.test_sim, self.config.adapt_itrs, f"adapt_{label}"
            )
            key = "ctr" if self.test_sim.has_no_click else "reward"
            out[label] = [row[key] for row in curve]
        out["metric"] = "ctr" if self.test_sim.has_no_click else "reward"
        self.progress(
            f"adaptation ({out['metric']} per episode in the test simulator, first "
            "-> last, mean): "
            + "; ".join(
                f"cdqn {label} {out[label][0]:.3f} -> {out[label][-1]:.3f}, "
                f"{np.mean(out[label]):.3f}"
                for label in ("pretrained", "scratch")
            )
        )
        return out

    def regret(self) -> dict:
        """Cumulative expected regret per user over online steps in the test simulator:
        LinUCB learning from scratch; GAN-Greedy and random, frozen, for reference."""
        cfg, out = self.config, {}
        episodes = max(1, cfg.regret_itrs // cfg.horizon)
        self.progress(
            f"regret: {episodes} episodes of {cfg.batch_size} users in the test "
            "simulator for linucb (learning), gan_greedy and random"
        )
        beat = Heartbeat(self.progress, self.progress_every)
        for name, learn in (("linucb", True), ("gan_greedy", False), ("random", False)):
            policy, per_step = self._policy(name), []
            self.test_sim.rng.reset_from_seed(cfg.seed + 2)
            for episode in range(episodes):
                run_episodes(
                    self.test_sim,
                    policy,
                    cfg.batch_size,
                    learn=learn,
                    explore=learn,
                    regret=per_step,
                )
                beat(lambda: f"regret: {name} episode {episode + 1}/{episodes}")
            out[name] = np.cumsum(per_step).tolist()
        self.progress(
            f"regret after {len(out['linucb'])} online steps (cumulative, per user): "
            + ", ".join(f"{name} {curve[-1]:.3f}" for name, curve in out.items())
        )
        return out
