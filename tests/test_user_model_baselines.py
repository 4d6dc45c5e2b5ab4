"""User-model baselines: hand-computed scores on tiny logs, learnable patterns, the registry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ganrl.data.dataset import ClickDataset, EventArrays, ItemFeatures
from ganrl.data.item_stats import fold_of_users
from ganrl.metrics import ranking_summary
from ganrl.user_model_baselines import (
    PAPER_BASELINES,
    SCORERS,
    Scorer,
    chance_summary,
    evaluate_scorer,
    make_scorer,
    scorer_class,
)
from ganrl.user_model_baselines.features import (
    PAIR_FEATURES,
    PairFeaturizer,
    count_earlier,
    history_click_matrix,
    history_features,
    recent_clicks,
)
from ganrl.user_model_baselines.neighbours import POPULARITY_TIEBREAK
from tests.tiny_data import tiny_dataset


def events_of(behavior: list, n_items: int, max_display: int | None = None) -> EventArrays:
    width = max_display or max(len(d) for _, displays, _ in behavior for d in displays)
    return EventArrays.from_behavior(behavior, None, width, n_items)


def features_of(n_items: int) -> ItemFeatures:
    return ItemFeatures(n_items)


# -- Features ------------------------------------------------------------------------------------
def test_count_earlier_counts_same_key_strictly_before():
    # records: key 7 at events 0, 2, 2; key 3 at event 1.
    counts = count_earlier([7, 7, 7, 3], [0, 2, 2, 1], [7, 7, 7, 3, 9], [0, 2, 3, 5, 5])
    # key 7 before 0: 0; before 2: 1; before 3: 3; key 3 before 5: 1; key 9: 0.
    np.testing.assert_array_equal(counts, [0, 1, 3, 1, 0])


ONE_USER = [[0, [[3, 5], [5, 7], [5, 3, 7]], [5, 7, 3]]]


def test_history_features_by_hand():
    events = events_of(ONE_USER, n_items=8)
    h = history_features(events)
    # Event 2 shows 5, 3, 7 after clicks 5 (event 0) and 7 (event 1);
    # 5 was shown in events 0 and 1, 3 in event 0, 7 in event 1.
    np.testing.assert_array_equal(h[2, :, 0], [1, 0, 1])  # clicked_before
    np.testing.assert_array_equal(h[2, :, 1], [0, 0, 1])  # is_last_click (7)
    np.testing.assert_array_equal(h[2, :, 2], [2, 1, 1])  # shown_before
    np.testing.assert_array_equal(h[2, :, 3], [1, 0, 1])  # shown_last_event (event 1: 5, 7)
    np.testing.assert_array_equal(h[0], 0)  # nothing before the first event
    np.testing.assert_array_equal(h[1, :, 0], [1, 0, 0])  # event 1 shows 5 (clicked), 7
    assert h[0, 2].sum() == 0  # padding stays 0


def test_histories_do_not_cross_users():
    behavior = [[0, [[1, 2]], [1]], [1, [[1, 2], [1, 2]], [2, 1]]]
    events = events_of(behavior, n_items=3)
    h = history_features(events)
    np.testing.assert_array_equal(h[1], 0)  # user 1's first event: no history
    np.testing.assert_array_equal(h[2, :, 0], [0, 1])  # user 1 clicked 2 before, not 1
    np.testing.assert_array_equal(recent_clicks(events, 2), [[-1, -1], [-1, -1], [2, -1]])
    matrix = history_click_matrix(events).toarray()
    np.testing.assert_array_equal(matrix, [[0, 0, 0], [0, 0, 0], [0, 0, 1]])


def test_recent_clicks_most_recent_first():
    np.testing.assert_array_equal(
        recent_clicks(events_of(ONE_USER, 8), 3), [[-1, -1, -1], [5, -1, -1], [7, 5, -1]]
    )


def test_pair_features_out_of_fold():
    # Training: user 0 is shown {4, 6} and clicks 4; user 1 is shown {4, 6} and clicks 6.
    # Two users in 5 folds sit in two folds: each sees the other, scaled by K / (K - 1) = 5/4.
    train = events_of([[0, [[4, 6]], [4]], [1, [[6, 4]], [6]]], n_items=8)
    featurize = PairFeaturizer(train)
    assert featurize.folds == 5 and len(set(featurize.user_fold)) == 2
    log_shown, log_clicks = (
        PAIR_FEATURES.index("log_display_sets"),
        PAIR_FEATURES.index("log_clicks"),
    )
    own = featurize(train)
    # User 0's event sees only user 1: item 4 shown once, never clicked; item 6 shown, clicked.
    np.testing.assert_allclose(own[0, :, log_shown], np.log1p([1.25, 1.25]), rtol=1e-6)
    np.testing.assert_allclose(own[0, :, log_clicks], np.log1p([0, 1.25]), rtol=1e-6)
    # A new user sees both training users, unscaled: each item shown twice and clicked once.
    new = featurize(events_of([[9, [[4, 6, 5]], [5]]], n_items=8))
    np.testing.assert_allclose(new[0, :, log_shown], np.log1p([2, 2, 0]), rtol=1e-6)
    np.testing.assert_allclose(new[0, :, log_clicks], np.log1p([1, 1, 0]), rtol=1e-6)
    np.testing.assert_array_equal(new[0, :, PAIR_FEATURES.index("unseen")], [0, 0, 1])


# The pair features computed from the other users' clicks.
CLICK_STATISTICS = (
    "log_clicks",
    "click_rate_logit",
    "click_rate_logit_vs_set",
    "cooccurrence",
    "cooccurrence_vs_set",
)


def test_a_training_users_clicks_reach_no_pair_feature_of_her_fold():
    """Out of fold: the statistics a training user's events see (item counts and
    co-occurrence) do not depend on her clicks, nor on her fold-mates'; other folds' users see
    them. Leave-one-user-out statistics fail this (a fold-mate sees her clicks), and their
    difference from the totals, which a learned per-item parameter picks up, is her own click."""
    dataset = tiny_dataset(n_users=60, n_items=12, events=5, display=4, seed=4)
    train = dataset.event_arrays("train", 4)
    user = 3
    events = np.arange(train.event_offsets[user], train.event_offsets[user + 1])
    # Her click moves to another item of the same display set (the counts of clicks and
    # display sets, hence the prior click rate, stay the same).
    moved = train.clicked_pos.copy()
    moved[events] = np.where(moved[events] == 0, 1, 0)
    changed = dataclasses.replace(train, clicked_pos=moved)
    before, after = PairFeaturizer(train), PairFeaturizer(changed)
    # The same events featurised with statistics of either log: only the statistics differ.
    f_before, f_after = before(train), after(train)
    fold = np.repeat(fold_of_users(train.n_users, 5, seed=0), train.events_per_user)
    same_fold = fold == fold[events[0]]
    np.testing.assert_array_equal(f_before[same_fold], f_after[same_fold])
    other = ~same_fold
    for name in CLICK_STATISTICS:  # each changes for some other fold's event
        column = PAIR_FEATURES.index(name)
        assert not np.array_equal(f_before[other, :, column], f_after[other, :, column]), name


def test_out_of_fold_item_statistics_depend_on_the_item_and_fold_only():
    """What a learned item parameter could combine with a training event's item statistics says
    nothing of the event's user: every event of a fold sees one value per item."""
    dataset = tiny_dataset(n_users=60, n_items=12, events=5, display=4, seed=4)
    train = dataset.event_arrays("train", 4)
    features = PairFeaturizer(train)(train)
    fold = np.repeat(fold_of_users(train.n_users, 5, seed=0), train.events_per_user)
    seen = {}
    for e, d in zip(*np.nonzero(train.display_mask)):
        seen.setdefault((fold[e], train.display[e, d]), set()).add(tuple(features[e, d, :4]))
    assert max(len(values) for values in seen.values()) == 1


