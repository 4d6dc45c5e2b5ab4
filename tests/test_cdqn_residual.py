"""The bounded-residual CDQN (issue 18, item 5): greedy start, the bound, n-step and
double-Q targets, and the legacy settings of old run folders."""

import numpy as np
import pytest
import tensorflow as tf

from ganrl.policy.base import PolicyFeatures
from ganrl.policy.cdqn import (
    CascadingDQN,
    CascadingQNetwork,
    CDQNConfig,
    cascade_select,
    n_step_return,
)
from ganrl.policy.runner import LEGACY_CDQN, PolicyConfig
from ganrl.simulator.simulator import Observation


def _bounded_net(bound=0.5, k=3):
    tf.keras.utils.set_random_seed(3)
    net = CascadingQNetwork(k=k, hidden=8, reward_residual=True, residual_bound=bound)
    net.build_for(state_dim=4, item_dim=5)
    return net


def test_untrained_bounded_cascade_is_the_greedy_ranking():
    net = _bounded_net()
    state = tf.random.normal([4, 4])
    candidates = tf.random.normal([4, 7, 5])  # the last feature is r(s, a)
    slate = cascade_select(net.position_scorer(state, candidates), 4, 7, 3)
    greedy = tf.math.top_k(candidates[..., -1], 3).indices
    np.testing.assert_array_equal(slate.numpy(), greedy.numpy())


@pytest.mark.parametrize("shrink", [None, 0.3])
def test_the_residual_stays_within_its_bound(shrink):
    bound = 0.5
    net = _bounded_net(bound)
    net.out.assign(10.0 * tf.random.normal([3, 8]))  # a trained, saturating network
    net.greedy_weight.assign([0.0, 1.0, -2.0])
    state = tf.random.normal([64, 4])
    items = tf.random.normal([64, 3, 5])
    factor = None if shrink is None else tf.fill([64, 3], shrink)
    q = net.slate_q(state, items, factor).numpy()
    greedy = net.greedy_score(state, items).numpy()
    weight = tf.nn.softplus(net.greedy_weight).numpy()
    limit = weight * bound * (1.0 if shrink is None else shrink)
    gap = np.abs(q - greedy)
    assert np.all(gap <= limit + 1e-5)
    assert np.all(gap.max(axis=0) > 0.5 * limit)  # the bound is reached, not trivially met


def test_the_bound_keeps_far_apart_items_in_greedy_order():
    # r differs by 3 > 2c = 1 between the candidates: no residual can swap them.
    net = _bounded_net(0.5, k=1)
    net.out.assign(100.0 * tf.random.normal([1, 8]))
    cands = tf.concat(
        [tf.random.normal([16, 4, 4]), tf.broadcast_to([[[0.0], [3.0], [6.0], [9.0]]], [16, 4, 1])],
        -1,
    )
    slate = cascade_select(net.position_scorer(tf.random.normal([16, 4]), cands), 16, 4, 1)
    assert set(slate.numpy()[:, 0]) == {3}


def test_n_step_return_by_hand():
    np.testing.assert_allclose(
        n_step_return(np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 0.0]]), 0.5),
        [1.0 + 0.5 * 2.0 + 0.25 * 4.0, 0.5 * 1.0],
    )


def _dqn(**config):
    features = PolicyFeatures(np.eye(4, dtype=np.float32))
    return CascadingDQN(
        features,
        1,
        config=CDQNConfig(hidden=4, replay_capacity=16, batch_size=2, **config),
        n_candidates=2,
        history_length=1,
    )


def _obs(step):
    return Observation(
        tf.constant([[step]], tf.int32), tf.constant([[step % 4, (step + 1) % 4]], tf.int32), step
    )


def test_two_step_transitions_by_hand():
    # One user, gamma 0.5, n 2, rewards 1, 2, 4 over three steps, the episode ends at step 3:
    #   t=0: r0 + 0.5 r1 = 2, next state s2, bootstrapped (done 0) by gamma^2;
    #   t=1: r1 + 0.5 r2 = 4, next state s3 (the end: done 1);
    #   t=2: r2 = 4, next state s3, done 1.
    policy = _dqn(gamma=0.5, n_step=2)
    for t, reward in enumerate([1.0, 2.0, 4.0]):
        policy.observe(_obs(t), [[0]], np.array([reward]), None, _obs(t + 1), t == 2)
        assert policy.replay.size == [0, 1, 3][t]
    data = {key: value[: policy.replay.size] for key, value in policy.replay.data.items()}
    np.testing.assert_allclose(data["reward"], [2.0, 4.0, 4.0])
    np.testing.assert_array_equal(data["history"][:, 0], [0, 1, 2])
    np.testing.assert_array_equal(data["next_history"][:, 0], [2, 3, 3])
    np.testing.assert_array_equal(data["done"], [0.0, 1.0, 1.0])
    assert policy.gamma_n == 0.25


