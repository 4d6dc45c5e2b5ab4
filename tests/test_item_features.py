"""The 'generalising' item features: statistics and context by hand, and free of leakage."""

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.convert import convert_rows
from ganrl.data.dataset import EventArrays, ItemFeatures, SplitData
from ganrl.data.item_stats import (
    COLUMNS,
    features_pickle_object,
    fold_of_users,
    fold_statistics,
    item_statistics,
    split_statistics,
    with_statistics,
)
from ganrl.train import user_model as trainer
from ganrl.user_model import context
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig, UserModel
from tests.tiny_data import tiny_dataset

E = context.EMPTY


def _generalising_model(features, encoder="LSTM", **options):
    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(
        user_model=encoder,
        dims="8-8",
        item_dim=4,
        rnn_hidden_dim=5,
        pw_dim=2,
        pw_band_size=3,
        history_display_width=4,
        **{**MODEL_PRESETS["generalising"], **options},
    )
    return UserModel(features, config, has_no_click=False)


def _flat(events):
    return trainer.to_tensors(events.flat_batch(np.arange(events.n_users)))


# -- (c) by hand -----------------------------------------------------------------------------


def test_statistics_by_hand():
    behavior = [[0, [[0, 1], [1, 2]], [1, -1]], [1, [[1, 3]], [3]]]
    counts, columns = item_statistics(EventArrays.from_behavior(behavior, None, 2, 5), 5)
    assert columns == COLUMNS
    # Display sets: item 0 once, 1 three times, 2 once, 3 once, 4 never; clicks: 1 and 3 once.
    np.testing.assert_array_equal(counts, [[1, 0], [3, 1], [1, 0], [1, 1], [0, 0]])


def test_statistic_features_by_hand():
    # p = 0.25, a = 4: an item shown 4 times and clicked 2: rate (2 + 1) / (4 + 4) = 3/8,
    # logit(3/8) - logit(1/4) = log(3/5) - log(1/3) = log(9/5).
    features = context.statistic_features(tf.constant([[4.0, 2.0], [0.0, 0.0]]), 0.25, 4.0)
    np.testing.assert_allclose(
        features.numpy(),
        [[np.log(5), np.log(3), np.log(9 / 5), 0], [0, 0, 0, 1]],
        rtol=1e-5,
        atol=1e-6,
    )
    # Seen once and clicked once: (1 + 1) / (1 + 4) = 0.4, not a certainty.
    once = context.statistic_features(tf.constant([[1.0, 1.0]]), 0.25, 4.0).numpy()
    np.testing.assert_allclose(once[0, 2], np.log(0.4 / 0.6) - np.log(1 / 3), rtol=1e-5)