# -- Counting and neighbourhood baselines -------------------------------------------------------
POPULARITY_TRAIN = [[0, [[0, 1, 2]], [1]], [1, [[1, 2]], [2]], [2, [[0, 2, 3]], [2]]]


def test_most_popular_counts_training_clicks():
    scorer = make_scorer("most_popular")
    scorer.fit(events_of(POPULARITY_TRAIN, 5), features_of(5), seed=0)
    test = events_of([[7, [[0, 1, 2, 3]], [3]]], 5)
    # Clicks: item 0: 0, item 1: 1, item 2: 2, item 3: 0.
    np.testing.assert_array_equal(scorer.score(test), [[0, 1, 2, 0]])


def test_item_knn_cosine_cooccurrence_by_hand():
    # Click sets: user 0 {0, 1}, user 1 {0, 1, 2}, user 2 {2}; item 5 is never clicked.
    train = events_of(
        [
            [0, [[0, 5], [1, 5]], [0, 1]],
            [1, [[0, 5], [1, 5], [2, 5]], [0, 1, 2]],
            [2, [[2, 5]], [2]],
        ],
        n_items=6,
    )
    scorer = make_scorer("iknn")
    scorer.fit(train, features_of(6), seed=0)
    # n_0 = n_1 = n_2 = 2 users; co(0,1) = 2 -> cos 1; co(0,2) = co(1,2) = 1 -> cos 1/2.
    test = events_of([[9, [[0, 3], [1, 2, 3, 0]], [0, 1]]], n_items=6)
    scores = scorer.score(test)
    # Event 1 follows the click on 0: item 1 -> 1, item 2 -> 0.5, item 3 -> 0, item 0 -> 0
    # (an item is not its own neighbour); popularity (2 clicks of 2 at most) adds 1e-6.
    np.testing.assert_allclose(scores[1], [1 + 1e-6, 0.5 + 1e-6, 0, 1e-6], atol=1e-12)
    # Event 0 has no history: only the popularity tie-break (item 0: 2/2, item 3: 0).
    np.testing.assert_allclose(scores[0, :2], [POPULARITY_TIEBREAK, 0.0], atol=1e-12)


