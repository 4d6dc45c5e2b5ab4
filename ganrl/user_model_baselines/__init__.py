"""User-model baselines: each scores the items of every display set (`Scorer`).

Registry names (`SCORERS`): chance, most_popular, iknn, scknnc, xgboost, wd_lr, srnn, dfm,
wd_ccf. `make_scorer(name, **options)` builds one (TensorFlow is imported only for srnn, dfm
and wd_ccf); `evaluate_scorer(name, dataset, seed)` fits it on the training split and returns
validation and test prec@1 / prec@2.
"""

from ganrl.user_model_baselines.base import (
    PAPER_BASELINES,
    SCORERS,
    Scorer,
    chance_summary,
    evaluate_scorer,
    make_scorer,
    scorer_class,
)

__all__ = [
    "PAPER_BASELINES",
    "SCORERS",
    "Scorer",
    "chance_summary",
    "evaluate_scorer",
    "make_scorer",
    "scorer_class",
]
