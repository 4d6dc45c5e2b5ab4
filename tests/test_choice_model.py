"""ChoiceModel: the one history replay, choice probabilities, sampling, top-k, rewards."""

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.dataset import ItemFeatures
from ganrl.user_model.choice_model import ChoiceModel, gumbel_noise
from ganrl.user_model.model import ModelConfig, UserModel

# The paper's model and one whose state holds every part (display summary, choice evidence,
# history ids, the user-type posterior), where a padded replay step is most likely to leak
# into the state.
OPTIONS = {
    "plain": {},
    "all_parts": {
        "display_history": True,
        "choice_history": True,
        "history_features": True,
        "history_display_width": 3,
        "taste_posterior": 3,
    },
}


def _choice_model(encoder, options, has_no_click=False):
    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(
        user_model=encoder,
        dims="8",
        item_dim=4,
        rnn_hidden_dim=5,
        pw_dim=2,
        pw_band_size=3,
        **OPTIONS[options],
    )
    return ChoiceModel(UserModel(ItemFeatures(9), config, has_no_click))


def _flat(state):
    return [np.asarray(x) for x in tf.nest.flatten(state)]


@pytest.mark.parametrize("encoder", ["PW", "LSTM"])
@pytest.mark.parametrize("options", list(OPTIONS))
def test_replay_skips_padding_and_matches_one_update_per_click(encoder, options):
    cm = _choice_model(encoder, options)
    # User 0 has padding before, between and after its clicks; user 1 has none.
    padded = cm.replay(np.array([[-1, 3, -1, 5, -1], [2, 4, 6, 8, 1]], np.int32))
    for row, clicks in enumerate([[3, 5], [2, 4, 6, 8, 1]]):
        state = cm.initial_state(1)
        for item in clicks:  # one click at a time, the simulator's way
            state = cm.update(state, tf.constant([item]), tf.constant([True]))
        for got, want in zip(_flat(padded), _flat(state)):
            np.testing.assert_allclose(got[row], want[0], atol=1e-6)