def test_cooccurrence_leaves_the_training_user_out():
    from ganrl.user_model_baselines.features import Cooccurrence

    # Click sets: user 0 {0, 1}, user 1 {0, 1, 2}, user 2 {2}.
    train = events_of(
        [
            [0, [[0, 5], [1, 2, 5]], [0, 1]],
            [1, [[0, 5], [1, 2, 5], [2, 5]], [0, 1, 2]],
            [2, [[2, 5]], [2]],
        ],
        n_items=6,
    )
    # Three users dealt into 5 folds sit alone in theirs: out of fold is without the user.
    scores = Cooccurrence(train).scores(train)
    # User 0, event 1 (history {0}), without user 0: co(0,1) = 1, n_0 = n_1 = 1 -> 1;
    # co(0,2) = 1 (user 1), n_0 = 1, n_2 = 2 -> 1/sqrt(2); item 5: never clicked -> 0.
    np.testing.assert_allclose(scores[1], [1.0, 1 / np.sqrt(2), 0.0], atol=1e-12)
    # User 1, event 1 (history {0}), without user 1: co(0,1) = 1, n_0 = n_1 = 1 -> 1;
    # co(0,2) = 0 -> 0.
    np.testing.assert_allclose(scores[3], [1.0, 0.0, 0.0], atol=1e-12)
    # User 1, event 2 (history {0, 1}), item 2: co(0,2) = co(1,2) = 0 without user 1.
    assert scores[4, 0] == 0.0


def test_session_knn_by_hand_and_never_its_own_neighbour():
    # Click sets: user 0 {0, 1}, user 1 {2, 3}.
    train = events_of([[0, [[0, 9], [1, 2]], [0, 1]], [1, [[2, 9], [3, 9]], [2, 3]]], 10)
    scorer = make_scorer("scknnc", neighbours=1, cooccurrence_weight=0.0)
    scorer.fit(train, features_of(10), seed=0)
    test = events_of([[5, [[0, 9], [1, 2, 3]], [0, 1]]], 10)
    # History {0}: cos with user 0 = 1 / sqrt(1 * 2), with user 1 = 0; the one neighbour is
    # user 0, who clicked item 1 (not 2 or 3).
    pop = POPULARITY_TIEBREAK * 1.0  # every clicked item has 1 click (max 1)
    np.testing.assert_allclose(scorer.score(test)[1], [1 / np.sqrt(2) + pop, pop, pop], atol=1e-12)
    # User 0's own second event (history {0}) may not use user 0 as a neighbour.
    own = scorer.score(train)
    assert own[1, 0] == pytest.approx(pop)


