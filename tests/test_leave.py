"""The leave model: labels from session ends, its likelihood, its fit in a world with a known
leave rule, the simulator's alive mask and a policy that trains with leaving on."""

import json
import math
import shutil

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.dataset import EventArrays
from ganrl.data.satiation import SatiationConfig, SatiationWorld
from ganrl.data.synthetic import draw_displays
from ganrl.policy.base import transition_flags
from ganrl.simulator.simulator import Simulator, SimulatorConfig
from ganrl.user_model import load_user_model
from ganrl.user_model.leave import (
    FEATURES,
    LEAVE_FILE,
    LeaveModel,
    ensure_leave_model,
    fit_leave_features,
    fit_logistic,
    leave_features,
    load_leave_model,
    log_likelihood,
    session_labels,
    split_features,
    steps_before,
)
from tests.tiny_data import train_tiny_user_model


def test_session_labels_and_censoring_by_hand():
    # Four users of 3, 2, 3 and 1 display sets; the longest is 3, so users 0 and 2 may have
    # been cut by the logger: their last events carry no label. User 1 left after her 2nd
    # display set, user 3 after her only one.
    offsets = np.array([0, 3, 5, 8, 9])
    label, labelled = session_labels(offsets, longest=3)
    np.testing.assert_array_equal(label, [0, 0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(labelled, [1, 1, 0, 1, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(steps_before(offsets), [0, 1, 2, 0, 1, 0, 1, 2, 0])


def test_leave_features_by_hand():
    # Display set of 2 items and one pad slot, no-click logit 0.5: utilities relative to it
    # are 0.5 and 1.5 (the pad stays far below).
    logits = tf.constant([[1.0, 2.0, -1e9, 0.5]])
    f = leave_features(logits, tf.constant([True]), tf.constant([2]), has_no_click=True)
    expected = [1.5, math.log(math.exp(0.5) + math.exp(1.5)), 1.0, math.log(3.0)]
    np.testing.assert_allclose(f.numpy()[0], expected, rtol=1e-6)
    assert f.shape[1] == len(FEATURES)


def test_leave_likelihood_by_hand():
    # coef: weight 1 on the first feature, intercept -1. Event a: f1 = 2, left (z = 1);
    # event b: f1 = 0, stayed (z = -1): both have likelihood sigmoid(1). Event c (weight 0,
    # censored) does not count.
    x = np.array([[2.0, 0, 0, 0], [0.0, 0, 0, 0], [5.0, 0, 0, 0]])
    coef = np.array([1.0, 0, 0, 0, -1.0])
    ll = log_likelihood(x, np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0]), coef)
    assert ll == pytest.approx(math.log(1 / (1 + math.exp(-1))))
    # The model's probability agrees with the same sum (mean 0, scale 1: no standardising).
    model = LeaveModel((0.0,) * 4, (1.0,) * 4, (1.0, 0.0, 0.0, 0.0), -1.0)
    p = model.probability(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(p[:2], [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))], rtol=1e-6)


def test_newton_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 4))
    true = np.array([1.0, -0.5, 0.0, 0.3, -1.0])
    z = x @ true[:-1] + true[-1]
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(float)
    coef = fit_logistic(x, y, np.ones(20000), l2=0.0)
    np.testing.assert_allclose(coef, true, atol=0.06)


class StaticTasteChoice:
    """A behaviour model that knows the true static utilities (taste and bias, no tiredness)
    of users `theta [U, d]` (in a split's row order) in the satiation world: a stand-in for
    a trained user model."""

    has_no_click = True

    def __init__(self, world: SatiationWorld, theta: np.ndarray):
        self.world, self.theta = world, theta

    def logits(self, theta: np.ndarray, display: np.ndarray, mask: np.ndarray) -> np.ndarray:
        u = np.einsum("ud,und->un", theta, self.world.v[display]) + self.world.b[display]
        u = np.where(mask, u, -1e9)
        no_click = np.full((len(u), 1), self.world.config.no_click_utility)
        return np.concatenate([u, no_click], 1).astype(np.float32)

    def event_logits(self, batch: dict) -> tf.Tensor:
        rows = batch["user_row"].numpy()[batch["event_user"].numpy()]
        return tf.constant(
            self.logits(self.theta[rows], batch["display"].numpy(), batch["display_mask"].numpy())
        )