def test_two_step_transitions_stop_where_a_user_leaves():
    # Two users, gamma 0.5, n 2, rewards 1, 2, 4; user 1 leaves after the slate of step 0
    # (her later rewards are 0, as the simulator gives). Kept transitions, in order:
    #   t=0: user 0: 1 + 0.5 * 2 = 2, bootstrapped (done 0); user 1: 1, her last (done 1);
    #   t=1: user 0: 2 + 0.5 * 4 = 4, done 1 (the end); user 1 was gone: not stored;
    #   t=2: user 0: 4, done 1.
    policy = _dqn(gamma=0.5, n_step=2)

    def obs(step, alive):
        return Observation(
            tf.constant([[step], [step]], tf.int32),
            tf.constant([[0, 1], [2, 3]], tf.int32),
            step,
            tf.constant(alive),
        )

    alive = [[True, True], [True, False], [True, False], [True, False]]
    for t, reward in enumerate([1.0, 2.0, 4.0]):
        rewards = np.array([reward, reward if alive[t][1] else 0.0])
        policy.observe(
            obs(t, alive[t]), [[0], [0]], rewards, None, obs(t + 1, alive[t + 1]), t == 2
        )
    data = {key: value[: policy.replay.size] for key, value in policy.replay.data.items()}
    np.testing.assert_allclose(data["reward"], [2.0, 1.0, 4.0, 4.0])
    np.testing.assert_array_equal(data["done"], [0.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(data["candidates"][:, 0], [0, 2, 0, 0])


@pytest.mark.parametrize("double_q", [True, False])
def test_double_q_target_by_hand(double_q):
    # k = 1: Q^1 of the two candidates of each next state under the online and target nets.
    policy = _dqn(double_q=double_q)
    policy.target.out.assign(tf.random.stateless_normal([1, 4], [5, 6]) * 3.0)
    history, candidates = (
        tf.constant([[0], [1], [2], [3]]),
        tf.constant([[0, 1], [2, 3], [1, 3], [0, 2]]),
    )
    state = policy.features.state(history)

    def q_of(net):  # [B, 2] Q^1 of each candidate
        items = policy.features.items(candidates)
        return tf.stack(
            [net.slate_q(state, items[:, c : c + 1])[:, 0] for c in range(2)], 1
        ).numpy()

    online, target = q_of(policy.q), q_of(policy.target)
    rows = np.arange(4)
    if double_q:  # the online net picks, the target net values
        expected = target[rows, online.argmax(1)]
    else:  # the target net picks and values
        expected = target.max(1)
    assert not np.allclose(target[rows, online.argmax(1)], target.max(1))  # the two differ
    np.testing.assert_allclose(policy.next_q(history, candidates).numpy(), expected, rtol=1e-5)


def test_config_checks_and_legacy_run_folders():
    with pytest.raises(ValueError, match=r"^n_step=0: expected a positive integer$"):
        CDQNConfig(n_step=0)
    with pytest.raises(ValueError, match=r"^residual_bound=-1: expected a non-negative number$"):
        CDQNConfig(residual_bound=-1)
    saved = {"user_model_dir": "a", "test_user_model_dir": "b", "save_dir": "c"}
    old = PolicyConfig.from_dict(saved)  # a config.json written before the CDQN settings
    assert {name: getattr(old, name) for name in LEGACY_CDQN} == LEGACY_CDQN
    new = PolicyConfig.from_dict({**saved, "cdqn_n_step": 3})
    assert (new.cdqn_residual_bound, new.cdqn_n_step) == (1.0, 3)


def test_a_shrunk_bound_scores_alike_in_the_cascade_and_in_slate_q():
    net = _bounded_net(0.8)
    net.out.assign(3.0 * tf.random.normal([3, 8]))
    state, cands = tf.random.normal([2, 4]), tf.random.normal([2, 6, 5])
    shrink = tf.random.uniform([2, 6])  # u(s, a) per candidate, as an ensemble would give
    scorer = net.position_scorer(state, cands, shrink)
    slate = cascade_select(scorer, 2, 6, 3)
    q = net.slate_q(
        state, tf.gather(cands, slate, batch_dims=1), tf.gather(shrink, slate, batch_dims=1)
    ).numpy()
    for j in range(3):
        expected = tf.gather(scorer(j, slate[:, :j]), slate[:, j], batch_dims=1).numpy()
        np.testing.assert_allclose(q[:, j], expected, rtol=1e-5, atol=1e-5)


def _event_world():
    """Three small user models that read what was shown (the first the reward model, the
    others an ensemble) and a simulator of the first, with no-clicks."""
    from ganrl.data.dataset import ItemFeatures
    from ganrl.simulator.simulator import Simulator, SimulatorConfig
    from ganrl.user_model import LoadedUserModel
    from ganrl.user_model.model import ModelConfig, UserModel

    def model(seed):
        tf.keras.utils.set_random_seed(seed)
        config = ModelConfig(
            user_model="LSTM",
            dims="8",
            item_dim=4,
            rnn_hidden_dim=5,
            pw_dim=2,
            pw_band_size=3,
            display_history=True,
            choice_history=True,
            history_features=True,
            history_display_width=3,
        )
        return UserModel(ItemFeatures(9), config, has_no_click=True)

    reward, *members = model(0), model(1), model(2)
    sim = Simulator(
        LoadedUserModel(reward, reward, {}, ItemFeatures(9), run_dir=""),
        SimulatorConfig(k=3, horizon=4, seed=3, leave=False, history_length=4),
    )
    return reward, members, sim


def _run_steps(policy, sim, steps=3):
    """The observations of `steps` random slates, each selected for and observed by
    `policy`."""
    observation = sim.reset(4, start_histories=[[1, 2], [3], [], [4, 5, 6, 7, 8]])
    observations = [observation]
    rng = np.random.default_rng(0)
    for t in range(steps):
        policy.select(observation, explore=True)  # acting reads the same states
        slate = tf.constant(np.argsort(rng.random((4, 9)), axis=1)[:, :3], tf.int32)
        step = sim.step(observation, slate)
        done = t == steps - 1
        policy.observe(observation, slate, step.reward, step.clicked, step.observation, done)
        observation = step.observation
        observations.append(observation)
    return observations


def test_the_memory_keeps_the_user_models_states_and_an_old_memory_gets_them():
    """An update reads r(s, a) and the ensemble's spread from the states the replay memory
    kept, which are those the observations' clicks and display sets lead to (not the clicks
    alone); a memory saved before it kept them (with or without display sets) gets them on
    loading."""
    from ganrl.policy.heuristics import learned_rewards
    from ganrl.policy.residual import ensemble_shrink

    reward, members, sim = _event_world()

    def dqn():
        return CascadingDQN(
            PolicyFeatures.from_user_model(reward),
            3,
            config=CDQNConfig(hidden=4, replay_capacity=64, batch_size=4),
            n_candidates=9,
            history_length=4,
            reward_model=reward,
            ensemble_models=members,
        )

    cdqn = dqn()
    encodings, encode = [], cdqn._encode
    cdqn._encode = lambda history, events=None: encodings.append(1) or encode(history, events)
    observations, blind = _run_steps(cdqn, sim), []
    assert len(encodings) == len(observations)  # each observation encoded once
    size = cdqn.replay.size
    assert size == 12
    batch = cdqn._minibatch({key: value[:size] for key, value in cdqn.replay.data.items()})
    for name, seen in (("encoded", observations[:-1]), ("next_encoded", observations[1:])):
        history = tf.concat([o.history for o in seen], 0)
        candidates = tf.concat([o.candidates for o in seen], 0)
        events = tf.concat([o.events for o in seen], 0)
        kept = batch[name]
        for user_model, state in zip((reward, *members), kept):
            got = learned_rewards(user_model, None, candidates, encoded=state).numpy()
            want = learned_rewards(user_model, history, candidates, events=events).numpy()
            np.testing.assert_allclose(got, want, atol=1e-5)
            clicks_alone = learned_rewards(user_model, history, candidates).numpy()
            blind.append(not np.allclose(got, clicks_alone, atol=1e-5))
        np.testing.assert_allclose(
            ensemble_shrink(members, None, candidates, 1.0, encoded=kept[1:]).numpy(),
            ensemble_shrink(members, history, candidates, 1.0, events=events).numpy(),
            atol=1e-5,
        )
    assert any(blind)
    assert cdqn.train_step()["loss"] >= 0.0

    # A memory saved before the states were kept: they are replayed on loading.
    saved = cdqn.numpy_state()
    kept = {key: value for key, value in saved.items() if "encoded_" in key}
    assert kept
    old = {key: value for key, value in saved.items() if "encoded_" not in key}
    for prefix, seen in (("", observations[:-1]), ("next_", observations[1:])):
        old[f"replay_data_{prefix}events"] = np.concatenate([o.events.numpy() for o in seen])
    resumed = dqn()
    resumed.load_numpy_state(old)
    for key, value in kept.items():
        np.testing.assert_allclose(resumed.replay.data[key[12:]][:size], value, atol=1e-5)
    assert resumed.train_step()["loss"] >= 0.0


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_actor_critic_updates_read_the_user_models_of_the_display_sets(name):
    """PPO's and A2C's gradient steps take r(s, a) and the ensemble's shrinking computed once
    per rollout from the users' clicks and display sets: the logits they give are those of
    acting on the same observations."""
    from ganrl.policy.actor_critic import A2C, PPO, _flat

    reward, members, sim = _event_world()
    cls = {"ppo": PPO, "a2c": A2C}[name]
    policy = cls(
        PolicyFeatures.from_user_model(reward), 3, reward_model=reward, ensemble_models=members
    )
    observations = _run_steps(policy, sim)
    stacked = policy._stacked()
    flat = _flat(stacked, ("history", "candidates"))
    assert "events" in flat
    learned = policy._with_learned(dict(flat))
    assert "events" not in learned and {"reward", "shrink"} <= set(learned)
    seen = observations[:-1]
    events = tf.concat([o.events for o in seen], 0)
    acting = policy._logits(flat["history"], flat["candidates"], events).numpy()
    state, feats, shrink = policy._inputs(
        learned["history"], learned["candidates"], learned=(learned["reward"], learned["shrink"])
    )
    np.testing.assert_allclose(policy.net.logits(state, feats, shrink).numpy(), acting, atol=1e-5)
    blind = policy._logits(flat["history"], flat["candidates"]).numpy()
    assert not np.allclose(blind, acting, atol=1e-5)
    assert np.isfinite(policy.train_step()["loss"])


def test_bound_exploration_shows_only_slates_the_bounded_policy_could_pick():
    """With `explore="bound"` an exploring slate holds items whose learned reward is within
    2c of the k-th best (a slate the bounded residual can reach), in the cascade's order,
    and it varies from step to step; "slate" draws from the whole candidate set."""
    from ganrl.policy.heuristics import learned_rewards

    reward, _, sim = _event_world()
    observation = sim.reset(4, start_histories=[[1, 2], [3], [], [4, 5, 6, 7, 8]])
    r = learned_rewards(reward, observation.history, observation.candidates).numpy()
    spread = np.sort(r, axis=1)[:, ::-1]
    bound = 0.25 * float(np.median(spread[:, 0] - spread[:, -1]))  # a bound that binds

    def slates(explore):
        tf.keras.utils.set_random_seed(0)
        cdqn = CascadingDQN(
            PolicyFeatures.from_user_model(reward),
            3,
            config=CDQNConfig(
                hidden=4, epsilon_start=1.0, epsilon_end=1.0, residual_bound=bound, explore=explore
            ),
            n_candidates=9,
            history_length=4,
            reward_model=reward,
        )
        return np.stack([cdqn.select(observation, explore=True).numpy() for _ in range(30)])

    near = slates("bound")
    picked = np.take_along_axis(np.broadcast_to(r, (30, *r.shape)), near, axis=2)
    assert np.all(picked >= spread[None, :, 2:3] - 2 * bound - 1e-6)
    assert len({tuple(s.ravel()) for s in near}) > 1
    wide = slates("slate")
    reached = np.take_along_axis(np.broadcast_to(r, (30, *r.shape)), wide, axis=2)
    assert np.any(reached < spread[None, :, 2:3] - 2 * bound)
    with pytest.raises(ValueError, match=r"^explore='x': expected one of slate, bound$"):
        CDQNConfig(explore="x")
    with pytest.raises(ValueError, match=r"^cdqn_explore='x': expected one of slate, bound$"):
        PolicyConfig(user_model_dir="a", test_user_model_dir="b", save_dir="c", cdqn_explore="x")
