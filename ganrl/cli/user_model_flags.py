"""The user-model flags of `main_gan_user_model.py` and `main_table.py` (entry points only).

They keep the original code's names and meanings; `settings_from_flags` reads them into the
flat dict that `ganrl.train.flat_settings.train_config` turns into a frozen `TrainConfig`.
"""

from __future__ import annotations

from typing import Any

from absl import flags

from ganrl.train.flat_settings import train_config
from ganrl.train.user_model import TrainConfig

FLAGS = flags.FLAGS
# The original code's flags.
flags.DEFINE_string("data_folder", "dropbox", "Folder of the processed datasets.")
flags.DEFINE_string("dataset", "yelp", "Dataset name: reads DATA_FOLDER/NAME.pkl.")
flags.DEFINE_string(
    "save_dir", "", "Run folder (default runs/{dataset}__{user_model}__{regularizer}__{seed})."
)
flags.DEFINE_boolean("resplit", False, "Draw a new 50/25/25 user split with --seed.")
flags.DEFINE_float(
    "train_share",
    1.0,
    "Fit the model to this share of the training users, a random subset drawn with --seed "
    "(validation and test users unchanged): ensemble members on different subsets.",
)
flags.DEFINE_float("learning_rate", 0.0005, "Adam learning rate.")
flags.DEFINE_integer("batch_size", 50, "Users per training batch.")
flags.DEFINE_integer(
    "num_itrs", 0, "Training iterations (0: --num_epochs passes over the training users)."
)
flags.DEFINE_float(
    "num_epochs", 100.0, "With --num_itrs=0, the training length in passes over the training users."
)
flags.DEFINE_integer(
    "early_stop",
    10,
    "Stop once this many evaluations in a row have not improved the validation loss (0: never).",
)
flags.DEFINE_integer("rnn_hidden_dim", 20, "LSTM units.")
flags.DEFINE_integer("pw_dim", 4, "Position-weight columns (PW).")
flags.DEFINE_integer("pw_band_size", 20, "Past clicks seen by PW.")
flags.DEFINE_string("dims", "64-64", "Hidden sizes of the utility MLP.")
flags.DEFINE_enum("user_model", "LSTM", ["LSTM", "PW"], "History encoder.")
# Ours.
flags.DEFINE_integer("seed", 0, "Random seed (initialisation, data order, resplit).")
flags.DEFINE_integer("eval_every", 50, "Validate every this many iterations.")
flags.DEFINE_enum(
    "regularizer",
    "entropy",
    ["entropy", "L2"],
    "entropy: maximum likelihood; L2: adversarial fine-tuning.",
)
flags.DEFINE_string("pretrain_dir", "", "For L2: the entropy run folder to start from.")
flags.DEFINE_enum(
    "pretrain_checkpoint",
    "prec1",
    ["loss", "prec1", "prec2"],
    "For L2: which best-by-validation checkpoint of --pretrain_dir to start from.",
)
flags.DEFINE_float(
    "start_margin",
    1.0,
    "For L2: a fine-tuned checkpoint replaces the "
    "pre-trained start as the best by prec@k only if it is better on "
    "validation by more than this many standard errors (0: any gain).",
)
flags.DEFINE_enum(
    "pw_activation",
    None,
    ["sigmoid", "linear"],
    "PW's squashing of its position-weighted sums (sigmoid: the paper's).",
)
flags.DEFINE_integer(
    "rnn_skip",
    None,
    "LSTM: a learned position-weighted sum of the last "
    "this many click embeddings beside its output (0: none).",
)
flags.DEFINE_boolean(
    "mlp_item",
    None,
    "Whether the utility MLP sees the item's embedding (else only its context features).",
)
flags.DEFINE_boolean("item_bias", None, "A learned scalar per item in its utility.")
flags.DEFINE_integer("item_dim", 32, "Item embedding width.")
flags.DEFINE_boolean("bilinear", True, "Add a bilinear state-item term to the utility MLP.")
flags.DEFINE_enum(
    "item_features",
    "onehot",
    ["onehot", "generalising"],
    "onehot: the paper's item features; generalising: plus item statistics of "
    "the training users, identity dropout with a fallback and the user's "
    "history of each item (the options below default to the setting's).",
)
flags.DEFINE_enum(
    "item_init",
    None,
    ["random", "coclick"],
    "How training starts the item identity embedding: random, or from the training "
    "users' co-click PPMI (items clicked by the same users start close).",
)
flags.DEFINE_float(
    "id_dropout",
    None,
    "Share of item occurrences whose identity embedding "
    "is replaced by a learned fallback while training.",
)
flags.DEFINE_boolean(
    "display_history",
    None,
    "Add to the state the mean embedding of the "
    "items the user was shown and passed over, and her no-click share.",
)
flags.DEFINE_boolean(
    "choice_history",
    None,
    "Add to the state the evidence of the user's "
    "earlier choices under the model's own prediction: each clicked item's "
    "embedding less the predicted mean embedding of its display set.",
)
flags.DEFINE_boolean(
    "history_features",
    None,
    "Per-item features of the user's own history "
    "(clicked before, last click, shown before, in the previous set).",
)
flags.DEFINE_boolean(
    "set_context",
    None,
    "Each item's rank within its display set by "
    "training popularity and click rate (needs item statistics).",
)
flags.DEFINE_boolean(
    "set_summary",
    None,
    "Let each utility see the mean embedding of "
    "its display set (a mixture-of-softmaxes choice depends on the set).",
)
flags.DEFINE_integer(
    "taste_mixture",
    None,
    "K > 0: the choice is a mixture of K softmaxes over the utilities shifted along a "
    "learned taste uncertainty (0: one softmax).",
)
flags.DEFINE_integer(
    "taste_posterior",
    None,
    "K > 0: K learned user types, weighted by the likelihood of the user's earlier "
    "choices (Bayes' rule); the choice mixes the types' softmaxes (0: off).",
)
flags.DEFINE_integer(
    "taste_evidence",
    None,
    "The type posterior counts at most this many earlier choices: beyond them, their mean "
    "log-likelihood times this (0: all).",
)
flags.DEFINE_boolean(
    "leave_user_out", True, "Take a training batch's own events out of the item statistics."
)
flags.DEFINE_integer(
    "statistic_folds",
    5,
    "Out-of-fold item statistics on training batches: "
    "K folds of training users (0: leave-one-user-out instead).",
)
flags.DEFINE_float("rate_prior_strength", 5.0, "Pseudo display sets of the click-rate prior.")
flags.DEFINE_float("dropout", 0.0, "Dropout on item embeddings and hidden layers.")
flags.DEFINE_float("l2_reg", 0.0, "L2 penalty coefficient on the weights.")
flags.DEFINE_float("weight_decay", 0.0, "Adam's decoupled weight decay.")
flags.DEFINE_integer(
    "lr_plateau",
    0,
    "After this many evaluations without a better validation loss, go back to the best-loss "
    "weights and multiply the learning rate by --lr_plateau_factor (0: never).",
)
flags.DEFINE_float("lr_plateau_factor", 0.3, "What each learning-rate reduction multiplies by.")
flags.DEFINE_integer("lr_plateau_times", 2, "At most this many learning-rate reductions.")
flags.DEFINE_float(
    "ema",
    0.0,
    "Validate, keep and test an exponential moving average of the weights with this "
    "momentum per iteration (0: the weights themselves).",
)
flags.DEFINE_integer("max_events", 0, "Keep at most this many recent events per user (0: all).")


def settings_from_flags() -> dict[str, Any]:
    """Every flag of this module by name (a model option not given is None)."""
    return {flag.name: flag.value for flag in FLAGS.get_flags_for_module(__name__)}


def config_from_flags() -> TrainConfig:
    """The flags as a checked `TrainConfig` (raises `ValueError` naming a bad flag)."""
    return train_config(settings_from_flags())