def _satiation_sessions(config: SatiationConfig, seed: int, leave_fn=None):
    """Sessions of the logging policy in the satiation world (as `generate_log`, vectorised
    over users); with `leave_fn(theta [n, d], display, mask, choice, t) -> [n] P(leave)`,
    users leave by it instead of the true rule. Returns the world, the tastes, the
    `EventArrays` of every user and the session lengths."""
    c = config
    rng = np.random.default_rng(seed)
    world = SatiationWorld.draw(c, rng)
    theta = world.draw_tastes(rng, c.users)
    satiation = np.zeros((c.users, c.topics))
    active = np.ones(c.users, bool)
    weights = {True: np.exp(c.popularity_strength * world.b), False: np.ones(c.items)}
    events = {u: [] for u in range(c.users)}
    for t in range(c.events_per_user):
        users = np.flatnonzero(active)
        if not len(users):
            break
        n = len(users)
        sizes = rng.integers(c.min_display, c.max_display + 1, n)
        popular = rng.random(n) < c.logging_popular
        display = np.empty((n, c.max_display), np.int64)
        for kind in (True, False):
            rows = popular == kind
            display[rows] = draw_displays(rng, int(rows.sum()), weights[kind], c.max_display)
        mask = np.arange(c.max_display)[None] < sizes[:, None]
        gumbel = rng.gumbel(size=(n, c.max_display + 1))
        draw = rng.random(n)
        choice, satiation[users], leaves = world.step(
            theta[users], satiation[users], display, mask, gumbel, draw
        )
        if leave_fn is not None:
            leaves = draw < leave_fn(theta[users], display, mask, choice, t)
        for i, u in enumerate(users):
            clicked = choice[i] if choice[i] < c.max_display else -1
            events[u].append((display[i], mask[i], clicked))
        active[users[leaves]] = False
    lengths = np.array([len(events[u]) for u in range(c.users)])
    flat = [e for u in range(c.users) for e in events[u]]
    arrays = EventArrays(
        user_ids=np.arange(c.users),
        event_offsets=np.concatenate([[0], np.cumsum(lengths)]),
        display=np.stack([e[0] for e in flat]).astype(np.int32),
        display_mask=np.stack([e[1] for e in flat]),
        clicked_pos=np.array([e[2] for e in flat], np.int32),
        n_items=c.items,
    )
    return world, theta, arrays, lengths


def test_fitted_leave_model_matches_the_true_session_length_in_the_satiation_world():
    # The logs of a small satiation world (users leave after poor slates; sessions cut at 12
    # display sets, so the few that long are censored); a leave model fitted on half the
    # users through a model of their static tastes, selected on the other half, then run on
    # new users of the same logging policy in place of the true rule.
    config = SatiationConfig(users=1200, items=200, topics=10, events_per_user=12)
    world, theta, events, lengths = _satiation_sessions(config, seed=0)
    splits = {"train": np.arange(600), "vali": np.arange(600, 1200)}
    features, offsets = {}, {}
    for name, rows in splits.items():
        part = events.subset(rows)
        features[name] = split_features(StaticTasteChoice(world, theta[rows]), part)
        offsets[name] = part.event_offsets
    model = fit_leave_features(features, offsets, int(lengths.max()))
    assert model is not None and model.info["train_leaves"] > 0
    # The slate's utilities carry the leave rule: on the validation users the model beats a
    # constant leave rate, and better slates keep users (negative weights on the utilities).
    assert model.info["vali_loglik"] > model.info["vali_loglik_constant"] + 0.02
    assert model.weights[0] + model.weights[1] < 0
    choice = StaticTasteChoice(world, theta)

    def leave_fn(user_theta, display, mask, choice_pos, t):
        f = leave_features(
            tf.constant(choice.logits(user_theta, display, mask)),
            tf.constant(choice_pos < config.max_display),
            tf.fill([len(display)], t),
            has_no_click=True,
        )
        return model.probability(f).numpy()

    # New users (seed 1; the items are the world's first draws, so differ from seed 0's:
    # the model's features are relative utilities, not item ids).
    _, _, _, true_lengths = _satiation_sessions(config, seed=1)
    _, _, _, model_lengths = _satiation_sessions(config, seed=1, leave_fn=leave_fn)
    assert model_lengths.mean() == pytest.approx(true_lengths.mean(), rel=0.10)


