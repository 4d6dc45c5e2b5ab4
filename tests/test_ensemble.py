"""The ensemble simulator: members follow the same users; mean, disagreement and pessimism."""

import dataclasses
import json
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.dataset import SplitData
from ganrl.policy.base import PolicyFeatures
from ganrl.policy.heuristics import GanGreedy, MeanReward, learned_rewards
from ganrl.simulator.ensemble import EnsembleSimulator
from ganrl.simulator.simulator import Observation, Simulator, SimulatorConfig
from ganrl.train import user_model as trainer
from ganrl.user_model import load_user_model
from ganrl.user_model.model import ModelConfig
from tests.tiny_data import tiny_dataset, write_tiny_dataset


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three tiny user models of one log, trained from different seeds."""
    folder = tmp_path_factory.mktemp("ensemble")
    write_tiny_dataset(folder / "data", n_users=24, no_click_every=4)
    data = SplitData.from_dataset(tiny_dataset(n_users=24, no_click_every=4))
    models = []
    for seed in (0, 1, 2):
        model = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
        config = trainer.TrainConfig(
            dataset="tiny",
            data_folder=str(folder / "data"),
            save_dir=str(folder / f"run{seed}"),
            num_itrs=6,
            eval_every=3,
            batch_size=8,
            learning_rate=0.05,
            seed=seed,
            model=model,
        )
        trainer.UserModelRunner(config, data, progress=lambda _: None).run()
        models.append(load_user_model(str(folder / f"run{seed}")))
    return models


def slate_of(users, items):
    return tf.tile(tf.constant([items], tf.int32), [users, 1])


def test_one_member_is_the_member_itself(members):
    config = SimulatorConfig(k=3, horizon=2, reward="learned")
    single, ensemble = Simulator(members[0], config), EnsembleSimulator(members[:1], config)
    obs, ens_obs = single.reset(5), ensemble.reset(5)
    slate = slate_of(5, [0, 2, 4])
    np.testing.assert_allclose(
        ensemble.click_probabilities(ens_obs, slate),
        single.click_probabilities(obs, slate),
        rtol=1e-6,
    )
    stats = ensemble.slate_statistics(ens_obs, slate)
    np.testing.assert_allclose(
        stats.reward_mean, single.expected_slate_reward(obs, slate), rtol=1e-5
    )
    np.testing.assert_allclose(stats.reward_std, 0.0, atol=1e-7)


def test_disagreement_is_the_spread_of_the_members_expected_rewards(members):
    config = SimulatorConfig(k=3, horizon=2, reward="learned")
    ensemble = EnsembleSimulator(members[:2], config)
    singles = [Simulator(m, config) for m in members[:2]]
    obs = ensemble.reset(4)
    slate = slate_of(4, [1, 3, 5])
    expected = np.stack([s.expected_slate_reward(s.reset(4), slate).numpy() for s in singles])
    stats = ensemble.slate_statistics(obs, slate)
    np.testing.assert_allclose(stats.reward_mean, expected.mean(0), rtol=1e-5, atol=1e-6)
    # Two members: the (population) standard deviation is half their difference.
    np.testing.assert_allclose(
        stats.reward_std, np.abs(expected[0] - expected[1]) / 2, rtol=1e-4, atol=1e-6
    )
    assert np.all(stats.reward_std.numpy() > 0)


@pytest.mark.parametrize("acting", ["member", "mean"])
def test_pessimistic_reward_is_the_raw_reward_less_lambda_times_disagreement(members, acting):
    config = SimulatorConfig(k=3, horizon=3, reward="learned", seed=4)
    ensemble = EnsembleSimulator(members, config, penalty=2.5, acting=acting)
    obs = ensemble.reset(16)
    for _ in range(3):
        result = ensemble.step(obs, slate_of(16, [0, 1, 2]))
        np.testing.assert_allclose(
            result.reward,
            ensemble.last_raw_reward - 2.5 * ensemble.last_statistics.reward_std,
            rtol=1e-6,
        )
        obs = result.observation
    assert result.done


def test_members_follow_the_same_users(members):
    config = SimulatorConfig(k=2, n_candidates=5, horizon=4, seed=1)
    ensemble = EnsembleSimulator(members, config)
    obs = ensemble.reset(32, start_histories=[[1, 2]] * 32)
    for _ in range(4):
        obs = ensemble.step(obs, slate_of(32, [0, 3])).observation
    histories = [sim.observation(obs.candidates).history.numpy() for sim in ensemble.members]
    for other in histories[1:]:
        np.testing.assert_array_equal(histories[0], other)
    np.testing.assert_array_equal(obs.history, histories[0])
    assert (histories[0][:, :2] >= 0).any()  # some users clicked during the episode


def test_clicks_follow_the_acting_member_drawn_per_user(members):
    config = SimulatorConfig(k=3, horizon=1, seed=5)
    ensemble = EnsembleSimulator(members[:2], config)
    users = 6000
    obs = ensemble.reset(users)
    acting = ensemble._acting_member.numpy()
    assert 0.4 < acting.mean() < 0.6  # both members act
    slate = slate_of(users, [0, 5, 7])
    singles = [Simulator(m, config) for m in members[:2]]
    probs = np.stack([s.click_probabilities(s.reset(users), slate).numpy()[0] for s in singles[:2]])
    index = ensemble.step(obs, slate).clicked_index.numpy()
    for member in (0, 1):
        chosen = np.where(index[acting == member] < 0, 3, index[acting == member])
        freq = np.bincount(chosen, minlength=4) / len(chosen)
        tolerance = 4 * np.sqrt(probs[member] * (1 - probs[member]) / len(chosen)) + 1e-3
        assert np.all(np.abs(freq - probs[member]) <= tolerance), (member, freq, probs)


def test_bad_ensembles_are_refused(members):
    config = SimulatorConfig(k=2)
    with pytest.raises(ValueError, match="at least one"):
        EnsembleSimulator([], config)
    with pytest.raises(ValueError, match="acting='vote'"):
        EnsembleSimulator(members, config, acting="vote")
    with pytest.raises(ValueError, match="penalty=-1"):
        EnsembleSimulator(members, config, penalty=-1.0)


# -- Leaving ---------------------------------------------------------------------------------
from ganrl.policy.base import transition_flags  # noqa: E402
from ganrl.user_model.leave import LEAVE_FILE, LeaveModel  # noqa: E402

# Leaves exactly when she clicked (the `clicked` feature, unstandardised); always; never.
LEAVE_ON_CLICK = LeaveModel((0.0,) * 4, (1.0,) * 4, (0.0, 0.0, 40.0, 0.0), -20.0)
ALWAYS_LEAVE = LeaveModel((0.0,) * 4, (1.0,) * 4, (0.0,) * 4, 30.0)


def with_leave_model(model, folder, leave: LeaveModel):
    """The user model `model` loaded from a copy of its run folder with `leave`."""
    shutil.copytree(model.run_dir, folder)
    (folder / LEAVE_FILE).write_text(json.dumps(leave.to_dict()))
    return load_user_model(str(folder))


def test_users_leave_by_their_acting_members_leave_model(members, tmp_path):
    config = SimulatorConfig(k=3, horizon=4, seed=2)
    leaving = [
        with_leave_model(m, tmp_path / f"m{i}", LEAVE_ON_CLICK) for i, m in enumerate(members)
    ]
    ensemble = EnsembleSimulator(leaving, config, penalty=1.0)
    assert ensemble.leaves
    obs = ensemble.reset(64)
    assert obs.alive.numpy().all()
    first = ensemble.step(obs, slate_of(64, [0, 1, 2]))
    clicked = first.clicked.numpy()
    assert 0 < clicked.sum() < 64
    # Every member leaves on a click: who clicked is gone; her leaving slate still paid.
    np.testing.assert_array_equal(first.observation.alive.numpy(), ~clicked)
    np.testing.assert_allclose(
        first.reward, ensemble.last_raw_reward - ensemble.last_statistics.reward_std, rtol=1e-6
    )
    second = ensemble.step(first.observation, slate_of(64, [0, 1, 2]))
    gone = clicked
    assert (second.reward.numpy()[gone] == 0).all() and not second.clicked.numpy()[gone].any()
    valid, _ = transition_flags(first.observation, second.observation, second.done)
    np.testing.assert_array_equal(valid, ~gone)
    np.testing.assert_array_equal(ensemble.session_lengths, np.where(gone, 1, 2))
    # Her events stop with her: the slates after she left were not shown to her.
    np.testing.assert_array_equal(
        second.observation.events.numpy()[gone], first.observation.events.numpy()[gone]
    )


def test_each_member_leaves_by_its_own_model_and_leaving_can_be_turned_off(members, tmp_path):
    always = with_leave_model(members[0], tmp_path / "always", ALWAYS_LEAVE)
    mixed = [always, members[1]]  # the second has no leave model: its users never leave
    ensemble = EnsembleSimulator(mixed, SimulatorConfig(k=2, horizon=3, seed=3))
    obs = ensemble.reset(200)
    acting = ensemble._acting_member.numpy()
    assert 0 < acting.sum() < 200
    result = ensemble.step(obs, slate_of(200, [0, 1]))
    np.testing.assert_array_equal(result.observation.alive.numpy(), acting == 1)
    off = EnsembleSimulator(mixed, SimulatorConfig(k=2, horizon=3, seed=3, leave=False))
    assert not off.leaves
    obs = off.reset(200)
    while True:
        result = off.step(obs, slate_of(200, [0, 1]))
        obs = result.observation
        if result.done:
            break
    np.testing.assert_array_equal(off.session_lengths, np.full(200, 3))
    # Everyone's acting member always leaves: the episode ends after the first slate.
    gone = EnsembleSimulator([always], SimulatorConfig(k=2, horizon=3))
    assert gone.step(gone.reset(8), slate_of(8, [0, 1])).done


# -- Off-policy estimates on logs -----------------------------------------------------------
from ganrl.data.dataset import EventArrays  # noqa: E402
from ganrl.policy import off_policy  # noqa: E402


class FixedScorePolicy:
    """Shows the k items of highest fixed score (ties by id)."""

    def __init__(self, scores, k):
        self.scores, self.k = tf.constant(scores, tf.float32), k

    def select(self, observation, explore=False):
        scores = tf.broadcast_to(self.scores, tf.shape(observation.candidates))
        return tf.math.top_k(scores, self.k).indices


def logs_of(model, users, steps, display, seed):
    """Logs drawn from `model` itself: uniform display sets of `display` items, the model's
    clicks (so its direct method is the truth and every estimator aims at one value)."""
    sim = Simulator(
        model, SimulatorConfig(k=display, n_candidates=display, horizon=steps, seed=seed)
    )
    obs = sim.reset(users)
    shown, clicks = [], []
    for _ in range(steps):
        shown.append(obs.candidates.numpy())
        result = sim.step(obs, tf.tile(tf.range(display)[None], [users, 1]))
        clicks.append(result.clicked_index.numpy())
        obs = result.observation
    shown = np.stack(shown, 1).reshape(users * steps, display)
    return EventArrays(
        user_ids=np.arange(users),
        event_offsets=np.arange(users + 1) * steps,
        display=shown.astype(np.int32),
        display_mask=np.ones_like(shown, bool),
        clicked_pos=np.stack(clicks, 1).reshape(-1).astype(np.int32),
        n_items=model.n_items,
    )


def test_display_propensities_by_hand():
    events = EventArrays(
        user_ids=np.arange(1),
        event_offsets=np.array([0, 2]),
        display=np.array([[0, 2, 0], [2, 1, 0]], np.int32),
        display_mask=np.array([[1, 1, 0], [1, 1, 0]], bool),
        clicked_pos=np.array([0, -1], np.int32),
        n_items=4,
    )
    np.testing.assert_allclose(off_policy.display_propensities(events), [0.5, 0.5, 1.0, 0.0])


def test_estimators_by_hand_on_one_event(members):
    model = members[0]
    events = EventArrays(
        user_ids=np.arange(1),
        event_offsets=np.array([0, 1]),
        display=np.array([[3, 5, 0]], np.int32),
        display_mask=np.array([[1, 1, 0]], bool),
        clicked_pos=np.array([1], np.int32),
        n_items=model.n_items,
    )
    propensity = np.full(model.n_items, 0.25)
    policy = FixedScorePolicy(
        -np.arange(model.n_items, dtype=np.float32) + 10 * (np.arange(model.n_items) == 5), k=2
    )  # shows items 5 and 0
    sim = Simulator(model, SimulatorConfig(k=2))
    sim.reset(1)
    u = sim.utilities(tf.constant([[3, 5, 0, 7]])).numpy()[0].astype(np.float64)
    e3, e5, e0, e7 = np.exp(u)
    no_click = np.exp(float(model.behavior.no_click_logit.numpy()))

    def reference(*sets):
        return EventArrays(
            user_ids=np.arange(1),
            event_offsets=np.array([0, len(sets)]),
            display=np.array([list(d) + [0] * (3 - len(d)) for d in sets], np.int32),
            display_mask=np.array([[True] * len(d) + [False] * (3 - len(d)) for d in sets]),
            clicked_pos=np.zeros(len(sets), np.int32),
            n_items=model.n_items,
        )

    # The direct method's set D' = {7, 5}: item 5 in its own place beside 7, item 0 in the
    # place of a random one of the two (drawn with the seed: both seeds below are checked).
    for seed in range(4):
        terms = off_policy.event_terms(
            policy, model, events, propensity, k=2, reference=reference([7, 5]), seed=seed
        )
        q5 = e5 / (no_click + e7 + e5)
        q0 = [e0 / (no_click + other + e0) for other in (e5, e7)]
        np.testing.assert_allclose(terms.ips, [1 / 0.25])
        np.testing.assert_allclose(terms.weight, [1 / 0.25])
        assert any(np.allclose(terms.dm, [q5 + q], rtol=1e-5) for q in q0), terms.dm
        # The correction: the displayed and clicked item 5 with the same prediction.
        np.testing.assert_allclose(terms.correction, [(1 - q5) / 0.25], rtol=1e-5)
    # A one-item D' = {7}: each item in its place, alone with no click.
    terms = off_policy.event_terms(policy, model, events, propensity, k=2, reference=reference([7]))
    q5, q0 = e5 / (no_click + e5), e0 / (no_click + e0)
    np.testing.assert_allclose(terms.dm, [q5 + q0], rtol=1e-5)
    assert terms.estimates(k=2)["snips"]["value"] == pytest.approx(2.0)


def test_a_one_item_display_set_by_hand_and_without_warnings(members):
    model = members[0]
    events = EventArrays(
        user_ids=np.arange(1),
        event_offsets=np.array([0, 1]),
        display=np.array([[3, 0, 0]], np.int32),
        display_mask=np.array([[1, 0, 0]], bool),
        clicked_pos=np.array([0], np.int32),
        n_items=model.n_items,
    )
    policy = FixedScorePolicy(
        -np.arange(model.n_items, dtype=np.float32) + 10 * (np.arange(model.n_items) == 3), k=2
    )  # shows items 3 and 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        terms = off_policy.event_terms(policy, model, events, np.full(model.n_items, 0.5), k=2)
    sim = Simulator(model, SimulatorConfig(k=2))
    sim.reset(1)
    u = sim.utilities(tf.constant([[3, 0]])).numpy()[0].astype(np.float64)
    no_click = np.exp(float(model.behavior.no_click_logit.numpy()))
    # The direct method's set is drawn from the events themselves here: {3}.
    q3 = np.exp(u[0]) / (np.exp(u[0]) + no_click)  # in its own place
    q0 = np.exp(u[1]) / (np.exp(u[1]) + no_click)  # in place of the only item
    np.testing.assert_allclose(terms.dm, [q3 + q0], rtol=1e-5)


def test_max_events_replays_each_users_first_events_only(members):
    model = members[1]
    events = logs_of(model, users=7, steps=5, display=4, seed=3)
    propensity = np.full(model.n_items, 4 / model.n_items)
    policy = FixedScorePolicy(np.random.default_rng(1).random(model.n_items), k=2)
    messages = []
    full = off_policy.event_terms(policy, model, events, propensity, k=2)
    capped = off_policy.event_terms(
        policy, model, events, propensity, k=2, max_events=2, progress=messages.append
    )
    first_two = (np.arange(events.n_events) % 5) < 2  # 5 events per user, in order
    for name in ("ips", "weight", "dm", "correction"):
        np.testing.assert_allclose(getattr(capped, name), getattr(full, name)[first_two])
    assert len(messages) == 2 and "step 1/2" in messages[1]()
    with pytest.raises(ValueError, match="max_events=0"):
        off_policy.event_terms(policy, model, events, propensity, k=2, max_events=0)


def test_the_replay_scores_only_the_items_it_needs_with_the_catalogues_figures(
    members, monkeypatch
):
    # A model that reads no display set scores each item alone, so the displayed and the
    # slate's items scored by themselves give what scoring the whole catalogue gives (the
    # path a set-reading model takes, forced here by its config flag).
    model = members[1]
    events = logs_of(model, users=6, steps=4, display=4, seed=5)
    propensity = np.full(model.n_items, 4 / model.n_items)
    policy = FixedScorePolicy(np.random.default_rng(2).random(model.n_items), k=3)
    scored = []
    original = Simulator.utilities
    monkeypatch.setattr(
        Simulator,
        "utilities",
        lambda sim, items: scored.append(items.shape) or original(sim, items),
    )
    alone = off_policy.event_terms(policy, model, events, propensity, k=3)
    assert {shape[1] for shape in scored} == {4 + 3}
    monkeypatch.setattr(
        model.behavior, "config", dataclasses.replace(model.behavior.config, set_summary=True)
    )
    catalogue = off_policy.event_terms(policy, model, events, propensity, k=3)
    assert scored[-1][1] == model.n_items
    for name in ("ips", "weight", "dm", "correction"):
        np.testing.assert_allclose(getattr(alone, name), getattr(catalogue, name), rtol=1e-5)


def test_estimators_agree_when_the_logs_come_from_the_model(members):
    model = members[1]
    events = logs_of(model, users=3000, steps=3, display=4, seed=8)
    propensity = np.full(model.n_items, 4 / model.n_items)  # uniform display sets of 4
    rng = np.random.default_rng(0)
    for _ in range(2):
        policy = FixedScorePolicy(rng.random(model.n_items), k=3)
        estimates = off_policy.event_terms(policy, model, events, propensity, k=3).estimates(3)
        dm = estimates["dm"]["value"]
        for name in ("ips", "snips", "dr"):
            value, se = estimates[name]["value"], estimates[name]["se"]
            assert abs(value - dm) < 4 * se + 0.01, (name, value, se, dm)


def same_weights(a, b) -> bool:
    """Whether two user models hold the same weights."""
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_mean_reward_is_the_mean_of_its_members_learned_rewards(members):
    rewards = [m.reward for m in members]
    history = tf.constant([[1, 3, -1], [-1, -1, -1], [2, 2, 5]], tf.int32)
    candidates = tf.constant([[0, 1, 2, 3, 4, 5]] * 3, tf.int32)
    events = tf.constant([[[3, 3, 4, 1]], [[-1, 0, 2, 5]], [[5, 5, 1, 0]]], tf.int32)
    each = [learned_rewards(r, history, candidates, events=events) for r in rewards]
    mean = MeanReward(rewards)
    np.testing.assert_allclose(
        learned_rewards(mean, history, candidates, events=events),
        np.mean(each, axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        learned_rewards(mean, history, candidates, chunk=4, events=events),
        np.mean(each, axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    features = PolicyFeatures.from_user_model(rewards[0])
    observation = Observation(history, candidates, 0, events=events)
    slate = GanGreedy(features, 2, reward_model=mean).select(observation).numpy()
    expected = np.argsort(-np.mean(each, axis=0), axis=1)[:, :2]
    np.testing.assert_array_equal(np.sort(slate, axis=1), np.sort(expected, axis=1))
    with pytest.raises(ValueError, match="expected two or more"):
        MeanReward(rewards[:1])


def test_the_residual_encodes_each_user_model_once(members, monkeypatch):
    """The mean reward and the disagreement read the same members: each member's state is
    encoded once, and the figures are those of encoding them apart."""
    from ganrl.policy import heuristics
    from ganrl.policy.residual import Residual, ensemble_shrink

    rewards = [m.reward for m in members]
    history = tf.constant([[1, 3, -1], [2, 2, 5]], tf.int32)
    candidates = tf.constant([[0, 1, 2, 3, 4, 5]] * 2, tf.int32)
    events = tf.constant([[[3, 3, 4, 1]], [[5, 5, 1, 0]]], tf.int32)
    residual = Residual(MeanReward(rewards), 1.0, 1.0, rewards)
    calls = []
    encode = heuristics.encoded_state

    def counted(model, *args, **kwargs):
        calls.append(model)
        return encode(model, *args, **kwargs)

    monkeypatch.setattr(heuristics, "encoded_state", counted)
    reward, shrink = residual.learned(history, candidates, events)
    assert sorted(map(id, calls)) == sorted(map(id, rewards))
    monkeypatch.undo()
    np.testing.assert_allclose(
        reward, learned_rewards(MeanReward(rewards), history, candidates, events=events), rtol=1e-6
    )
    np.testing.assert_allclose(
        shrink, ensemble_shrink(rewards, history, candidates, 1.0, events=events), rtol=1e-6
    )


# A protocol small enough for a test: two-item slates over two steps, a few episodes.
TINY_PROTOCOL = {
    "k": 2,
    "horizon": 2,
    "num_itrs": 4,
    "batch_size": 4,
    "train_batch_size": 4,
    "eval_users": 8,
    "adapt_itrs": 0,
    "regret_itrs": 0,
    "select_every": 1,
    "select_users": 4,
    "epsilon_steps": 4,
    "off_policy_users": 5,
}


def test_protocol_trains_in_the_ensemble_selects_in_the_held_out_member(members, tmp_path):
    from ganrl.policy.export import load_policy
    from ganrl.policy.runner import PolicyConfig, PolicyRunner

    dirs = [m.run_dir for m in members]
    config = PolicyConfig(
        user_model_dir=dirs[0],
        test_user_model_dir=dirs[0],
        ensemble_dirs=(dirs[1], dirs[2]),
        penalty=1.0,
        save_dir=str(tmp_path / "policy"),
        policies=("cdqn", "gan_greedy", "random"),
        **TINY_PROTOCOL,
    )
    runner = PolicyRunner(config, progress=lambda _: None)
    assert isinstance(runner.train_sim, EnsembleSimulator) and runner.train_sim.size == 2
    assert runner.train_sim.penalty == 1.0
    assert runner.select_sim.model.run_dir == dirs[2]
    # GAN-Greedy and the CDQN's residual rank by the training members' mean reward.
    learned = runner.inputs.learned_reward
    assert isinstance(learned, MeanReward)
    assert len(learned.models) == 2
    assert all(map(same_weights, learned.models, [members[0].reward, members[1].reward]))
    results = runner.run()
    assert dirs[2] in results["snapshot_selection"]
    for name in config.policies:
        estimates = results["policies"][name]["off_policy"]
        assert set(estimates) == {"ips", "snips", "dm", "dr"}
        assert all(np.isfinite(e["value"]) for e in estimates.values())
    # Served as trained: with the same members, from the run folder alone.
    served = load_policy(config.save_dir, "gan_greedy")
    assert isinstance(served.model, MeanReward)
    assert len(served.model.models) == 2
    assert all(map(same_weights, served.model.models, [members[0].reward, members[1].reward]))
    assert not PolicyConfig.from_dict(
        {**dataclasses.asdict(config), "mean_reward": False}
    ).averages_reward("gan_greedy")
    legacy = {k: v for k, v in dataclasses.asdict(config).items() if k != "mean_reward"}
    assert PolicyConfig.from_dict(legacy).mean_reward is False  # an older run folder
    with pytest.raises(ValueError, match="penalty=1.0: expected at least two ensemble_dirs"):
        PolicyConfig(
            user_model_dir=dirs[0],
            test_user_model_dir=dirs[0],
            save_dir="x",
            ensemble_dirs=(dirs[1],),
            penalty=1.0,
        )


def test_reward_dirs_average_the_reward_and_leave_training_and_selection_alone(members, tmp_path):
    from ganrl.policy.export import load_policy
    from ganrl.policy.runner import PolicyConfig, PolicyRunner
    from ganrl.simulator.simulator import Simulator

    dirs = [m.run_dir for m in members]
    config = PolicyConfig(
        user_model_dir=dirs[0],
        test_user_model_dir=dirs[2],
        reward_dirs=(dirs[1], dirs[2]),
        save_dir=str(tmp_path / "policy"),
        policies=("cdqn", "gan_greedy"),
        **TINY_PROTOCOL,
    )
    assert config.reward_member_dirs == tuple(dirs)
    assert config.averages_reward("gan_greedy") and config.uses_ensemble("cdqn")
    runner = PolicyRunner(config, progress=lambda _: None)
    # One training model: it is the training simulator and the selection's.
    for sim in (runner.train_sim, runner.select_sim):
        assert isinstance(sim, Simulator) and not isinstance(sim, EnsembleSimulator)
        assert sim.model.run_dir == dirs[0]
    learned = runner.inputs.learned_reward
    assert isinstance(learned, MeanReward) and len(learned.models) == 3
    assert all(map(same_weights, learned.models, [m.reward for m in members]))
    results = runner.run()
    assert "training simulator's own validation stream" in results["snapshot_selection"]
    served = load_policy(config.save_dir, "gan_greedy")
    assert isinstance(served.model, MeanReward) and len(served.model.models) == 3
    assert all(map(same_weights, served.model.models, [m.reward for m in members]))
    # A folder written before reward_dirs loads without them; both kinds at once are refused.
    legacy = {k: v for k, v in dataclasses.asdict(config).items() if k != "reward_dirs"}
    assert PolicyConfig.from_dict(legacy).reward_member_dirs == ()
    with pytest.raises(ValueError, match="reward_dirs and ensemble_dirs: expected one"):
        PolicyConfig(
            user_model_dir=dirs[0],
            test_user_model_dir=dirs[0],
            save_dir="x",
            ensemble_dirs=(dirs[1], dirs[2]),
            reward_dirs=(dirs[1],),
        )


@pytest.mark.parametrize("acting", ["member", "mean"])
def test_expected_reward_is_the_acting_models_less_the_penalty(members, acting):
    config = SimulatorConfig(k=3, horizon=2, reward="learned", seed=5)
    ensemble = EnsembleSimulator(members, config, penalty=1.5, acting=acting)
    singles = [Simulator(m, config) for m in members]
    obs = ensemble.reset(6)
    slate = slate_of(6, [0, 2, 4])
    each = np.stack([s.expected_slate_reward(s.reset(6), slate).numpy() for s in singles])
    # The mean model's expectation: sum_i mean_m p_mi * mean_m r_mi (before the step).
    probs, rewards = ensemble._outcomes(singles[0].slate_items(obs, slate))
    mean = tf.reduce_sum(tf.reduce_mean(probs, 0) * tf.reduce_mean(rewards, 0), -1).numpy()
    result = ensemble.step(obs, slate)
    std = ensemble.last_statistics.reward_std.numpy()
    if acting == "mean":
        raw = mean
    else:
        raw = each[ensemble._acting_member.numpy(), np.arange(6)]
    np.testing.assert_allclose(result.expected_reward, raw - 1.5 * std, rtol=1e-4, atol=1e-5)


def test_doubly_robust_stays_unbiased_with_a_wrong_direct_method(members):
    # Logs drawn from one model, the direct method another's: the direct method is biased,
    # the doubly robust estimate must not be (its model term and its correction use one
    # prediction, drawn independently of whether the item was displayed).
    truth, wrong = members[1], members[0]
    events = logs_of(truth, users=4000, steps=3, display=4, seed=11)
    propensity = np.full(truth.n_items, 4 / truth.n_items)
    rng = np.random.default_rng(4)
    dm_off = []
    for _ in range(2):
        policy = FixedScorePolicy(rng.random(truth.n_items), k=3)
        right = off_policy.event_terms(policy, truth, events, propensity, k=3).estimates(3)
        estimates = off_policy.event_terms(policy, wrong, events, propensity, k=3).estimates(3)
        target, spread = right["dm"]["value"], estimates["dr"]["se"]
        assert abs(estimates["dr"]["value"] - target) < 3 * spread, (estimates, target)
        dm_off.append(abs(estimates["dm"]["value"] - target) / spread)
    assert max(dm_off) > 6  # the direct method alone is off: the model is wrong
