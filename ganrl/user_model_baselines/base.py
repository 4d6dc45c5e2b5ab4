"""The scorer interface of the user-model baselines, their registry and their evaluation.

A scorer gives every item of every display set a score; ranking a display set by it yields
prec@1 / prec@2 (`ganrl.metrics`, ties shared fractionally, never broken by position). The
registry maps names to "module:Class" so that `import ganrl.user_model_baselines` stays free of
TensorFlow; `make_scorer` imports a scorer's module when it is asked for.
"""

from __future__ import annotations

import abc
import importlib
import time

import numpy as np

from ganrl.data.dataset import ClickDataset, EventArrays, ItemFeatures, SplitData
from ganrl.metrics import ranking_summary

SCORERS: dict[str, str] = {
    "chance": "ganrl.user_model_baselines.neighbours:Chance",
    "most_popular": "ganrl.user_model_baselines.neighbours:MostPopular",
    "iknn": "ganrl.user_model_baselines.neighbours:ItemKNN",
    "scknnc": "ganrl.user_model_baselines.neighbours:SessionKNN",
    "xgboost": "ganrl.user_model_baselines.tabular:GradientBoosting",
    "wd_lr": "ganrl.user_model_baselines.tabular:WideLogisticRegression",
    "srnn": "ganrl.user_model_baselines.neural:SessionRNN",
    "dfm": "ganrl.user_model_baselines.neural:DeepFM",
    "wd_ccf": "ganrl.user_model_baselines.neural:WideDeepCCF",
}
# The paper's baselines plus most-popular, in the order of its table ("chance" is the
# expected value of a random ranking).
PAPER_BASELINES = ("most_popular", "iknn", "srnn", "scknnc", "xgboost", "dfm", "wd_lr", "wd_ccf")


class Scorer(abc.ABC):
    """Scores the displayed items of events; fitted on the training split only."""

    @abc.abstractmethod
    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        """Learns from the training users' events.

        Args:
          train: the training split.
          item_features: the items' features (dense side features may be used; any `train:`
            statistics columns are ignored, statistics come from `train`).
          seed: seeds every random choice.
        """

    @abc.abstractmethod
    def score(self, events: EventArrays) -> np.ndarray:
        """`[E, D]` float scores of `events.display` (values on padding are arbitrary).

        A user's history is the clicked items of her earlier events in `events`.
        """


def scorer_class(name: str) -> type[Scorer]:
    """The class registered as `name`."""
    if name not in SCORERS:
        raise KeyError(f"unknown baseline {name!r}; expected one of {sorted(SCORERS)}")
    module, cls = SCORERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_scorer(name: str, **options) -> Scorer:
    """A new scorer `name` built with its constructor `options`."""
    return scorer_class(name)(**options)


def chance_summary(events: EventArrays) -> dict[str, float]:
    """Expected prec@1 / prec@2 of a uniformly random ranking: mean of min(k, |A|) / |A| over
    the events with a click."""
    sizes = np.asarray(events.display_mask, dtype=bool).sum(axis=1)[events.clicked_pos >= 0]
    if len(sizes) == 0:
        return {"prec1": float("nan"), "prec2": float("nan")}
    return {f"prec{k}": float(np.mean(np.minimum(k, sizes) / sizes)) for k in (1, 2)}


def evaluate_scorer(name: str, data: ClickDataset | SplitData, seed: int, **options) -> dict:
    """Fits baseline `name` on the training split and evaluates it.

    Args:
      name: a key of `SCORERS`.
      data: the dataset (its own user split) or its `SplitData`.
      seed: the scorer's seed.
      **options: constructor options of the scorer.

    Returns:
      `{"vali": {"prec1", "prec2"}, "test": {"prec1", "prec2"}, "fit_seconds": float}`.
    """
    splits = data if isinstance(data, SplitData) else SplitData.from_dataset(data)
    scorer = make_scorer(name, **options)
    tic = time.perf_counter()
    scorer.fit(splits.splits["train"], splits.item_features, seed)
    fit_seconds = time.perf_counter() - tic
    out: dict = {"fit_seconds": fit_seconds}
    for split in ("vali", "test"):
        events = splits.splits[split]
        out[split] = ranking_summary(scorer.score(events), events.display_mask, events.clicked_pos)
    return out
