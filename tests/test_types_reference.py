"""The types world's reference learner (`benchmarks/types_reference.py`): with the world's true
parts its predictions are the generator's Bayes limit, and fitted on a small world it learns
the avoidance of recent clicks and ranks above popularity."""

import dataclasses

import numpy as np
import pytest

from benchmarks import reference_mle, types_reference, types_world
from ganrl.data.dataset import load_split_data
from ganrl.data.pipeline import PrepareConfig, prepare
from ganrl.metrics import ranking_summary
from ganrl.user_model_baselines.neighbours import training_clicks

SEED, ITEMS, GROUPS, TYPES = 5, 60, 6, 4


def small_world(folder, users: int) -> dict:
    limits = types_world.generate(str(folder), "types", SEED, users, ITEMS, GROUPS, TYPES)
    prepare("types", PrepareConfig(data_folder=str(folder), seed=0))
    return limits


def test_true_parts_give_the_bayes_limit(tmp_path):
    limits = small_world(tmp_path, users=300)
    group, quality, taste = types_world.draw_world(
        np.random.default_rng(SEED), ITEMS, GROUPS, TYPES
    )
    model = types_reference.TypesChoiceModel(
        ITEMS, TYPES, GROUPS, has_no_click=True, scale=0.1, seed=0
    )
    one_hot = np.eye(GROUPS)
    model.item_vectors.assign(one_hot[group])
    # Type k's vector: its taste of each group's items (3 for a liked group, else 0).
    liked = np.zeros((TYPES, GROUPS))
    liked[:, group] = taste
    model.type_vectors.assign(liked)
    model.source.assign(2.0 * one_hot[(group + 1) % GROUPS])
    model.target.assign(one_hot[group])
    model.item_bias.assign(quality)
    model.again.assign(-2.5)
    model.no_click.assign(types_world.NO_CLICK)
    config = reference_mle.ReferenceConfig(history="lag", history_lags=types_world.RECENT)
    learner = reference_mle.ReferenceLearner(ITEMS, config, True, model)
    test = load_split_data(str(tmp_path), "types").splits["test"]
    result = learner.evaluate(reference_mle.user_tensors(test, config.history_depth))
    assert limits["test_clicks"] > 100
    assert result["prec1"] == pytest.approx(limits["bayes_prec1"], abs=1e-9)


@pytest.mark.slow
def test_fitted_learner_learns_the_avoidance_and_beats_popularity(tmp_path):
    small_world(tmp_path, users=3000)
    config = reference_mle.ReferenceConfig(
        history="lag", history_lags=types_world.RECENT, feature_dim=GROUPS, samples=TYPES
    )
    results = reference_mle.run(
        str(tmp_path),
        "types",
        dataclasses.replace(config, learning_rate=0.03),
        make_model=lambda n, no_click: types_reference.TypesChoiceModel(
            n, TYPES, GROUPS, no_click, scale=0.1, seed=0
        ),
    )
    splits = load_split_data(str(tmp_path), "types").splits
    test = splits["test"]
    popularity = ranking_summary(
        training_clicks(splits["train"])[test.display], test.display_mask, test.clicked_pos
    )["prec1"]
    assert results["test"]["prec1"] > popularity + 0.03, (results["test"], popularity)
    assert results["fitted"]["again_weight"] < -1.0, results["fitted"]