@pytest.fixture(scope="module")
def user_model_dir(tmp_path_factory):
    """A tiny trained user model (every user has 4 display sets: all censored)."""
    return train_tiny_user_model(tmp_path_factory.mktemp("leave_um"))


def _with_leave_model(user_model_dir, folder, model: LeaveModel) -> str:
    """A copy of the run folder with `model` as its leave model."""
    shutil.copytree(user_model_dir, folder)
    with open(folder / LEAVE_FILE, "w") as f:
        json.dump(model.to_dict(), f)
    return str(folder)


# Leaves exactly when she clicked (the `clicked` feature, unstandardised, weight 40).
LEAVE_ON_CLICK = LeaveModel((0.0,) * 4, (1.0,) * 4, (0.0, 0.0, 40.0, 0.0), -20.0)


def test_fixed_length_logs_give_no_leave_model(user_model_dir, tmp_path):
    # Every tiny user has 4 display sets, the longest: all censored, no leave label at all.
    run = shutil.copytree(user_model_dir, tmp_path / "run")
    assert ensure_leave_model(str(run), progress=lambda _: None) is None
    assert json.loads((run / LEAVE_FILE).read_text())["no_leaves"]
    assert load_leave_model(str(run)) is None
    # And a folder without the file has none either (older runs: no leaving).
    assert load_leave_model(user_model_dir) is None


def test_simulator_alive_mask_ends_sessions(user_model_dir, tmp_path):
    run = _with_leave_model(user_model_dir, tmp_path / "run", LEAVE_ON_CLICK)
    sim = Simulator(load_user_model(run), SimulatorConfig(k=2, horizon=4, seed=0))
    obs = sim.reset(64)
    assert obs.alive.numpy().all()
    first = sim.step(obs, tf.zeros([64, 2], tf.int32) + [0, 1])
    clicked = first.clicked.numpy()
    assert 0 < clicked.sum() < 64  # some clicked (and leave), some not
    # The click of the leaving slate counts; she is gone afterwards.
    np.testing.assert_array_equal(first.observation.alive.numpy(), ~clicked)
    np.testing.assert_array_equal(first.reward.numpy(), clicked.astype(np.float32))
    valid, terminal = transition_flags(obs, first.observation, first.done)
    assert valid.all() and not first.done
    np.testing.assert_array_equal(terminal, clicked.astype(np.float32))
    history = first.observation.history.numpy()
    second = sim.step(first.observation, tf.zeros([64, 2], tf.int32) + [0, 1])
    gone = ~first.observation.alive.numpy()
    # After leaving: no reward, no click, no history change; her step is not valid.
    assert (second.reward.numpy()[gone] == 0).all() and not second.clicked.numpy()[gone].any()
    assert (second.clicked_index.numpy()[gone] == -1).all()
    np.testing.assert_array_equal(second.observation.history.numpy()[gone], history[gone])
    valid, _ = transition_flags(first.observation, second.observation, second.done)
    np.testing.assert_array_equal(valid, ~gone)
    stayed = ~gone & ~second.clicked.numpy()
    np.testing.assert_array_equal(sim.session_lengths, np.where(gone, 1, 2))
    np.testing.assert_array_equal(second.observation.alive.numpy(), stayed)


# Leaves after a display set with more than 1.5 before it in her session: 100 (log(1 + steps)
# - log(2.5)) on the steps feature alone (unstandardised).
LEAVE_AFTER_TWO = LeaveModel((0.0,) * 4, (1.0,) * 4, (0.0, 0.0, 0.0, 100.0), -100 * math.log(2.5))


