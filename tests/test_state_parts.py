"""State parts (`ganrl.user_model.state_parts`), each alone, and how UserModel composes them."""

import math

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.dataset import ItemFeatures
from ganrl.user_model import context
from ganrl.user_model.model import ModelConfig, UserModel
from ganrl.user_model.state_parts import (
    STATE_PARTS,
    ChoiceEvidence,
    DisplaySummary,
    Event,
    RecentItems,
    make_state_parts,
    user_prefix_sums,
)

# Item embeddings e_0 = (1, 0), e_1 = (0, 1), e_2 = (2, 2), e_3 = (0, 0).
EMBEDDINGS = [[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [0.0, 0.0]]


def _model(**options):
    """A PW model over 4 items with 2-dimensional embeddings set to EMBEDDINGS and, with
    `flat`, utilities that are 0 for every item (no MLP, a zero bilinear map)."""
    flat = options.pop("flat", False)
    config = ModelConfig(
        user_model="PW", item_dim=2, pw_dim=1, pw_band_size=2, dims="" if flat else "4", **options
    )
    model = UserModel(ItemFeatures(4), config, has_no_click=False)
    model.items.identity.embeddings.assign(EMBEDDINGS)
    if flat:
        model.bilinear.kernel.assign(tf.zeros_like(model.bilinear.kernel))
    return model


def _part(model, cls):
    return next(p for p in model.state_parts if isinstance(p, cls))


def test_display_summary_sums_the_items_passed_over():
    model = _model(display_history=True)
    part = _part(model, DisplaySummary)
    state = model.initial_state(1)
    # Shown items 0, 1, 2 and clicked 1: passed over e_0 and e_2, mean (1.5, 1); a click.
    event = Event(tf.constant([1]), tf.constant([True]), tf.constant([[0, 1, 2]]), None)
    sums = part.update_state(model, state, event).numpy()
    np.testing.assert_allclose(sums, [[1.5, 1.0, 0.0, 1.0]])
    # Without its display set an event adds nothing.
    alone = Event(tf.constant([1]), tf.constant([True]), None, None)
    np.testing.assert_array_equal(part.update_state(model, state, alone).numpy(), 0.0)
    # Its columns: the means over 2 events and log(1 + 2).
    np.testing.assert_allclose(
        part.vector(model, tf.constant([[3.0, 2.0, 1.0, 2.0]])).numpy(),
        [[1.5, 1.0, 0.5, math.log(3.0)]],
        rtol=1e-6,
    )


def test_choice_evidence_is_the_click_less_the_expected_choice():
    model = _model(choice_history=True, flat=True)
    part = _part(model, ChoiceEvidence)
    state = model.initial_state(1)
    # Equal utilities over items 0 and 1: p = 1/2 each; item 0 clicked:
    # e_0 - (e_0 + e_1) / 2 = (0.5, -0.5), and one event.
    event = Event(tf.constant([0]), tf.constant([True]), tf.constant([[0, 1]]), None)
    np.testing.assert_allclose(
        part.update_state(model, state, event).numpy(), [[0.5, -0.5, 1.0]], rtol=1e-6
    )
    # Without a display set the click is the only item shown: no evidence, one event.
    alone = Event(tf.constant([2]), tf.constant([True]), None, None)
    np.testing.assert_allclose(
        part.update_state(model, state, alone).numpy(), [[0.0, 0.0, 1.0]], atol=1e-6
    )
    # Its columns: shrunk by 1 / (1 + k 2) with k = 1 at the start, then log(1 + 2).
    np.testing.assert_allclose(
        part.vector(model, tf.constant([[3.0, -6.0, 2.0]])).numpy(),
        [[1.0, -2.0, math.log(3.0)]],
        rtol=1e-6,
    )


def test_recent_items_keep_int_ids_and_describe_candidates():
    model = _model(
        history_features=True, history_display_width=3, history_clicks=2, history_events=2
    )
    part = _part(model, RecentItems)
    state = model.initial_state(1)
    event = Event(tf.constant([2]), tf.constant([True]), tf.constant([[2, 3]]), None)
    ids = part.update_state(model, state, event)
    np.testing.assert_array_equal(ids.clicks.numpy(), [[2, context.EMPTY]])
    np.testing.assert_array_equal(ids.displays.numpy()[0, 0], [2, 3, context.EMPTY])
    # Candidates 2, 3, 1: clicked before, last click, shown before, shown last event.
    features = part.context_features(tf.constant([[2, 3, 1]]), part.context(ids)).numpy()
    np.testing.assert_array_equal(features[0], [[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]])
    # Through the model: the ids stay int32 and out of the float vector.
    encoded = model.state_vector(dict(state, ids=ids))
    assert encoded.context["ids"].clicks.dtype == tf.int32
    assert encoded.vector.shape[-1] == model.encoded_dim == model.history.state_dim


@pytest.mark.parametrize(
    "options, names",
    [
        ({}, []),
        ({"choice_history": True}, ["choices"]),
        ({"history_features": True, "display_history": True}, ["shown", "ids"]),
        (
            {**{option: True for option in STATE_PARTS}, "taste_posterior": 2},
            ["shown", "choices", "ids", "taste"],
        ),
    ],
)
def test_the_model_composes_the_configured_parts(options, names):
    config = ModelConfig(user_model="PW", item_dim=2, pw_dim=1, pw_band_size=2, **options)
    assert [p.name for p in make_state_parts(config)] == names
    model = UserModel(ItemFeatures(4), config, has_no_click=False)
    state = model.initial_state(3)
    assert sorted(state) == sorted(["encoder"] + names)
    columns = sum(p.vector_dim for p in model.state_parts)
    assert model.encoded_dim == model.history.state_dim + columns
    encoded = model.state_vector(state)
    assert encoded.vector.shape == (3, model.encoded_dim)
    assert sorted(encoded.context) == sorted({"ids", "taste"} & set(names))
    assert (encoded.taste is None) == ("taste" not in names)


def test_user_prefix_sums_do_not_depend_on_the_other_users_of_the_batch():
    # An evaluation batch holds thousands of users: a float32 cumulative sum over the whole
    # batch, less its value at each user's first event, loses the low bits of a user's own
    # sums (an error of 0.03 on sums below 5 here), so her state depended on who shared her
    # batch. Each user's sums must be her own events' to float32 rounding.
    users, per_user = 20000, 10
    values = np.full((users * per_user, 1), 0.3, np.float32)
    event_user = np.repeat(np.arange(users, dtype=np.int32), per_user)
    sums = user_prefix_sums(tf.constant(values), tf.constant(event_user), users).numpy()
    expected = np.tile(0.3 * np.arange(per_user, dtype=np.float64), users)[:, None]
    np.testing.assert_allclose(sums, expected, rtol=0, atol=1e-5)