def test_chance_is_the_expected_random_ranking():
    events = events_of([[0, [[0, 1], [0, 1, 2, 3]], [1, 3]]], 4)
    chance = chance_summary(events)
    # Sizes 2 and 4: prec@1 = (1/2 + 1/4) / 2, prec@2 = (1 + 1/2) / 2.
    assert chance == pytest.approx({"prec1": 0.375, "prec2": 0.75})
    scorer = make_scorer("chance")
    scorer.fit(events, features_of(4), 0)
    assert ranking_summary(
        scorer.score(events), events.display_mask, events.clicked_pos
    ) == pytest.approx(chance)


# -- Learned baselines: an obvious signal ------------------------------------------------------
def repeat_favourite_log(n_users: int, seed: int, n_items: int = 400) -> list:
    """Each user has her own favourite item, shown in every display set among 2-4 random
    others, and always clicks it: from the second event on, "clicked before" gives the click,
    while item ids and popularity say nothing (every favourite belongs to one user)."""
    rng = np.random.default_rng(seed)
    favourites = rng.permutation(n_items)[:n_users]
    behavior = []
    for user, favourite in enumerate(favourites):
        displays, clicks = [], []
        for _ in range(4):
            others = rng.choice(
                np.setdiff1d(np.arange(n_items), favourites), size=rng.integers(2, 5), replace=False
            )
            shown = np.append(others, favourite)
            rng.shuffle(shown)
            displays.append([int(i) for i in shown])
            clicks.append(int(favourite))
        behavior.append([user, displays, clicks])
    return behavior


@pytest.mark.parametrize("name", ["wd_lr", "xgboost", "dfm", "wd_ccf"])
def test_feature_baselines_learn_clicked_before(name):
    behavior = repeat_favourite_log(90, seed=1)
    train = EventArrays.from_behavior(behavior, list(range(60)), 5, 400)
    test = EventArrays.from_behavior(behavior, list(range(60, 90)), 5, 400)
    options = {"min_samples_leaf": 5} if name == "xgboost" else {}
    scorer = make_scorer(name, **options)
    scorer.fit(train, features_of(400), seed=0)
    later = np.ones(test.n_events, dtype=bool)
    later[test.event_offsets[:-1]] = False  # events after the first of each user
    scores = scorer.score(test)
    summary = ranking_summary(scores[later], test.display_mask[later], test.clicked_pos[later])
    chance = chance_summary(test)["prec1"]  # about 1/4
    assert summary["prec1"] > 0.9 > chance + 0.5


def learnable_dataset() -> ClickDataset:
    # Users always click the lowest-numbered displayed item: low items are popular.
    return tiny_dataset(n_users=80, n_items=12, events=5, display=4, seed=3)


@pytest.mark.parametrize("name", [n for n in SCORERS if n != "chance"])
def test_every_baseline_beats_chance_on_a_learnable_log(name):
    dataset = learnable_dataset()
    result = evaluate_scorer(name, dataset, seed=0)
    chance = chance_summary(dataset.event_arrays("test", dataset.max_display()))
    assert set(result) == {"vali", "test", "fit_seconds"}
    assert result["test"]["prec1"] > chance["prec1"] + 0.15
    assert result["test"]["prec2"] > chance["prec2"]


@pytest.mark.parametrize("name", list(SCORERS))
def test_scores_follow_items_not_positions(name):
    """Shape [E, D], finite on real items, and permuting a display set permutes its scores."""
    dataset = learnable_dataset()
    train = dataset.event_arrays("train", 4)
    scorer = make_scorer(name)
    scorer.fit(train, dataset.item_features, seed=0)
    test = dataset.event_arrays("test", 4)
    scores = scorer.score(test)
    assert scores.shape == test.display.shape
    assert np.isfinite(scores[test.display_mask]).all()
    rng = np.random.default_rng(0)
    sizes = test.display_mask.sum(axis=1)
    perm = np.tile(np.arange(4), (test.n_events, 1))
    for e, size in enumerate(sizes):  # tiny: a loop over 100 events in a test
        perm[e, :size] = rng.permutation(size)
    rows = np.arange(test.n_events)[:, None]
    shuffled = EventArrays(
        user_ids=test.user_ids,
        event_offsets=test.event_offsets,
        display=test.display[rows, perm],
        display_mask=test.display_mask[rows, perm],
        clicked_pos=np.argsort(perm, axis=1)[np.arange(test.n_events), test.clicked_pos].astype(
            np.int32
        ),
        n_items=test.n_items,
    )
    np.testing.assert_allclose(
        scorer.score(shuffled)[test.display_mask],
        scores[rows, perm][test.display_mask],
        rtol=1e-5,
        atol=1e-6,
    )