@pytest.mark.parametrize("simulator", ["single", "ensemble"])
def test_start_histories_count_as_display_sets_before_in_the_session(
    user_model_dir, tmp_path, simulator
):
    # The leave model was fitted with a display set's index in the user's whole log
    # (`steps_before`), so a user started from a history of n clicks (n events replayed)
    # meets her first slate with n display sets before it, not 0.
    from ganrl.simulator.ensemble import EnsembleSimulator

    model = load_user_model(_with_leave_model(user_model_dir, tmp_path / "run", LEAVE_AFTER_TWO))
    config = SimulatorConfig(k=2, horizon=3, seed=0)
    sim = (
        Simulator(model, config)
        if simulator == "single"
        else EnsembleSimulator([model] * 2, config)
    )
    obs = sim.reset(4, start_histories=[[], [5], [5, 6], [5, 6, 7]])
    members = [sim] if simulator == "single" else sim.members
    # Steps before the first slate 0, 1, 2, 3: P(leave) = sigmoid(100 (log(1 + s) - log 2.5)),
    # about 0 for s = 0 and 1 (-92, -22), about 1 for s = 2 and 3 (+18, +47).
    expected = [1 / (1 + math.exp(-100 * (math.log1p(s) - math.log(2.5)))) for s in range(4)]
    slate = tf.zeros([4, 2], tf.int32) + [0, 1]
    items = members[0].slate_items(obs, slate)
    for member in members:
        p = member.leave_probabilities(items, tf.zeros([4], tf.bool), 0).numpy()
        np.testing.assert_allclose(p, expected, rtol=1e-4, atol=1e-12)
    done = False
    while not done:
        result = sim.step(obs, slate)
        obs, done = result.observation, result.done
    # Each leaves after the slate with 2 display sets before it: the 3rd, 2nd, 1st and 1st
    # slate (counted from 0, every user would have stayed for all 3).
    np.testing.assert_array_equal(sim.session_lengths, [3, 2, 1, 1])


def test_episode_ends_when_everyone_left_and_leave_can_be_turned_off(user_model_dir, tmp_path):
    from ganrl.policy.base import PolicyFeatures
    from ganrl.policy.heuristics import RandomPolicy
    from ganrl.policy.runner import run_episodes

    always = LeaveModel((0.0,) * 4, (1.0,) * 4, (0.0,) * 4, 30.0)
    run = _with_leave_model(user_model_dir, tmp_path / "run", always)
    model = load_user_model(run)
    policy = RandomPolicy(PolicyFeatures.from_user_model(model.reward), 2, 0)
    sim = Simulator(model, SimulatorConfig(k=2, horizon=5))
    rewards, clicks, _ = run_episodes(sim, policy, 16)
    # Everyone leaves after the first slate: the episode stops, the rest is zero-padded.
    assert rewards.shape == (16, 5) and (rewards[:, 1:] == 0).all() and not clicks[:, 1:].any()
    np.testing.assert_array_equal(sim.session_lengths, np.ones(16))
    off = Simulator(model, SimulatorConfig(k=2, horizon=5, leave=False))
    run_episodes(off, policy, 16)
    assert off.leave_model is None
    np.testing.assert_array_equal(off.session_lengths, np.full(16, 5))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cdqn", "ddpg", "ppo", "a2c", "linucb"])