def test_replay_recent_first_is_replay_of_the_reversed_history():
    cm = _choice_model("LSTM", "plain")
    recent_first = cm.replay_recent_first(tf.constant([[5, 3, 1, -1]]))
    oldest_first = cm.replay(tf.constant([[1, 3, 5]]))
    for got, want in zip(_flat(recent_first), _flat(oldest_first)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # Order matters to the LSTM, so the test could fail.
    other = cm.replay(tf.constant([[5, 3, 1]]))
    assert not np.allclose(_flat(other)[0], _flat(oldest_first)[0])


@pytest.mark.parametrize("has_no_click", [False, True])
def test_probabilities_mask_padding_and_an_absent_no_click(has_no_click):
    cm = _choice_model("PW", "plain", has_no_click)
    state = cm.replay(tf.constant([[1, 2]]))
    display, mask = tf.constant([[3, 4, 0]]), tf.constant([[True, True, False]])
    probs = cm.click_probabilities(state, display, mask).numpy()[0]
    assert probs.shape == (4,)
    assert probs[2] == pytest.approx(0.0, abs=1e-12)  # padding
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert (probs[3] > 0) == has_no_click
    # Log-probabilities are those probabilities' logs; the utilities' softmax over the real
    # items is the probabilities given a click.
    np.testing.assert_allclose(
        np.exp(cm.log_probs(state, display, mask).numpy()[0]), probs, atol=1e-6
    )
    u = cm.utilities(state, display[:, :2]).numpy()[0]
    given_click = np.exp(u) / np.exp(u).sum()
    np.testing.assert_allclose(probs[:2] / probs[:2].sum(), given_click, atol=1e-6)


def test_sample_follows_the_gumbel_max_rule_and_its_frequencies():
    cm = _choice_model("PW", "plain", has_no_click=True)
    state = cm.replay(tf.constant([[1, 2]] * 4000))
    display = tf.constant([[3, 4, 5]] * 4000)
    gumbel = gumbel_noise(tf.random.Generator.from_seed(1), [4000, 4])
    chosen = cm.sample(state, display, gumbel).numpy()
    logits = cm.logits(state, display).numpy()
    np.testing.assert_array_equal(chosen, np.argmax(logits + gumbel.numpy(), -1))
    frequencies = np.bincount(chosen, minlength=4) / 4000.0
    # 4,000 draws: each frequency within about 4 standard errors (<= 0.032) of its probability.
    np.testing.assert_allclose(
        frequencies, cm.click_probabilities(state, display).numpy()[0], atol=0.032
    )


def test_top_k_and_rewards():
    cm = _choice_model("LSTM", "plain", has_no_click=True)
    cm.model.no_click_logit.assign(0.75)
    state = cm.replay(tf.constant([[4], [7]]))
    items = tf.constant([[0, 1, 2, 3, 5], [8, 6, 5, 1, 0]])
    u = cm.utilities(state, items).numpy()
    np.testing.assert_array_equal(
        cm.top_k(state, items, 3).numpy(), np.argsort(-u, axis=1, kind="stable")[:, :3]
    )
    np.testing.assert_allclose(cm.rewards(state, items).numpy(), u - 0.75, atol=1e-6)


@pytest.mark.parametrize("encoder", ["PW", "LSTM"])
def test_replay_events_rebuilds_the_simulators_own_state(encoder):
    """What a policy replays from an observation (its clicks and recent display sets) is the
    state the simulator holds, no-click events and start histories included; the clicks
    alone are not, for a model that reads what was shown."""
    from ganrl.simulator.simulator import Simulator, SimulatorConfig
    from ganrl.user_model import LoadedUserModel

    cm = _choice_model(encoder, "all_parts", has_no_click=True)
    loaded = LoadedUserModel(cm.model, cm.model, {}, ItemFeatures(9), run_dir="")
    sim = Simulator(loaded, SimulatorConfig(k=3, horizon=5, seed=3, leave=False))
    observation = sim.reset(4, start_histories=[[1, 2], [3], [], [4, 5, 6]])
    rng = np.random.default_rng(0)
    blind = []
    for _ in range(5):
        slate = np.argsort(rng.random((4, 9)), axis=1)[:, :3]
        observation = sim.step(observation, tf.constant(slate, tf.int32)).observation
        want = _flat(sim._state[1])
        got = _flat(cm.replay_events(observation.history, observation.events))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=1e-5)
        clicks_only = _flat(cm.replay_recent_first(observation.history))
        blind.append(not all(np.allclose(c, w, atol=1e-5) for c, w in zip(clicks_only, want)))
    assert any(blind)
    events = observation.events.numpy()
    assert events.shape == (4, 10, 1 + sim.event_width)
    assert (events[:, 5:] == -1).all()  # five events so far, most recent first


def test_replay_events_without_events_is_the_click_replay():
    cm = _choice_model("LSTM", "all_parts")
    history = tf.constant([[5, 3, 1, -1]])
    for got, want in zip(
        _flat(cm.replay_events(history, None)), _flat(cm.replay_recent_first(history))
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_an_event_of_unknown_display_set_is_the_click_alone_or_nothing():
    from ganrl.simulator.simulator import Simulator, SimulatorConfig
    from ganrl.user_model import LoadedUserModel

    cm = _choice_model("PW", "all_parts", has_no_click=True)
    loaded = LoadedUserModel(cm.model, cm.model, {}, ItemFeatures(9), run_dir="")
    sim = Simulator(loaded, SimulatorConfig(k=3, horizon=2, leave=False))
    sim.reset(2)
    sim.advance(tf.constant([4, 7]), tf.constant([True, False]))  # no display set known
    events = sim.observation().events.numpy()
    np.testing.assert_array_equal(events[0, 0, :3], [4, 4, -1])  # clicked 4, shown 4 alone
    np.testing.assert_array_equal(events[1], -1)  # a no-click of unknown set: no event
    np.testing.assert_array_equal(sim.observation().history.numpy()[:, 0], [4, -1])
