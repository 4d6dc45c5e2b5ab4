"""`taste_posterior`: a latent taste over fixed draws, weighted by Bayes' rule from the user's
earlier choices. Checked by hand (the weights are the likelihoods of the earlier choices, the
choice the weighted mixture) and between the sequence view (training) and the step view (the
simulator)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.data.dataset import EventArrays, ItemFeatures  # noqa: E402
from ganrl.data.item_stats import with_statistics  # noqa: E402
from ganrl.train import user_model as trainer  # noqa: E402
from ganrl.user_model.choice_model import ChoiceModel  # noqa: E402
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig, UserModel  # noqa: E402

BEHAVIOR = [
    [0, [[1, 2], [3, 4, 1], [5, 1], [0, 3, 5]], [2, -1, 5, 3]],
    [1, [[2, 3], [4, 5]], [3, 4]],
]


def _model(encoder="LSTM", has_no_click=True, features=None, **options):
    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(
        user_model=encoder,
        dims="8",
        item_dim=4,
        rnn_hidden_dim=5,
        pw_dim=2,
        pw_band_size=3,
        history_display_width=4,
        taste_posterior=3,
        **options,
    )
    model = UserModel(features or ItemFeatures(6), config, has_no_click=has_no_click)
    # Large effects, so the draws disagree clearly.
    model.posterior_item.kernel.assign(model.posterior_item.kernel * 40.0)
    return model


def _softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("cap", [0, 2])
def test_weights_are_the_likelihoods_of_the_earlier_choices_by_hand(cap):
    """With `taste_evidence=cap` > 0, beyond `cap` earlier choices the weights take their mean
    log-likelihood times `cap`."""
    model = _model(taste_evidence=cap)
    choices = ChoiceModel(model)
    draws = model.posterior_types.numpy()
    model.posterior_prior.assign([0.5, -0.3, 0.0])
    prior = model.posterior_prior.numpy()
    model.posterior_temperature.assign(0.2)  # beta = softplus(0.2) = 0.798
    beta = np.log1p(np.exp(0.2))
    no_click = float(model.no_click_logit.numpy())

    def component_probs(state, display):
        """[K, D + 1] each draw's softmax over display + no-click, by numpy."""
        encoded = model.state_vector(state).with_taste(None)
        base = model.utilities(encoded, tf.constant([display])).numpy()[0]
        directions = model.posterior_item(model.items(tf.constant(display))).numpy()
        logits = base[None, :] + draws @ directions.T  # [K, D]
        logits = np.concatenate([logits, np.full((len(draws), 1), no_click)], axis=1)
        return _softmax_rows(logits)

    def evidence(log_likelihood, events):
        return log_likelihood * (min(1.0, cap / events) if cap and events else 1.0)

    state = model.initial_state(1)
    log_likelihood = np.zeros(len(draws))
    for step, (display, click) in enumerate(zip(*BEHAVIOR[0][1:])):
        probs = component_probs(state, display)
        weights = _softmax_rows(beta * evidence(log_likelihood, step) + prior)
        expected = weights @ probs  # the posterior predictive
        got = choices.click_probabilities(state, tf.constant([display])).numpy()[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        option = display.index(click) if click >= 0 else len(display)
        log_likelihood += np.log(probs[:, option])
        state = model.update_state(
            state,
            tf.constant([max(click, 0)]),
            tf.constant([click >= 0]),
            display=tf.constant([display]),
        )
        np.testing.assert_allclose(state["taste"].numpy()[0, :-1], log_likelihood, rtol=1e-4)
        assert state["taste"].numpy()[0, -1] == step + 1
    # The draws now disagree: the posterior is no longer uniform.
    assert np.ptp(log_likelihood) > 0.5
    # The utilities are the base plus the posterior mean taste's effect.
    display = [0, 2, 4]
    encoded = model.state_vector(state)
    base = model.utilities(encoded.with_taste(None), tf.constant([display])).numpy()[0]
    directions = model.posterior_item(model.items(tf.constant(display))).numpy()
    weights = _softmax_rows(beta * evidence(log_likelihood, len(BEHAVIOR[0][1])) + prior)
    np.testing.assert_allclose(
        model.utilities(encoded, tf.constant([display])).numpy()[0],
        base + directions @ (weights @ draws),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "encoder,has_no_click,options",
    [
        ("LSTM", True, {}),
        ("PW", True, {}),
        ("LSTM", False, {"choice_history": True}),
        ("PW", True, {**MODEL_PRESETS["generalising"], "set_summary": True}),
        ("LSTM", True, {"taste_evidence": 1}),
        ("PW", False, {"taste_evidence": 2}),
    ],
)
def test_sequence_and_step_views_agree(encoder, has_no_click, options):
    behavior = BEHAVIOR
    if not has_no_click:  # every event a click
        behavior = [
            [u, d, [c if c >= 0 else d_[0] for c, d_ in zip(cs, d)]] for u, d, cs in BEHAVIOR
        ]
    events = EventArrays.from_behavior(behavior, None, 3, 6)
    features = ItemFeatures(6)
    if options.get("item_features") == "generalising":
        features = with_statistics(features, events)
    model = _model(encoder, has_no_click, features, **options)
    flat = trainer.to_tensors(events.flat_batch(np.arange(events.n_users)))
    utilities = model.event_utilities(flat).numpy()
    logits = model(flat).numpy()
    choices = ChoiceModel(model)
    for row, (_, displays, clicks) in enumerate(behavior):
        state = model.initial_state(1)
        offset = int(events.event_offsets[row])
        for t, (display, click) in enumerate(zip(displays, clicks)):
            items = tf.constant([display], tf.int32)
            n = len(display)
            step = model.utilities(model.state_vector(state), items).numpy()[0]
            np.testing.assert_allclose(step, utilities[offset + t][:n], rtol=1e-4, atol=1e-5)
            step_log_probs = choices.log_probs(state, items).numpy()[0]
            sequence_log_probs = tf.nn.log_softmax(logits[offset + t]).numpy()
            np.testing.assert_allclose(
                step_log_probs[:n], sequence_log_probs[:n], rtol=1e-4, atol=1e-4
            )
            state = model.update_state(
                state, tf.constant([max(click, 0)]), tf.constant([click >= 0]), display=items
            )


def test_the_prior_before_any_event_and_one_option_at_most():
    model = _model()
    state = model.state_vector(model.initial_state(2))
    np.testing.assert_allclose(model.mixture_log_weights(state).numpy(), np.log(1 / 3), rtol=1e-6)
    model.posterior_prior.assign([1.0, 0.0, 0.0])
    expected = np.log(np.array([np.e, 1.0, 1.0]) / (np.e + 2.0))
    np.testing.assert_allclose(model.mixture_log_weights(state).numpy()[0], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="taste_mixture=4 and taste_posterior=2"):
        ModelConfig(taste_mixture=4, taste_posterior=2)
    with pytest.raises(ValueError, match="taste_posterior"):
        ModelConfig(taste_posterior=-1)
    with pytest.raises(ValueError, match="taste_evidence"):
        ModelConfig(taste_evidence=-1)


def test_a_run_with_the_posterior_learns_loads_back_and_fine_tunes(tmp_path):
    import dataclasses

    from ganrl.data.dataset import SplitData
    from ganrl.user_model import load_user_model
    from tests.test_user_model import _config
    from tests.tiny_data import tiny_dataset

    dataset = tiny_dataset(n_users=40)
    config = _config(tmp_path, num_itrs=40, eval_every=10)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, taste_posterior=4))
    results = trainer.UserModelRunner(config, SplitData.from_dataset(dataset), lambda _: None).run()
    assert results["test"]["prec1"] > 0.8  # "click the lowest id", as without the posterior
    loaded = load_user_model(config.save_dir)
    assert loaded.reward.config.taste_posterior == 4
    vali = dataset.event_arrays("vali", max_display=4)
    assert trainer.evaluate(loaded.behavior, vali)["loss"] == pytest.approx(
        results["vali"]["loss"], rel=1e-6
    )
    adversarial = _config(
        tmp_path / "adv",
        regularizer="L2",
        pretrain_dir=config.save_dir,
        learning_rate=0.005,
        num_itrs=6,
        eval_every=3,
    )
    adversarial = dataclasses.replace(adversarial, model=config.model)
    tuned = trainer.UserModelRunner(
        adversarial, SplitData.from_dataset(dataset), lambda _: None
    ).run()
    assert np.isfinite(tuned["vali"]["loss"])