def test_policy_trains_with_leaving(user_model_dir, tmp_path, name):
    from ganrl.policy.runner import PolicyConfig, PolicyRunner, run_episodes

    run = _with_leave_model(user_model_dir, tmp_path / "run", LEAVE_ON_CLICK)
    config = PolicyConfig(
        user_model_dir=run,
        test_user_model_dir=run,
        save_dir=str(tmp_path / "policy"),
        policies=(name,),
        k=2,
        horizon=4,
        num_itrs=12,
        batch_size=8,
        train_batch_size=4,
        eval_users=32,
        adapt_itrs=0,
        regret_itrs=0,
        epsilon_steps=4,
        hidden=8,
        checkpoint_secs=0,
        off_policy_users=0,
    )
    runner = PolicyRunner(config, progress=lambda _: None)
    policy = runner._policy(name)
    losses = []
    for _ in range(3):
        losses += run_episodes(runner.train_sim, policy, 8, learn=True, explore=True)[2]
    result = runner.evaluate(policy)
    # Users leave after their first click: sessions end before the horizon on average.
    assert 1.0 <= result["session_length"]["mean"] < 4.0
    assert 0.0 < result["ctr"]["mean"] <= 1.0
    assert all(math.isfinite(x) for x in losses)
    if policy.replay is not None and policy.replay.size:
        # A click ends the session here: every stored click is terminal (the target does
        # not bootstrap past it), and departed users' later steps are not stored.
        done = policy.replay.data["done"][: policy.replay.size]
        reward = policy.replay.data["reward"][: policy.replay.size]
        assert (done[reward > 0] == 1).all()


def test_expected_reward_is_the_slates_click_probability_and_zero_after_leaving(
    user_model_dir, tmp_path
):
    from ganrl.policy.base import PolicyFeatures
    from ganrl.policy.heuristics import RandomPolicy
    from ganrl.policy.runner import run_episodes

    run = _with_leave_model(user_model_dir, tmp_path / "run", LEAVE_ON_CLICK)
    sim = Simulator(load_user_model(run), SimulatorConfig(k=2, horizon=4, seed=3))
    obs = sim.reset(4000)
    slate = tf.zeros([4000, 2], tf.int32) + [0, 1]
    before = sim.expected_slate_reward(obs, slate).numpy()
    first = sim.step(obs, slate)
    np.testing.assert_allclose(first.expected_reward, before, rtol=1e-5, atol=1e-6)
    # The draws' mean is the expectation's (4,000 users: se under 0.008).
    assert abs(first.reward.numpy().mean() - before.mean()) < 0.03
    # Those who clicked left: the next slate's expectation is 0 for them, as the reward.
    second = sim.step(first.observation, slate)
    gone = ~first.observation.alive.numpy()
    assert gone.any() and (second.expected_reward.numpy()[gone] == 0).all()
    assert (second.expected_reward.numpy()[~gone] > 0).all()

    # run_episodes(expected=True) returns, and a learning policy observes, the expectation.
    class Recorder(RandomPolicy):
        seen = []

        def observe(self, observation, slate, reward, *rest):
            self.seen.append(np.asarray(reward))

    policy = Recorder(PolicyFeatures.from_user_model(load_user_model(run).reward), 2, 0)
    rewards, clicks, _ = run_episodes(sim, policy, 32, learn=True, expected=True)
    assert len(policy.seen) >= 1
    np.testing.assert_array_equal(np.stack(policy.seen, 1), rewards[:, : len(policy.seen)])
    # Probabilities, not clicks: fractional where a user was still there.
    assert ((rewards[:, 0] > 0) & (rewards[:, 0] < 1)).all()


def test_a_user_who_left_keeps_her_state_and_events(user_model_dir, tmp_path):
    # "Her state stops": the slates shown to the batch after she left are not hers, so they
    # enter neither her model state nor the display sets her observation reports.
    run = _with_leave_model(user_model_dir, tmp_path / "run", LEAVE_ON_CLICK)
    sim = Simulator(load_user_model(run), SimulatorConfig(k=2, horizon=4, seed=0))
    obs = sim.reset(64)
    first = sim.step(obs, tf.zeros([64, 2], tf.int32) + [0, 1])
    gone = ~first.observation.alive.numpy()
    assert gone.any()
    states = [s.numpy() for s in tf.nest.flatten(sim._state)]
    second = sim.step(first.observation, tf.zeros([64, 2], tf.int32) + [1, 0])
    np.testing.assert_array_equal(
        second.observation.events.numpy()[gone], first.observation.events.numpy()[gone]
    )
    for before, after in zip(states, tf.nest.flatten(sim._state)):
        np.testing.assert_array_equal(after.numpy()[gone], before[gone])
