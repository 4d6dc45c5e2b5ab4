"""Baselines on per-(event, item) features with scikit-learn: gradient-boosted trees (the
paper's XGBOOST) and the wide part of wide-and-deep, a logistic regression (W&D-LR).

Both treat each displayed item as one example labelled clicked / not clicked, with the
features of `ganrl.user_model_baselines.features.PairFeaturizer` (training statistics, out of
fold for a training event, the user's history of the item, the item against its display set);
the score is the predicted log-odds of a click. By default they learn from the display sets
that have a click (`clicked_only`): prec@k asks which item is picked given a click, and in a
no-click event (on MovieLens, the rated item of a low rating) every item is a negative, which
teaches the opposite of that ranking.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ganrl.data.dataset import EventArrays, ItemFeatures
from ganrl.user_model_baselines.base import Scorer
from ganrl.user_model_baselines.features import PairFeaturizer, Standardizer, click_labels


def training_pairs(train: EventArrays, clicked_only: bool) -> np.ndarray:
    """`[E, D]` bool: the (event, item) pairs to learn from (of events with a click only, when
    `clicked_only`)."""
    mask = np.asarray(train.display_mask, dtype=bool)
    return mask & (train.clicked_pos >= 0)[:, None] if clicked_only else mask


class GradientBoosting(Scorer):
    """Histogram gradient-boosted trees (`sklearn.ensemble.HistGradientBoostingClassifier`),
    the stand-in for XGBoost: same model family, no extra dependency."""

    def __init__(
        self,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        clicked_only: bool = True,
    ):
        self.clicked_only = clicked_only
        self.options = dict(
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf,
            l2_regularization=l2_regularization,
        )

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.featurizer = PairFeaturizer.from_item_features(train, item_features, seed)
        mask = training_pairs(train, self.clicked_only)
        self.model = HistGradientBoostingClassifier(
            early_stopping=False, random_state=seed, **self.options
        )
        self.model.fit(self.featurizer(train)[mask], click_labels(train)[mask])

    def score(self, events: EventArrays) -> np.ndarray:
        mask = np.asarray(events.display_mask, dtype=bool)
        out = np.zeros(mask.shape)
        if mask.any():
            out[mask] = self.model.decision_function(self.featurizer(events)[mask])
        return out


class WideLogisticRegression(Scorer):
    """W&D-LR: L2-regularised logistic regression on the wide features, the standardised
    pair features plus a one-hot item id (`item_ids`), whose weight stays 0 for items never
    shown in training.

    Args:
      inverse_regularization: scikit-learn's C.
      item_ids: whether the one-hot item id is a feature.
    """

    def __init__(
        self, inverse_regularization: float = 1.0, item_ids: bool = True, clicked_only: bool = True
    ):
        self.inverse_regularization = inverse_regularization
        self.item_ids = item_ids
        self.clicked_only = clicked_only

    def design(
        self, events: EventArrays, mask: np.ndarray, features: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """`[pairs, F (+ n_items)]` rows of the (event, item) pairs of `mask [E, D]`, in mask
        order (`features`: the events' pair features when already computed)."""
        features = self.featurizer(events) if features is None else features
        dense = sp.csr_matrix(self.standardize(features)[mask])
        if not self.item_ids:
            return dense
        items = events.display[mask]
        one_hot = sp.csr_matrix(
            (np.ones(len(items)), (np.arange(len(items)), items)),
            shape=(len(items), events.n_items),
        )
        return sp.hstack([dense, one_hot], format="csr")

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        self.featurizer = PairFeaturizer.from_item_features(train, item_features, seed)
        mask = training_pairs(train, self.clicked_only)
        features = self.featurizer(train)
        self.standardize = Standardizer.fit(features, mask)
        self.model = LogisticRegression(
            C=self.inverse_regularization, max_iter=2000, random_state=seed
        )
        self.model.fit(self.design(train, mask, features), click_labels(train)[mask])

    def score(self, events: EventArrays) -> np.ndarray:
        mask = np.asarray(events.display_mask, dtype=bool)
        out = np.zeros(mask.shape)
        if mask.any():
            out[mask] = self.model.decision_function(self.design(events, mask))
        return out
