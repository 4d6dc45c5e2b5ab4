"""Trains and evaluates a generative adversarial user model (Chen et al., ICML 2019).

Flags keep the original code's names and meanings; they become a frozen `TrainConfig` that
is passed down. Examples:

  python experiment_user_model/main_gan_user_model.py --dataset=yelp --user_model=LSTM
  python experiment_user_model/main_gan_user_model.py --dataset=yelp --regularizer=L2 \
      --pretrain_dir=runs/yelp__LSTM__entropy__0 --num_itrs=5000
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import load_split_data  # noqa: E402
from ganrl.train.distribute import make_strategy  # noqa: E402
from ganrl.train.user_model import (  # noqa: E402
    TrainConfig, TrainingDivergedError, UserModelRunner)
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig  # noqa: E402

FLAGS = flags.FLAGS
# The original code's flags.
flags.DEFINE_string("data_folder", "dropbox", "Folder of the processed datasets.")
flags.DEFINE_string("dataset", "yelp", "Dataset name: reads DATA_FOLDER/NAME.pkl.")
flags.DEFINE_string("save_dir", "", "Run folder (default runs/{dataset}__{user_model}__"
                    "{regularizer}__{seed}).")
flags.DEFINE_boolean("resplit", False, "Draw a new 50/25/25 user split with --seed.")
flags.DEFINE_float("learning_rate", 0.0005, "Adam learning rate.")
flags.DEFINE_integer("batch_size", 50, "Users per training batch.")
flags.DEFINE_integer("num_itrs", 0, "Training iterations (0: --num_epochs passes over the "
                     "training users).")
flags.DEFINE_float("num_epochs", 100.0, "With --num_itrs=0, the training length in passes over "
                   "the training users.")
flags.DEFINE_integer("early_stop", 10, "Stop once this many evaluations in a row have not "
                     "improved the validation loss (0: never).")
flags.DEFINE_integer("rnn_hidden_dim", 20, "LSTM units.")
flags.DEFINE_integer("pw_dim", 4, "Position-weight columns (PW).")
flags.DEFINE_integer("pw_band_size", 20, "Past clicks seen by PW.")
flags.DEFINE_string("dims", "64-64", "Hidden sizes of the utility MLP.")
flags.DEFINE_enum("user_model", "LSTM", ["LSTM", "PW"], "History encoder.")
# Ours.
flags.DEFINE_integer("seed", 0, "Random seed (initialisation, data order, resplit).")
flags.DEFINE_integer("eval_every", 50, "Validate every this many iterations.")
flags.DEFINE_enum("regularizer", "entropy", ["entropy", "L2"],
                  "entropy: maximum likelihood; L2: adversarial fine-tuning.")
flags.DEFINE_string("pretrain_dir", "", "For L2: the entropy run folder to start from.")
flags.DEFINE_enum("pretrain_checkpoint", "prec1", ["loss", "prec1", "prec2"],
                  "For L2: which best-by-validation checkpoint of --pretrain_dir to start from.")
flags.DEFINE_float("start_margin", 1.0, "For L2: a fine-tuned checkpoint replaces the "
                   "pre-trained start as the best by prec@k only if it is better on "
                   "validation by more than this many standard errors (0: any gain).")
flags.DEFINE_enum("pw_activation", None, ["sigmoid", "linear"], "PW's squashing of its "
                  "position-weighted sums (sigmoid: the paper's).")
flags.DEFINE_integer("rnn_skip", None, "LSTM: a learned position-weighted sum of the last "
                     "this many click embeddings beside its output (0: none).")
flags.DEFINE_boolean("mlp_item", None, "Whether the utility MLP sees the item's embedding "
                     "(else only its context features).")
flags.DEFINE_boolean("item_bias", None, "A learned scalar per item in its utility.")
flags.DEFINE_integer("item_dim", 32, "Item embedding width.")
flags.DEFINE_boolean("bilinear", True, "Add a bilinear state-item term to the utility MLP.")
flags.DEFINE_enum("item_features", "onehot", ["onehot", "generalising"],
                  "onehot: the paper's item features; generalising: plus item statistics of "
                  "the training users, identity dropout with a fallback and the user's "
                  "history of each item (the options below default to the setting's).")
flags.DEFINE_float("id_dropout", None, "Share of item occurrences whose identity embedding "
                   "is replaced by a learned fallback while training.")
flags.DEFINE_boolean("display_history", None, "Add to the state the mean embedding of the "
                     "items the user was shown and passed over, and her no-click share.")
flags.DEFINE_boolean("choice_history", None, "Add to the state the evidence of the user's "
                     "earlier choices under the model's own prediction: each clicked item's "
                     "embedding less the predicted mean embedding of its display set.")
flags.DEFINE_boolean("history_features", None, "Per-item features of the user's own history "
                     "(clicked before, last click, shown before, in the previous set).")
flags.DEFINE_boolean("set_context", None, "Each item's rank within its display set by "
                     "training popularity and click rate (needs item statistics).")
flags.DEFINE_boolean("set_summary", None, "Let each utility see the mean embedding of "
                     "its display set (a mixture-of-softmaxes choice depends on the set).")
flags.DEFINE_boolean("leave_user_out", True, "Take a training batch's own events out of the "
                     "item statistics.")
flags.DEFINE_integer("statistic_folds", 5, "Out-of-fold item statistics on training batches: "
                     "K folds of training users (0: leave-one-user-out instead).")
flags.DEFINE_float("rate_prior_strength", 5.0, "Pseudo display sets of the click-rate prior.")
flags.DEFINE_float("dropout", 0.0, "Dropout on item embeddings and hidden layers.")
flags.DEFINE_float("l2_reg", 0.0, "L2 penalty coefficient on the weights.")
flags.DEFINE_float("weight_decay", 0.0, "Adam's decoupled weight decay.")
flags.DEFINE_enum("distribution", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: one device, the GPUs of this host, or the hosts "
                  "of TF_CONFIG.")
flags.DEFINE_integer("cpu_replicas", 0, "With --distribution=mirrored on a machine without "
                     "GPUs: split the CPU into this many logical devices (for testing).")
flags.DEFINE_integer("max_events", 0, "Keep at most this many recent events per user (0: all).")


def config_from_flags() -> TrainConfig:
    save_dir = FLAGS.save_dir or os.path.join(
        "runs", f"{FLAGS.dataset}__{FLAGS.user_model}__{FLAGS.regularizer}__{FLAGS.seed}")
    preset = MODEL_PRESETS[FLAGS.item_features]
    chosen = {name: getattr(FLAGS, name) for name in ("id_dropout", "pw_activation", "rnn_skip",
                                                      "mlp_item", "item_bias",
                                                      "display_history",
                                                      "choice_history", "history_features",
                                                      "set_context", "set_summary")
              if getattr(FLAGS, name) is not None}
    model = ModelConfig(user_model=FLAGS.user_model, dims=FLAGS.dims, item_dim=FLAGS.item_dim,
                        rnn_hidden_dim=FLAGS.rnn_hidden_dim, pw_dim=FLAGS.pw_dim,
                        pw_band_size=FLAGS.pw_band_size, bilinear=FLAGS.bilinear,
                        dropout=FLAGS.dropout, leave_user_out=FLAGS.leave_user_out,
                        statistic_folds=FLAGS.statistic_folds,
                        rate_prior_strength=FLAGS.rate_prior_strength, l2_reg=FLAGS.l2_reg,
                        **{**preset, **chosen})
    return TrainConfig(
        dataset=FLAGS.dataset, data_folder=FLAGS.data_folder, save_dir=save_dir,
        regularizer=FLAGS.regularizer, learning_rate=FLAGS.learning_rate,
        batch_size=FLAGS.batch_size, num_itrs=FLAGS.num_itrs, seed=FLAGS.seed,
        num_epochs=FLAGS.num_epochs, early_stop=FLAGS.early_stop,
        eval_every=FLAGS.eval_every, pretrain_dir=FLAGS.pretrain_dir,
        pretrain_checkpoint=FLAGS.pretrain_checkpoint, start_margin=FLAGS.start_margin,
        resplit=FLAGS.resplit,
        weight_decay=FLAGS.weight_decay, item_features=FLAGS.item_features,
        max_events=FLAGS.max_events, model=model)


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        config = config_from_flags()  # checks the flags: before anything is written
        print(f"config: {json.dumps(config.to_dict(), sort_keys=True)}", flush=True)
        strategy = make_strategy(FLAGS.distribution, FLAGS.cpu_replicas)
        data = load_split_data(config.data_folder, config.dataset,
                               resplit_seed=config.seed if config.resplit else None)
        results = UserModelRunner(config, data, strategy=strategy).run()
    except (safe_io.DataError, FileNotFoundError, TrainingDivergedError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    test = results["test"]
    print(f"test ({config.save_dir}): loss {test.get('loss', float('nan')):.4f}  "
          f"prec@1 {test.get('prec1', float('nan')):.4f}  "
          f"prec@2 {test.get('prec2', float('nan')):.4f}  "
          f"train {results['train_seconds']:.1f}s  "
          f"{results['events_per_second']:,.0f} events/s  "
          f"peak RSS {results['peak_rss_mb']:.0f} MB", flush=True)
    print(f"iterations of the best checkpoints by validation: {results.get('best_iteration')}"
          + ("  (training diverged: see the warning in results.json)"
             if results.get("diverged") else ""), flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