def test_own_event_counts_by_hand():
    # User 0: events {1, 2} click 2, {2, 3} no click; user 1: {2, 4} click 2 (padding 0s).
    display = tf.constant([[1, 2, 0], [2, 3, 0], [2, 4, 0]])
    mask = tf.constant([[True, True, False], [True, True, False], [True, True, False]])
    own = context.own_event_counts(
        display, mask, tf.constant([1, -1, 0]), tf.constant([0, 0, 1])
    ).numpy()
    # User 0 saw item 2 twice and clicked it once; user 1 saw it once and clicked it once.
    np.testing.assert_array_equal(own[..., 0], [[1, 2, 0], [2, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(own[..., 1], [[0, 1, 0], [1, 0, 0], [1, 0, 0]])


def test_recent_items_and_history_features_by_hand():
    # One user, three events: {5, 6} click 6, {6, 7} no click, {5, 7} (the event asked about).
    display = tf.constant([[5, 6], [6, 7], [5, 7]])
    mask = tf.ones([3, 2], tf.bool)
    users = tf.constant([0, 0, 0])
    shown = context.recent_display_items(display, mask, users, 2).numpy()
    np.testing.assert_array_equal(shown[2], [[6, 7], [5, 6]])  # previous event first
    np.testing.assert_array_equal(shown[0], [[E, E], [E, E]])
    clicks = context.recent_click_items(
        tf.constant([[6]]), users, tf.constant([0, 1, 1]), 2
    ).numpy()
    np.testing.assert_array_equal(clicks, [[E, E], [6, E], [6, E]])
    # Event 2's items 5 and 7 against clicks [6] and sets [[6, 7], [5, 6]]:
    # 5: never clicked, shown once, not in the previous set; 7: shown once, in the previous set.
    f = context.history_features(display[2:], clicks[2:], shown[2:]).numpy()[0]
    np.testing.assert_array_equal(f, [[0, 0, 1, 0], [0, 0, 1, 1]])
    f6 = context.history_features(tf.constant([[6]]), clicks[2:], shown[2:]).numpy()[0, 0]
    np.testing.assert_array_equal(f6, [1, 1, 2, 1])  # clicked, last click, shown twice


def test_set_ranks_share_ties_and_ignore_padding():
    values = tf.constant([[[3.0], [1.0], [3.0], [9.0]]])  # the last slot is padding
    mask = tf.constant([[True, True, True, False]])
    # Places 0 (1.0) and 1, 2 (the two 3.0s share 1.5) of 3 real items: ranks 0, 0.75, 0.75.
    np.testing.assert_allclose(
        context.set_ranks(values, mask).numpy()[0, :, 0], [0.75, 0.0, 0.75, 0.0]
    )
    single = context.set_ranks(tf.constant([[[2.0]]]), tf.constant([[True]])).numpy()
    assert single[0, 0, 0] == 0.5


# -- (a) no leakage ----------------------------------------------------------------------------


def test_a_test_users_clicks_change_no_feature_and_no_other_prediction():
    dataset = tiny_dataset()
    data = SplitData.from_dataset(dataset)
    before = with_statistics(dataset.item_features, data.splits["train"])
    test_user = dataset.split[2][0]
    entry = next(e for e in dataset.behavior if e[0] == test_user)
    entry[2] = [d[-1] for d in entry[1]]  # change every click of a test user
    changed = SplitData.from_dataset(dataset)
    assert not np.array_equal(changed.splits["test"].clicked_pos, data.splits["test"].clicked_pos)
    after = with_statistics(dataset.item_features, changed.splits["train"])
    np.testing.assert_array_equal(before.dense, after.dense)
    # Hence the models are the same, and so is every prediction for the other test users.
    others = _flat(changed.splits["test"].subset(np.arange(1, changed.splits["test"].n_users)))
    u_before = _generalising_model(before).event_utilities(others).numpy()
    u_after = _generalising_model(after).event_utilities(others).numpy()
    np.testing.assert_array_equal(u_before, u_after)


def test_leave_user_out_a_training_event_never_sees_its_own_click():
    dataset = tiny_dataset()
    user = dataset.split[0][0]
    entry = next(e for e in dataset.behavior if e[0] == user)
    other_clicks = [d[-1] if d[-1] != c else d[0] for d, c in zip(entry[1], entry[2])]
    tables, first_event = [], []
    for clicks in (list(entry[2]), other_clicks):
        entry[2] = clicks
        data = SplitData.from_dataset(dataset)
        features = with_statistics(dataset.item_features, data.splits["train"])
        tables.append(features.dense)
        batch = _flat(EventArrays.from_behavior(dataset.behavior, [user], 4, dataset.n_items))
        u = _generalising_model(features).event_utilities(batch, leave_user_out=True)
        first_event.append(u.numpy()[0])  # no history yet: only the statistics differ
    assert not np.array_equal(*tables)  # the user's clicks are in the statistics...
    np.testing.assert_allclose(*first_event, atol=1e-6)  # ...but not in what the user sees


def test_fold_statistics_by_hand():
    # Users 0, 1, 2 in folds 1, 0, 1 (a 3-user deal into 2 folds is (fold of row) 1, 0, 1 for
    # this seed: asserted first, so the hand figures below follow from it).
    behavior = [[0, [[1, 2], [2, 3]], [1, -1]], [1, [[1, 3]], [3]], [2, [[2, 3]], [2]]]
    train = EventArrays.from_behavior(behavior, None, 2, 4)
    fold, counts = fold_statistics(train, 4, folds=2, seed=0)
    np.testing.assert_array_equal(fold, fold_of_users(3, 2, 0))
    assert sorted(np.bincount(fold).tolist()) == [1, 2]  # as equal as 3 users allow
    expected = np.zeros((2, 4, 2))
    for (user, displays, clicks), f in zip(behavior, fold):
        for display, click in zip(displays, clicks):
            expected[f, display, 0] += 1
            if click >= 0:
                expected[f, click, 1] += 1
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(counts.sum(0), item_statistics(train, 4)[0])


@pytest.mark.parametrize("encoder", ["PW", "LSTM"])
def test_out_of_fold_a_training_users_clicks_change_none_of_her_own_features(encoder):
    """The leak that leave-one-user-out statistics leave open: the identity embedding learns
    an item's total count, and the total less the user's-own-events-removed count is her own
    click. Out of fold, a user's own features do not depend on her clicks at all."""
    dataset = tiny_dataset(n_users=40)
    user = dataset.split[0][3]
    entry = next(e for e in dataset.behavior if e[0] == user)
    other_clicks = [d[-1] if d[-1] != c else d[0] for d, c in zip(entry[1], entry[2])]
    tables, own_counts, first_event = [], [], []
    for clicks in (list(entry[2]), other_clicks):
        entry[2] = clicks
        data = SplitData.from_dataset(dataset)
        train = data.splits["train"]
        features = with_statistics(dataset.item_features, train)
        model = _generalising_model(features, encoder)  # identity embedding included
        assert model.items.identity is not None
        model.use_statistic_folds(*fold_statistics(train, dataset.n_items, folds=4, seed=0))
        row = train.user_ids.tolist().index(user)
        batch = trainer.to_tensors(train.flat_batch(np.array([row, (row + 1) % train.n_users])))
        tables.append(features.dense)
        own_counts.append(model._training_counts(batch).numpy()[: len(entry[1])])
        u = model.event_utilities(batch, leave_user_out=True).numpy()
        first_event.append(u[0])  # no history yet: only the statistics could differ
    assert not np.array_equal(*tables)  # the user's clicks are in the statistics...
    np.testing.assert_array_equal(*own_counts)  # ...but in none of her own features
    np.testing.assert_allclose(*first_event, atol=1e-6)


def _distinct_counts_per_key(model, train, fold):
    """The most distinct training counts any (fold, item) pair is given across the events
    of the whole training split."""
    batch = trainer.to_tensors(train.flat_batch(np.arange(train.n_users)))
    counts = model._training_counts(batch).numpy()
    event_fold = np.repeat(fold, train.events_per_user)
    seen = {}
    for e, d in zip(*np.nonzero(train.display_mask)):
        seen.setdefault((event_fold[e], train.display[e, d]), set()).add(tuple(counts[e, d]))
    return max(len(values) for values in seen.values())


def test_out_of_fold_counts_depend_on_the_item_and_fold_only():
    """What the identity embedding could combine with a training event's counts says nothing
    of the event's own user: every event of a fold sees one value per item. Leave-one-user-out
    counts fail this (they differ between users exactly by their own clicks)."""
    dataset = tiny_dataset(n_users=40)
    train = SplitData.from_dataset(dataset).splits["train"]
    features = with_statistics(dataset.item_features, train)
    fold, fold_counts = fold_statistics(train, dataset.n_items, folds=4, seed=0)
    model = _generalising_model(features)
    assert _distinct_counts_per_key(model, train, fold) > 1  # leave-one-user-out: it leaks
    model.use_statistic_folds(fold, fold_counts)
    assert _distinct_counts_per_key(model, train, fold) == 1


# -- (b) row order and repeated rows -----------------------------------------------------------


def test_repeated_rows_give_identical_event_arrays():
    user = np.array([0, 0, 0, 0, 0])
    time = np.array([1, 1, 1, 2, 2])
    item = np.array([3, 4, 5, 4, 6])
    click = np.array([0, 0, 1, 1, 0])
    base = convert_rows("t", user, time, item, click, 7, seed=0, source="t")
    rep = [0, 1, 2, 2, 2, 3, 4, 0]  # the clicked row three times, another row twice
    repeated = convert_rows("t", user[rep], time[rep], item[rep], click[rep], 7, seed=0, source="t")
    for field in EventArrays.ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(base.events, field), getattr(repeated.events, field))


@pytest.mark.parametrize("encoder", ["PW", "LSTM"])
def test_permuting_a_display_set_permutes_the_predictions(encoder):
    behavior = [
        [0, [[1, 2, 3], [2, 4, 5, 0], [1, 3, 5, 4]], [2, -1, 3]],
        [1, [[4, 5], [3, 1]], [5, 1]],
    ]
    train = EventArrays.from_behavior(behavior, None, 4, 6)
    features = with_statistics(ItemFeatures(6), train)
    model = _generalising_model(features, encoder, set_context=True)
    # Permute every display set (the click moves with its item).
    permuted = [[u, [d[::-1] for d in displays], clicks] for u, displays, clicks in behavior]
    base = EventArrays.from_behavior(behavior, None, 4, 6)
    perm = EventArrays.from_behavior(permuted, None, 4, 6)
    # The statistics do not see the order either.
    np.testing.assert_array_equal(item_statistics(base)[0], item_statistics(perm)[0])
    for leave_user_out in (False, True):
        u = model.event_utilities(_flat(base), leave_user_out=leave_user_out).numpy()
        u_perm = model.event_utilities(_flat(perm), leave_user_out=leave_user_out).numpy()
        for e in range(base.n_events):
            by_item = dict(zip(base.display[e][base.display_mask[e]], u[e][base.display_mask[e]]))
            by_item_perm = dict(
                zip(perm.display[e][perm.display_mask[e]], u_perm[e][perm.display_mask[e]])
            )
            assert by_item.keys() == by_item_perm.keys()
            for item, value in by_item.items():
                np.testing.assert_allclose(by_item_perm[item], value, rtol=1e-5, atol=1e-6)


# -- The step view and the run folder --------------------------------------------------------


@pytest.mark.parametrize(
    "encoder,options",
    [
        ("PW", {"set_context": True}),
        ("LSTM", {"set_context": True}),
        ("LSTM", {"display_history": True}),
        ("PW", {"display_history": True, "history_features": False}),
        ("LSTM", {"choice_history": True}),
        ("PW", {"choice_history": True, "display_history": True, "history_features": False}),
        ("LSTM", {"choice_history": True, "set_summary": True}),
    ],
)
def test_sequence_and_step_views_agree_with_history_features(encoder, options):
    behavior = [
        [0, [[1, 2], [3, 4, 1], [5, 1], [0, 3, 5]], [2, -1, 5, 3]],
        [1, [[2, 3], [4, 5]], [3, 4]],
    ]
    events = EventArrays.from_behavior(behavior, None, 3, 6)
    model = _generalising_model(with_statistics(ItemFeatures(6), events), encoder, **options)
    sequence = model.event_utilities(_flat(events)).numpy()
    for row, (user, displays, clicks) in enumerate(behavior):
        state = model.initial_state(1)
        offset = int(events.event_offsets[row])
        for t, (display, click) in enumerate(zip(displays, clicks)):
            items = tf.constant([display], tf.int32)
            step = model.utilities(model.state_vector(state), items).numpy()[0]
            np.testing.assert_allclose(
                step, sequence[offset + t][: len(display)], rtol=1e-5, atol=1e-6
            )
            state = model.update_state(
                state, tf.constant([max(click, 0)]), tf.constant([click >= 0]), display=items
            )


def test_unseen_items_use_the_fallback_and_statistics_survive_the_pickle():
    train = EventArrays.from_behavior([[0, [[0, 1]], [1]]], None, 2, 4)
    features = with_statistics(
        ItemFeatures(4, dense=np.eye(4, 2, dtype=np.float32), columns=("a", "b")), train
    )
    restored = ItemFeatures.from_pickle_object(features_pickle_object(features), "x")
    side, counts = split_statistics(restored)
    assert side.columns == ("a", "b") and counts.tolist() == [[1, 0], [1, 1], [0, 0], [0, 0]]
    model = _generalising_model(features)
    model.items.identity.embeddings.assign(tf.random.normal([4, 4]))
    identity = model.items(tf.constant([0, 1, 2, 3])) - model.items.side(side.dense)
    fallback = model.items.fallback.numpy()
    # Items 2 and 3 were never shown in training: both get the fallback, 0 and 1 their own.
    np.testing.assert_allclose(identity[2:], [fallback, fallback], atol=1e-6)
    assert not np.allclose(identity[0], fallback) and not np.allclose(identity[0], identity[1])


def test_identity_dropout_falls_with_the_display_count():
    from ganrl.user_model.encoders import ItemEncoder

    encoder = ItemEncoder(
        ItemFeatures(3),
        2,
        id_dropout=0.8,
        display_counts=np.array([0.0, 5.0, 45.0]),
        count_scale=5.0,
    )
    # 0.8 * 5 / (5 + d): 0.8 unseen (and replaced anyway), 0.4 at d = 5, 0.08 at d = 45.
    np.testing.assert_allclose(encoder._drop_rate.numpy(), [0.8, 0.4, 0.08], rtol=1e-6)
    tf.keras.utils.set_random_seed(0)
    encoder(tf.constant([0]))  # builds the embedding
    encoder.identity.embeddings.assign(tf.ones([3, 2]))
    kept = tf.reduce_mean(encoder(tf.fill([4000], 1), training=True), axis=-1).numpy()
    assert abs(kept.mean() - 0.6) < 0.03  # the fallback is 0 until trained


@pytest.mark.parametrize("set_summary", [False, True])
def test_set_summary_makes_a_utility_depend_on_the_rest_of_the_set(set_summary):
    model = _generalising_model(ItemFeatures(6), set_summary=set_summary)
    state = model.state_vector(model.initial_state(1))
    u = model.utilities(
        state, tf.constant([[0, 1, 2]]), mask=tf.constant([[True, True, False]])
    ).numpy()[0]
    other = model.utilities(state, tf.constant([[0, 3]])).numpy()[0]
    padded = model.utilities(state, tf.constant([[0, 1]])).numpy()[0]
    np.testing.assert_allclose(u[:2], padded, rtol=1e-5, atol=1e-6)  # padding is not in the set
    assert np.isclose(u[0], other[0], rtol=1e-5, atol=1e-6) == (not set_summary)


@pytest.mark.parametrize("has_no_click", [False, True])
def test_taste_mixture_is_the_mean_of_its_shifted_softmaxes(has_no_click):
    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(
        dims="8",
        item_dim=4,
        rnn_hidden_dim=5,
        item_bias=True,
        taste_mixture=3,
        history_display_width=4,
    )
    model = UserModel(ItemFeatures(6), config, has_no_click=has_no_click)
    model.item_bias.embeddings.assign([[1.0], [-2.0], [0.5], [3.0], [0.0], [-1.0]])
    model.mixture_scale.bias.assign([0.5])
    state = model.state_vector(model.initial_state(2))
    items = tf.constant([[0, 1, 2], [3, 4, 5]])
    mask = tf.constant([[True, True, False], [True, True, True]])
    u = model.utilities(state, items, mask=mask)
    shifts = model.mixture_shifts(state, items)
    assert shifts.shape == (2, 3, 3) and np.abs(shifts.numpy()).max() > 0.05
    probs = tf.nn.softmax(model.choice_logits(u, mask, shifts)).numpy()
    # By hand: each component's softmax over the real items (and the no-click option).
    expected = np.zeros_like(probs)
    for k in range(3):
        logits = np.where(mask.numpy(), u.numpy() + shifts.numpy()[..., k], -np.inf)
        no_click = model.no_click_logit.numpy() if has_no_click else -np.inf
        logits = np.concatenate([logits, np.full((2, 1), no_click)], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected += e / e.sum(axis=1, keepdims=True) / 3
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    assert probs[0, 2] == 0.0  # padding

    # Unlike one softmax, the ratio of two items' probabilities depends on what else is shown.
    def ratio(display):
        d = tf.constant([display])
        logits = model.choice_logits(
            model.utilities(model.state_vector(model.initial_state(1)), d),
            tf.ones([1, len(display)], tf.bool),
            model.mixture_shifts(model.state_vector(model.initial_state(1)), d),
        )
        p = tf.nn.softmax(logits).numpy()[0]
        return p[0] / p[1]

    assert not np.isclose(ratio([0, 2]), ratio([0, 2, 3]), rtol=1e-3)
    # With no shift every component is the one softmax of the utilities.
    single = tf.nn.softmax(model.choice_logits(u, mask)).numpy()
    unshifted = tf.nn.softmax(model.choice_logits(u, mask, tf.zeros_like(shifts))).numpy()
    np.testing.assert_allclose(unshifted, single, rtol=1e-5, atol=1e-7)
