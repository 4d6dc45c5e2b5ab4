"""The sim-to-real harness: do policies trained in a learned simulator serve true users well?

For one ground-truth world and seed (`HarnessConfig`), in `SAVE_DIR/{world}__{seed}/`:
1. `data/`: the world's logs in the released format and the processed dataset
   (`ganrl.data.pipeline`, dataset name `synthetic`; `--world=satiation`,
   `satiation_clickbait`, `satiation_targeted` or a `ganrl.data.synthetic` world name), with
   `synthetic-truth.npz`;
2. `user_model_LSTM__0/`, `user_model_PW__1/`: the training and test user models, trained by
   `experiment_user_model/run_gan_user_model.sh` (its defaults, but the training length
   `user_model_epochs` and any `user_model_args`);
3. `policy/`: every policy trained in the training simulator and tested in the test
   simulator (`ganrl.policy.runner.PolicyRunner`, the run scripts' defaults but
   `num_itrs`, `sim_eval_users`, an epsilon schedule of half the training steps, and no
   adaptation or regret experiments);
4. each policy loaded through `ganrl.policy.export.load_policy` and served with the batched
   `recommend` to `true_users` new users of the TRUE world (`ganrl.sim2real.true_env`), the
   whole catalogue as candidates, k items a slate, `horizon` steps; every policy meets the
   same users and noise (common random numbers), so gaps are paired over users;
5. references that know the truth: `oracle_myopic` (top k by the true utilities now) and,
   in the satiation worlds, `oracle_lookahead` (see `lookahead_oracle`), `oracle_static`
   (top k by the true utilities without tiredness: knows tastes, not satiation) and, with
   clickbait, `oracle_no_clickbait` (`no_clickbait_oracle`);
6. `table.csv`, `table.md`, `results.json` and `sim_vs_true.png`: per policy the true
   reward's mean and standard error, the session length (steps before leaving), the test
   simulator's figure, the gap to GAN-Greedy with a paired 95% interval, and the Spearman
   rank correlation between the simulator's and the true figures over the policies.
Every stage is reused when finished (the user-model and policy run folders resume).

Leaving: each user model's run folder gets its leave model (`ganrl.user_model.leave`; the
user-model run fits it, and `train_user_models` fits it for folders trained before), so the
simulators end sessions by it; `sim_steps` (the test simulator's session length) sits beside
`true_steps`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from typing import Callable

import numpy as np

from ganrl.data import pipeline, safe_io
from ganrl.data.satiation import SATIATION_WORLDS, SatiationConfig
from ganrl.data.synthetic import SyntheticConfig, world_settings
from ganrl.sim2real.true_env import SatiationEnvironment, TrueEnvironment, load_true_env

DATASET = "synthetic"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The two simulators of the paper's protocol (`experiment_policy/run_policy.sh`).
USER_MODELS = (("LSTM", 0), ("PW", 1))
BASELINE = "gan_greedy"
TABLE_FIELDS = (
    "policy",
    "true_reward",
    "true_se",
    "true_steps",
    "sim_steps",
    "sim_reward",
    "sim_ci95",
    "off_policy_dr",
    "gap_to_gan_greedy",
    "gap_ci95_low",
    "gap_ci95_high",
)
# A recommender: histories [U, H] (most recent click first, -1 padded), the candidates [C]
# shared by every user and the users' recent slates (`Observation.events`' form, [U, E, 1 + k];
# None before the first) -> slates [U, k] of item ids.
Recommender = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def setting_text(value) -> str:
    """A policy setting as it names a folder: a number as `:g` writes it, a name as it is, a
    list of names joined by '-' ('none' when empty)."""
    if isinstance(value, (tuple, list)):
        return "-".join(value) or "none"
    return value if isinstance(value, str) else f"{value:g}"


@dataclasses.dataclass(frozen=True)
class HarnessConfig:
    """Attributes:
    world: `satiation` or a `ganrl.data.synthetic` world name (`lag_popular_always`).
    seed: seeds the logs, the user models (seed and seed + 1), the policies and the true
      users.
    save_dir: the root; this run's folder is `{save_dir}/{world}__{seed}`.
    users: users in the logs.
    user_model_epochs: passes over the training users of each user model.
    user_model_args: further flags of `run_gan_user_model.sh`.
    policies: the policies to train and evaluate (`ganrl.policy.registry.names()`).
    num_itrs: training steps of each learning policy in the simulator.
    sim_eval_users: users of the test simulator's evaluation.
    true_users: new users of the true world.
    k: slate size; horizon: steps per episode.
    true_reward: `utility` or `click`: the reward in `ganrl.data.synthetic` worlds (the
      satiation world counts clicks).
    ensemble: further LSTM user models (seeds seed + 2, ...) beside the training one: the
      policies train in an ensemble of all but the last and select snapshots in the last
      (`ganrl.policy.runner`); 0: the paper's one training simulator.
    penalty: the ensemble's pessimism, mean - penalty * disagreement (needs ensemble >= 2).
    reward_ensemble: further LSTM user models (the same seeds and folders as `ensemble`'s)
      whose mean reward with the training model's GAN-Greedy and the learning policies'
      bounded residual rank by; the training simulator and the selection stay the training
      model's (`PolicyConfig.reward_dirs`). Not with `ensemble`.
    member_share: the share of the training users each of those further LSTMs is fitted
      to (`--train_share`: a different random subset for each member's seed), so members
      differ by their data as well as their seed; 1: all of them. Member folders hold one
      share: a finished folder of another share is refused.
    cdqn: `(PolicyConfig field, value)` pairs of policy settings other than the defaults:
      the CDQN's (`cdqn_residual_bound`, ...) and the other learning policies' bounded
      residual (`residual_bound`, `residual_uncertainty`) and snapshot selection
      (`select_margin`, `select_log_drop`); they name the policy folder, so
      variants do not collide (and share the logs and user models).
    """

    world: str = "lag_popular_always"
    seed: int = 0
    save_dir: str = os.path.join("runs", "sim2real")
    users: int = 2000
    user_model_epochs: float = 10.0
    user_model_args: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    num_itrs: int = 300
    sim_eval_users: int = 500
    true_users: int = 1000
    k: int = 5
    horizon: int = 10
    true_reward: str = "utility"
    ensemble: int = 0
    penalty: float = 0.0
    reward_ensemble: int = 0
    member_share: float = 1.0
    cdqn: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        from ganrl.policy.runner import PolicyConfig

        if self.ensemble and self.reward_ensemble:
            raise ValueError(
                f"ensemble={self.ensemble} and reward_ensemble={self.reward_ensemble}: "
                "expected one of them"
            )
        if self.ensemble < 0 or self.reward_ensemble < 0:
            raise ValueError("ensemble, reward_ensemble: expected non-negative integers")
        if not 0.0 < self.member_share <= 1.0:
            raise ValueError(f"member_share={self.member_share}: expected a number in (0, 1]")

        # The policy settings are checked now, not after the logs and user models are made.
        PolicyConfig(user_model_dir="", test_user_model_dir="", save_dir="", **dict(self.cdqn))

    @property
    def run_dir(self) -> str:
        return os.path.join(self.save_dir, f"{self.world}__{self.seed}")

    @property
    def variant(self) -> str:
        """'' for the paper's simulator and the default policy settings, else the ensemble's
        name and the settings (e.g. `ensemble3_penalty0__cdqn_n_step3`, `residual_bound0`)."""
        parts = [f"ensemble{self.ensemble}_penalty{self.penalty:g}"] if self.ensemble else []
        parts += [f"reward{self.reward_ensemble}"] if self.reward_ensemble else []
        parts += [f"share{self.member_share:g}"] if self.member_share < 1.0 else []
        parts += [f"{name}{setting_text(value)}" for name, value in self.cdqn]
        return "__".join(parts)

    @property
    def policy_dir(self) -> str:
        return os.path.join(self.run_dir, f"policy__{self.variant}" if self.variant else "policy")

    @property
    def output_dir(self) -> str:
        """Where the tables and the plot go: the run folder, or a folder per variant."""
        return os.path.join(self.run_dir, self.variant) if self.variant else self.run_dir

    def prepare_config(self) -> pipeline.PrepareConfig:
        """How `data/` is generated."""
        data_folder = os.path.join(self.run_dir, "data")
        if self.world in SATIATION_WORLDS:
            return pipeline.PrepareConfig(
                data_folder=data_folder,
                seed=self.seed,
                satiation=SatiationConfig(users=self.users, **SATIATION_WORLDS[self.world]),
            )
        return pipeline.PrepareConfig(
            data_folder=data_folder,
            seed=self.seed,
            synthetic=SyntheticConfig(users=self.users, **world_settings(self.world)),
        )


def prepare_data(config: HarnessConfig) -> str:
    """Writes the world's logs and dataset unless there; returns the truth file's path."""
    prepare = config.prepare_config()
    truth = os.path.join(prepare.data_folder, f"{DATASET}-truth.npz")
    if not os.path.exists(truth):  # written last (`pipeline.write_outputs`)
        pipeline.prepare(DATASET, prepare)
    return truth


def train_user_models(config: HarnessConfig, log=print) -> list[str]:
    """Trains the training and test user models unless finished; returns their folders."""
    from ganrl.user_model.leave import ensure_leave_model

    folders = []
    for encoder, offset in user_model_seeds(config):
        folder = os.path.join(config.run_dir, f"user_model_{encoder}__{offset}")
        share = config.member_share if offset >= 2 else 1.0
        if os.path.exists(os.path.join(folder, "results.json")):
            with open(os.path.join(folder, "config.json")) as f:
                trained = float(json.load(f).get("train_share", 1.0))
            if trained != share:
                raise ValueError(
                    f"{folder}: fitted to train_share={trained:g} of the training users, "
                    f"expected {share:g} (member_share): use another save_dir"
                )
        else:
            log(f"training user model {folder}")
            command = [
                "bash",
                os.path.join(REPOSITORY, "experiment_user_model", "run_gan_user_model.sh"),
                f"--data_folder={os.path.abspath(config.prepare_config().data_folder)}",
                f"--dataset={DATASET}",
                f"--user_model={encoder}",
                f"--seed={config.seed + offset}",
                f"--save_dir={os.path.abspath(folder)}",
                f"--num_epochs={config.user_model_epochs}",
                *([f"--train_share={share:g}"] if share < 1.0 else []),
                *config.user_model_args,
            ]
            proc = subprocess.run(
                command, capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable)
            )
            if proc.returncode != 0:
                raise RuntimeError(f"{folder}: user-model training failed:\n{proc.stderr[-2000:]}")
        # The user-model run fits its leave model; a folder trained before it did, here.
        ensure_leave_model(folder, log)
        folders.append(folder)
    return folders


def user_model_seeds(config: HarnessConfig) -> tuple[tuple[str, int], ...]:
    """(encoder, seed offset) of every user model: training, test, then the further LSTMs
    of `ensemble` / `reward_ensemble`."""
    extra = max(config.ensemble, config.reward_ensemble)
    return USER_MODELS + tuple(("LSTM", 2 + i) for i in range(extra))


def check_settings(config: HarnessConfig) -> None:
    """Checks, before anything is generated or trained, what the later stages read: the
    policies' settings (`policy_config`) and `user_model_args` (by the user-model trainer's
    own flag check, a subprocess, when there are some).

    Raises:
      ValueError: naming the setting or flag at fault.
    """
    folders = [
        os.path.join(config.run_dir, f"user_model_{e}__{o}") for e, o in user_model_seeds(config)
    ]
    policy_config(config, folders)
    if not config.user_model_args:
        return
    command = [
        sys.executable,
        os.path.join(REPOSITORY, "experiment_user_model", "main_gan_user_model.py"),
        f"--dataset={DATASET}",
        *config.user_model_args,
        "--check_flags",
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        # absl's "FATAL Flags parsing error: ..." or the trainer's "error: ...".
        errors = [line for line in proc.stderr.splitlines() if line.startswith(("FATAL", "error:"))]
        reason = errors[0].removeprefix("error:").strip() if errors else proc.stderr[-500:]
        raise ValueError(f"user_model_args: {reason}")


def policy_config(config: HarnessConfig, user_models: list[str]):
    """The `PolicyConfig` of the policies' training in the simulators of `user_models`
    (training, test, then the ensemble's members)."""
    from ganrl.policy import registry
    from ganrl.policy.runner import PolicyConfig

    return PolicyConfig(
        user_model_dir=user_models[0],
        test_user_model_dir=user_models[1],
        ensemble_dirs=() if config.reward_ensemble else tuple(user_models[2:]),
        reward_dirs=tuple(user_models[2:]) if config.reward_ensemble else (),
        penalty=config.penalty,
        **dict(config.cdqn),
        save_dir=config.policy_dir,
        policies=config.policies or tuple(registry.names()),
        k=config.k,
        horizon=config.horizon,
        num_itrs=config.num_itrs,
        epsilon_steps=max(1, config.num_itrs // 2),
        eval_users=config.sim_eval_users,
        adapt_itrs=0,
        regret_itrs=0,
        seed=config.seed,
    )


def train_policies(config: HarnessConfig, user_models: list[str], log=print) -> dict:
    """Trains and tests every policy in the learned simulators; returns the runner's
    results (`ganrl.policy.runner`)."""
    from ganrl.policy.runner import PolicyRunner

    return PolicyRunner(policy_config(config, user_models), progress=log).run()


def simulator_figures(policy_results: dict) -> dict[str, dict]:
    """policy -> the test simulator's cumulative reward {"mean", "ci95"}, its session length
    ("steps", slates before leaving; nan from a run that predates it) and the doubly robust
    off-policy estimate on the logged validation users ("off_policy_dr")."""
    figures = {}
    for name, result in policy_results["policies"].items():
        dr = result.get("off_policy", {}).get("dr", {}).get("value", float("nan"))
        steps = result.get("session_length", {}).get("mean", float("nan"))
        figures[name] = {**result["cumulative_reward"], "steps": steps, "off_policy_dr": dr}
    return figures


def evaluate_true(
    env: TrueEnvironment,
    recommender: Recommender,
    users: int,
    horizon: int,
    seed: int,
    on_slate: Callable[[int, np.ndarray, np.ndarray | None, np.ndarray], None] | None = None,
) -> dict[str, np.ndarray]:
    """Serves `users` new users of `env` for `horizon` steps (the whole catalogue as
    candidates, one batched call a step). `on_slate(t, history, events, slate)`, if given,
    sees each step's slate and what the recommender saw, before the users meet it.

    Returns:
      {"reward": `[users]` cumulative true reward, "steps": `[users]` slates seen before
      leaving (the horizon for users who stay), "clicks": `[users, horizon]` bool, whether
      she clicked at each step (False once she has left)}.
    """
    env.reset(users, seed)
    candidates = np.arange(env.n_items, dtype=np.int32)
    history = np.full((users, horizon), -1, np.int32)  # most recent click first
    events = None  # [users, horizon, 1 + k]: the slates shown, most recent first
    total = np.zeros(users)
    steps = np.zeros(users, dtype=np.int64)
    clicks = np.zeros((users, horizon), bool)
    for t in range(horizon):
        steps += env.active
        slate = np.asarray(recommender(history, candidates, events), dtype=np.int32)
        if on_slate is not None:
            on_slate(t, history, events, slate)
        outcome = env.step(slate)
        total += outcome.reward
        clicked = outcome.clicked_item >= 0
        clicks[:, t] = clicked
        shifted = np.concatenate([outcome.clicked_item[:, None], history[:, :-1]], axis=1)
        history = np.where(clicked[:, None], shifted, history).astype(np.int32)
        if events is None:
            events = np.full((users, horizon, 1 + slate.shape[1]), -1, np.int32)
        row = np.concatenate([outcome.clicked_item[:, None], slate], axis=1)
        events = np.concatenate([row[:, None].astype(np.int32), events[:, :-1]], axis=1)
    return {"reward": total, "steps": steps, "clicks": clicks}


def myopic_oracle(
    env: TrueEnvironment, k: int, utilities: Callable[[], np.ndarray] | None = None
) -> Recommender:
    """The k candidates of highest true utility for each user now (knows the truth,
    ignores the future); with `utilities` (`[U, items]`), of highest such scores instead."""
    utilities = utilities or env.utilities

    def recommend(history, candidates, events=None):
        u = utilities()[:, candidates]
        return candidates[np.argsort(-u, axis=1, kind="stable")[:, :k]]

    return recommend


def no_clickbait_oracle(env: SatiationEnvironment, k: int) -> Recommender:
    """The k items of highest true utility now that are not clickbait
    (`ganrl.data.satiation`): with clickbait, the simplest policy that gives up clicks now
    for the session; without, `myopic_oracle`."""
    bait = env.world.clickbait[None, :]
    return myopic_oracle(env, k, lambda: np.where(bait, -np.inf, env.utilities()))


def lookahead_oracle(env: SatiationEnvironment, k: int, width: int = 3) -> Recommender:
    """The satiation world's short lookahead: of `width` candidate slates (the top k by
    utility now, and the top k with at most one / two items per topic), the one with the
    highest expected clicks over this step and the next (the next step's slate: the myopic
    one, given the expected tiredness and staying probability)."""
    world = env.world
    # A per-topic limit that cannot fill k items (k above limit x the topics) makes no slate.
    topics = len(np.unique(world.topic))
    limits = [limit for limit in range(1, width) if limit * topics >= k]

    def per_topic_top(u, limit):
        order = np.argsort(-u, axis=1, kind="stable")
        topics = world.topic[order]
        # rank of each item within its topic along the order: keep the first `limit` of each
        one_hot = topics[:, :, None] == np.arange(world.config.topics)[None, None, :]
        rank = np.take_along_axis(np.cumsum(one_hot, axis=1), topics[:, :, None], 2)[..., 0]
        keep = rank <= limit
        position = np.where(keep, np.arange(order.shape[1])[None, :], order.shape[1])
        chosen = np.sort(position, axis=1)[:, :k]
        return np.take_along_axis(order, chosen, axis=1)

    def value(slate):
        u = world.utilities(env.theta, env.satiation, slate)
        p = np.exp(u) / (
            np.exp(u).sum(axis=1, keepdims=True) + math.exp(world.config.no_click_utility)
        )
        now = p.sum(axis=1)
        stay = 1.0 - world.leave_probability(u.max(axis=1))
        # Expected tiredness: shown items count fully, the click by its probability.
        tired = world.expected_satiation(env.satiation, slate, p)
        every = np.broadcast_to(np.arange(env.n_items)[None], (len(slate), env.n_items))
        u_next = world.utilities(env.theta, tired, every)
        best_next = -np.sort(-u_next, axis=1)[:, :k]
        later = np.exp(best_next).sum(axis=1)
        return now + stay * later / (later + math.exp(world.config.no_click_utility))

    def recommend(history, candidates, events=None):
        u = env.utilities()
        slates = [np.argsort(-u, axis=1, kind="stable")[:, :k]]
        slates += [per_topic_top(u, limit) for limit in limits]
        values = np.stack([value(s) for s in slates], axis=1)
        best = np.argmax(values, axis=1)
        return np.stack(slates, axis=1)[np.arange(len(u)), best]

    return recommend


def paired_gap(reward: np.ndarray, baseline: np.ndarray) -> tuple[float, float, float]:
    """Mean of `reward - baseline` over the same users and its 95% interval."""
    diff = reward - baseline
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan under 3 points or a
    constant side."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def off_policy_spearman(rows: list[dict]) -> float:
    """Spearman between the off-policy (DR) estimates on the logged validation users and the
    true rewards, over the policies that have one: how well the logs alone rank them."""
    rows = [r for r in rows if not math.isnan(r["off_policy_dr"])]
    return spearman([r["off_policy_dr"] for r in rows], [r["true_reward"] for r in rows])


def evaluate_policies(
    config: HarnessConfig, env: TrueEnvironment, names: list[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Every policy of `policy/` (through `load_policy` and `recommend`) and the oracles in
    the true world, all on the same users."""
    from ganrl.policy.export import load_policy, recommend

    policy_dir = config.policy_dir
    recommenders: dict[str, Recommender] = {}
    for name in names:
        policy = load_policy(policy_dir, name)
        recommenders[name] = lambda h, c, e, p=policy: recommend(p, h, c, config.k, events=e)
    recommenders["oracle_myopic"] = myopic_oracle(env, config.k)
    if isinstance(env, SatiationEnvironment):
        recommenders["oracle_lookahead"] = lookahead_oracle(env, config.k)
        # Knows each user's taste but not her tiredness: the best a greedy policy with a
        # perfect model of static preferences can do.
        recommenders["oracle_static"] = myopic_oracle(env, config.k, env.static_utilities)
        if env.world.clickbait.any():
            recommenders["oracle_no_clickbait"] = no_clickbait_oracle(env, config.k)
    return {
        name: evaluate_true(env, fn, config.true_users, config.horizon, config.seed + 100)
        for name, fn in recommenders.items()
    }


def table_rows(true: dict[str, dict[str, np.ndarray]], sim: dict[str, dict]) -> list[dict]:
    """One row per policy and oracle (`TABLE_FIELDS`); gaps need GAN-Greedy among them."""
    rows = []
    for name, result in true.items():
        reward = result["reward"]
        row = {
            "policy": name,
            "true_reward": float(reward.mean()),
            "true_se": float(reward.std(ddof=1) / math.sqrt(len(reward))),
            "true_steps": float(result["steps"].mean()),
            "sim_steps": sim[name]["steps"] if name in sim else float("nan"),
            "sim_reward": sim[name]["mean"] if name in sim else float("nan"),
            "sim_ci95": sim[name]["ci95"] if name in sim else float("nan"),
            "off_policy_dr": sim[name]["off_policy_dr"] if name in sim else float("nan"),
        }
        gap = (
            paired_gap(reward, true[BASELINE]["reward"])
            if BASELINE in true
            else (float("nan"),) * 3
        )
        row.update(zip(("gap_to_gan_greedy", "gap_ci95_low", "gap_ci95_high"), gap))
        rows.append(row)
    return rows


def write_outputs(config: HarnessConfig, rows: list[dict], rho: float) -> None:
    """table.csv, table.md, results.json and sim_vs_true.png in the run folder."""
    safe_io.write_csv_rows(os.path.join(config.output_dir, "table.csv"), TABLE_FIELDS, rows)
    unit = "clicks" if config.world in SATIATION_WORLDS else f"true {config.true_reward}"
    lines = [
        f"# Sim-to-real: world `{config.world}`, seed {config.seed}",
        "",
        f"{config.true_users} new users of the true world, k={config.k} of the whole "
        f"catalogue, horizon {config.horizon}; true reward = cumulative {unit} per user "
        "(mean (se)); steps = slates seen before leaving (true world; sim steps: in the "
        "learned test simulator, by its leave model); simulator = the learned test "
        "simulator's cumulative reward (its own units); gap = true reward minus "
        "GAN-Greedy's on the same users, 95% interval; off-policy = the doubly robust "
        "estimate on the logged validation users (item-level clicks per step, "
        "`ganrl.policy.off_policy`).",
        "",
        "| policy | true reward | steps | sim steps | simulator | off-policy (DR) | "
        "gap to GAN-Greedy [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sim = "" if math.isnan(r["sim_reward"]) else f"{r['sim_reward']:.3f}"
        ope = "" if math.isnan(r["off_policy_dr"]) else f"{r['off_policy_dr']:.3f}"
        sim_steps = "" if math.isnan(r["sim_steps"]) else f"{r['sim_steps']:.2f}"
        lines.append(
            f"| {r['policy']} | {r['true_reward']:.3f} ({r['true_se']:.3f}) | "
            f"{r['true_steps']:.2f} | {sim_steps} | {sim} | {ope} | {r['gap_to_gan_greedy']:+.3f} "
            f"[{r['gap_ci95_low']:+.3f}, {r['gap_ci95_high']:+.3f}] |"
        )
    rho_logs = off_policy_spearman(rows)
    lines += [
        "",
        f"Spearman rank correlation, simulator vs true, over the policies: {rho:.3f}; "
        f"off-policy (DR) vs true: {rho_logs:.3f}",
    ]
    if config.ensemble:
        lines += [
            "",
            f"Training simulator: an ensemble of {config.ensemble} LSTM user models "
            f"(all but the last; snapshots selected in the last), penalty "
            f"{config.penalty:g}.",
        ]
    if config.reward_ensemble:
        lines += [
            "",
            f"GAN-Greedy and the learning policies' bounded residual rank by the mean reward "
            f"of the training LSTM and {config.reward_ensemble} more (seeds + 2 on); the "
            "training simulator and the selection are the training LSTM's.",
        ]
    if config.cdqn:
        settings = ", ".join(f"{name}={setting_text(value)}" for name, value in config.cdqn)
        lines += ["", f"Policy settings other than the defaults: {settings}."]
    lines.append("")
    with safe_io.atomic_open(os.path.join(config.output_dir, "table.md"), "w") as f:
        f.write("\n".join(lines))
    safe_io.dump_json(
        os.path.join(config.output_dir, "results.json"),
        {
            "config": dataclasses.asdict(config),
            "rows": rows,
            "spearman": rho,
            "spearman_off_policy": rho_logs,
        },
    )
    plot(config, rows, rho)


def plot(config: HarnessConfig, rows: list[dict], rho: float) -> None:
    """sim_vs_true.png: each policy's simulator figure against its true reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    references = [r for r in rows if math.isnan(r["sim_reward"])]
    for i, r in enumerate(sorted(references, key=lambda r: r["true_reward"])):
        # The oracles have no simulator figure: a line at their true reward, labelled at
        # the right, alternately above and below it (close oracles would overlap).
        ax.axhline(r["true_reward"], color="grey", linestyle=":", linewidth=1)
        ax.text(
            0.99,
            r["true_reward"],
            r["policy"],
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="bottom" if i % 2 == 0 else "top",
            fontsize=7,
            color="grey",
        )
    points: dict[tuple[float, float], list[dict]] = {}
    for r in rows:  # policies with the same figures (same slates) share a point and label
        if not math.isnan(r["sim_reward"]):
            points.setdefault((r["sim_reward"], r["true_reward"]), []).append(r)
    for (sim, true), same in points.items():
        ax.errorbar(sim, true, yerr=1.96 * same[0]["true_se"], fmt="o")
        ax.annotate(
            ", ".join(r["policy"] for r in same),
            (sim, true),
            fontsize=8,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("learned test simulator: cumulative reward per user")
    ax.set_ylabel("true world: cumulative reward per user (95% CI)")
    ax.set_title(f"{config.world}, seed {config.seed}: simulator vs truth (Spearman {rho:.2f})")
    fig.tight_layout()
    with safe_io.atomic_open(os.path.join(config.output_dir, "sim_vs_true.png")) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def run(config: HarnessConfig, log=print) -> dict:
    """The whole pipeline (module docstring); returns results.json's contents."""
    check_settings(config)
    safe_io.make_folder(config.output_dir, "--save_dir")
    truth = prepare_data(config)
    log(f"data: {truth}")
    user_models = train_user_models(config, log)
    policy_results = train_policies(config, user_models, log)
    sim = simulator_figures(policy_results)
    env = load_true_env(truth, config.true_reward)
    true = evaluate_policies(config, env, list(policy_results["policies"]))
    rows = table_rows(true, sim)
    policies = [r for r in rows if not math.isnan(r["sim_reward"])]
    rho = spearman([r["sim_reward"] for r in policies], [r["true_reward"] for r in policies])
    write_outputs(config, rows, rho)
    return {"rows": rows, "spearman": rho}
