"""The choice model and objectives against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from ganrl.metrics import precision_at_k
from ganrl.user_model import choice


def test_choice_logits_masks_padding_and_absent_no_click():
    u = tf.constant([[1.0, 2.0, 3.0]])
    mask = tf.constant([[True, True, False]])
    logits = choice.choice_logits(u, mask, None).numpy()
    assert logits[0, :2].tolist() == [1.0, 2.0]
    assert logits[0, 2] == choice.MASKED_LOGIT and logits[0, 3] == choice.MASKED_LOGIT
    with_no_click = choice.choice_logits(u, mask, tf.constant(0.5)).numpy()
    assert with_no_click[0, 3] == 0.5


def test_entropy_loss_conditioned_on_click():
    # Softmax over {1, 2}: -log(e^2 / (e^1 + e^2)) = log(1 + e^-1) = 0.313262.
    logits = choice.choice_logits(
        tf.constant([[1.0, 2.0, 3.0]]), tf.constant([[True, True, False]]), None
    )
    info = choice.entropy_regularised_loss(logits, tf.constant([1]), tf.constant([True]))
    assert info.loss.numpy() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-6)
    assert info.events.numpy() == 1.0


def test_entropy_loss_with_no_click_option_and_event_mask():
    # No-click utility 0: options {1, 2, no-click 0}. Event 0 clicks item 0:
    # -(1 - log(e + e^2 + 1)); event 1 clicks nothing: log(e + e^2 + 1); event 2 is padding.
    u = tf.constant([[1.0, 2.0], [1.0, 2.0], [5.0, 5.0]])
    mask = tf.constant([[True, True]] * 3)
    logits = choice.choice_logits(u, mask, tf.constant(0.0))
    info = choice.entropy_regularised_loss(
        logits, tf.constant([0, -1, 1]), tf.constant([True, True, False])
    )
    z = math.log(math.e + math.e**2 + 1)
    assert info.loss.numpy() == pytest.approx((z - 1.0) + z, rel=1e-6)
    assert info.events.numpy() == 2.0


def test_l2_objectives_hand_values():
    # phi = (0.5, 0.5, 0) over two items and no-click; r = (1, 3, 0); real click: item 0.
    phi = tf.constant([[0.5, 0.5, 0.0]])
    r = tf.constant([[1.0, 3.0, 0.0]])
    options = tf.constant([[True, True, False]])
    events = tf.constant([True])
    # behaviour: 0.5*1 + 0.5*3 - 0.5*(0.25 + 0.25) = 2 - 0.25 = 1.75
    gain = choice.l2_behaviour_objective(phi, r, options, events)
    assert gain.numpy() == pytest.approx(1.75)
    # reward: E_phi[r] - r(real) = 2 - 1 = 1
    gap = choice.l2_reward_objective(phi, r, options, tf.constant([0]), events)
    assert gap.numpy() == pytest.approx(1.0)


def test_sparsemax_is_the_l2_users_best_response():
    # sparsemax(1, 3) = (0, 1); sparsemax(1, 1.5) = (0.25, 0.75).
    z = tf.constant([[1.0, 3.0, 0.0], [1.0, 1.5, 9.0]])
    options = tf.constant([[True, True, False], [True, True, False]])
    p = choice.sparsemax(z, options).numpy()
    np.testing.assert_allclose(p, [[0.0, 1.0, 0.0], [0.25, 0.75, 0.0]], atol=1e-6)
    # No distribution on the simplex does better on the L2-regularised objective.
    best = choice.l2_behaviour_objective(
        tf.constant(p[1:]), z[1:], options[1:], tf.constant([True])
    ).numpy()
    for q in np.linspace(0, 1, 21):
        other = tf.constant([[q, 1 - q, 0.0]], tf.float32)
        value = choice.l2_behaviour_objective(other, z[1:], options[1:], tf.constant([True]))
        assert value.numpy() <= best + 1e-6


def test_precision_ties_count_fractionally():
    scores = np.array([[1.0, 1.0, 1.0, 0.0], [3.0, 2.0, 1.0, 9.0], [2.0, 2.0, 0.0, 0.0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    clicked = np.array([2, 1, 0])
    # Row 0: three-way tie at the top: prec@1 = 1/3, prec@2 = 2/3. Row 1: second (the 9.0 is
    # padding): prec@1 = 0, prec@2 = 1. Row 2: two-way tie: prec@1 = 1/2, prec@2 = 1.
    np.testing.assert_allclose(precision_at_k(scores, mask, clicked, 1), [1 / 3, 0.0, 0.5])
    np.testing.assert_allclose(precision_at_k(scores, mask, clicked, 2), [2 / 3, 1.0, 1.0])
    assert np.isnan(precision_at_k(scores, mask, np.array([-1, 0, 0]), 1)[0])


@pytest.mark.parametrize("has_no_click", [False, True])
def test_choice_evidence_by_hand(has_no_click):
    from ganrl.data.dataset import ItemFeatures
    from ganrl.user_model.model import ModelConfig, UserModel, summarise_choices

    model = UserModel(
        ItemFeatures(3), ModelConfig(item_dim=2, choice_history=True), has_no_click=has_no_click
    )
    model.items.identity.embeddings.assign([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    u = tf.constant([[0.0, math.log(2.0), 9.0]])  # item 2 is padding
    mask = tf.constant([[True, True, False]])
    display = tf.constant([[0, 1, 2]])
    if has_no_click:  # no-click logit 0: p = 1/4, 2/4 and 1/4 for no click, which is chosen
        evidence = model._choice_evidence(u, display, mask, tf.constant([-1])).numpy()
        np.testing.assert_allclose(evidence, [[-0.25, -0.5, 1.0]], rtol=1e-6)
    else:  # p = 1/3, 2/3; item 0 chosen: e_0 - (e_0 / 3 + 2 e_1 / 3)
        evidence = model._choice_evidence(u, display, mask, tf.constant([0])).numpy()
        np.testing.assert_allclose(evidence, [[2 / 3, -2 / 3, 1.0]], rtol=1e-6)
    # Sums over two events: shrunk by 1 / (1 + k 2), k = 1 at the start, then log(1 + 2).
    assert model._shrink().numpy() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(
        summarise_choices(tf.constant([[3.0, 6.0, 2.0]]), 0.5).numpy(),
        [[1.5, 3.0, math.log(3.0)]],
        rtol=1e-6,
    )