def test_session_rnn_learns_popular_items():
    dataset = learnable_dataset()
    scorer = make_scorer("srnn", max_epochs=30)
    train = dataset.event_arrays("train", 4)
    scorer.fit(train, dataset.item_features, seed=0)
    assert 1 <= scorer.history.best_epoch <= len(scorer.history.train_loss)
    # Item 0 is clicked whenever shown and item 11 never: the first displays them as the
    # best and the worst.
    test = EventArrays.from_behavior([[0, [[11, 5, 0]], [0]]], None, 4, 12)
    scores = scorer.score(test)[0, :3]
    assert scores[2] > scores[1] > scores[0]


# -- Registry and evaluation -------------------------------------------------------------------
def test_registry_resolves_every_name_to_a_scorer():
    assert set(PAPER_BASELINES) <= set(SCORERS)
    for name in SCORERS:
        assert issubclass(scorer_class(name), Scorer)
    with pytest.raises(KeyError, match="unknown baseline 'nope'"):
        make_scorer("nope")


def test_fit_seed_makes_neural_baselines_repeatable():
    dataset = learnable_dataset()
    train, test = dataset.event_arrays("train", 4), dataset.event_arrays("test", 4)
    runs = []
    for _ in range(2):
        scorer = make_scorer("wd_ccf", max_epochs=3)
        scorer.fit(train, dataset.item_features, seed=5)
        runs.append(scorer.score(test))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in SCORERS if n != "chance"])
def test_no_click_events_are_handled(name):
    dataset = tiny_dataset(n_users=40, n_items=12, events=4, display=4, no_click_every=3, seed=2)
    train, test = dataset.event_arrays("train", 4), dataset.event_arrays("test", 4)
    assert (train.clicked_pos < 0).any()
    scorer = make_scorer(name)
    scorer.fit(train, dataset.item_features, seed=0)
    scores = scorer.score(test)
    assert np.isfinite(scores[test.display_mask]).all()
    summary = ranking_summary(scores, test.display_mask, test.clicked_pos)
    assert summary["prec1"] > chance_summary(test)["prec1"]


# -- The neural training loop ------------------------------------------------------------------
def test_epoch_batches_and_holdout_users():
    from ganrl.user_model_baselines.neural import epoch_batches, holdout_users

    batches = epoch_batches(10, 4, np.random.default_rng(0))
    # ceil(10 / 4) = 3 batches of 4: every row once, plus 2 rows again to fill the last.
    assert [len(b) for b in batches] == [4, 4, 4]
    assert set(np.concatenate(batches)) == set(range(10))
    assert holdout_users(100, 0.2, seed=0).sum() == 20
    assert not holdout_users(10, 0.2, seed=0).any()  # 2 < MIN_HOLDOUT_USERS: no hold-out


def test_fit_model_keeps_the_best_held_out_epoch():
    import tensorflow as tf

    from ganrl.user_model_baselines.neural import FitConfig, fit_model, softmax_choice_loss

    rng = np.random.default_rng(0)
    n, width = 200, 3
    arrays = {
        "features": rng.normal(size=(n, width, 2)).astype(np.float32),
        "display_mask": np.ones((n, width), dtype=bool),
        "clicked_pos": rng.integers(0, width, n).astype(np.int32),
    }  # pure noise
    layer = tf.keras.layers.Dense(1, kernel_initializer="zeros")
    model = tf.keras.Sequential([layer])

    def utilities(batch):
        return tf.squeeze(model(batch["features"]), -1)

    def loss(u, batch):
        return softmax_choice_loss(
            u, batch["display_mask"], batch["clicked_pos"], tf.ones(tf.shape(u)[:1], tf.bool), None
        )

    held = np.arange(n) >= 150
    history = fit_model(
        model,
        utilities,
        loss,
        arrays,
        held,
        FitConfig(max_epochs=8, batch_size=10, learning_rate=0.5, patience=8),
        seed=0,
    )
    holdout = {k: tf.constant(v[held]) for k, v in arrays.items()}
    assert len(history.holdout) == 8
    assert history.best_epoch == int(np.argmin(history.holdout)) + 1
    assert float(loss(utilities(holdout), holdout)) == pytest.approx(min(history.holdout), rel=1e-5)
