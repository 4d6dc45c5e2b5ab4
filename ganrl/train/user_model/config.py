"""The configuration of a user-model run, and what a finished run's curves say about it."""

from __future__ import annotations

import dataclasses
import math

from ganrl import config_checks
from ganrl.user_model.model import ModelConfig

BEST_METRICS = ("loss", "prec1", "prec2")
CURVE_FIELDS = (
    "iteration",
    "phase",
    "train_loss",
    "vali_loss",
    "vali_prec1",
    "vali_prec2",
    "events_per_second",
)
REGULARIZERS = ("entropy", "L2")
ITEM_FEATURES = ("onehot", "generalising")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a user-model run depends on.

    Attributes:
      dataset: dataset name (`NAME.pkl` in `data_folder`).
      data_folder: folder of the processed datasets.
      save_dir: the run folder.
      regularizer: 'entropy' (maximum likelihood) or 'L2' (adversarial min-max).
      learning_rate: Adam step size.
      batch_size: users per training batch.
      num_itrs: training iterations (batches); 0: `num_epochs` passes over the training
        users instead, so a larger log is not under-trained.
      num_epochs: with num_itrs 0, the training length in passes over the training users
        (ceil(num_epochs * training users / batch_size) iterations).
      early_stop: stop once this many evaluations in a row have not improved the validation
        loss (0: never); the best checkpoints are kept either way.
      seed: seeds the initialisation, the data order and `resplit`.
      eval_every: validate every this many iterations.
      pretrain_dir: for 'L2', the entropy run folder whose weights start both the reward r
        and the behaviour network phi.
      pretrain_checkpoint: which of its best checkpoints: 'loss', 'prec1' or 'prec2'.
      start_margin: for 'L2', an adversarial checkpoint replaces the pre-trained start as the
        best by prec@1 (prec@2) only if its validation figure beats the start's by more than
        this many standard errors, sqrt(p (1 - p) / n) over the n validation clicks (0: any
        gain). Fine-tuning then never reports a test prec@k below the start's on a
        validation gain that is only noise.
      resplit: draw a new 50/25/25 user split with `seed` instead of the dataset's split.
      train_share: fit the model to this share of the training users, a random subset drawn
        with `seed` without replacement (`SplitData.with_training_share`); validation and
        test users are unchanged. Members of an ensemble fitted to different subsets (1: all).
      weight_decay: decoupled weight decay of Adam.
      lr_plateau: after this many evaluations without a better validation loss, training
        goes back to the best-loss weights and goes on with the learning rate times
        `lr_plateau_factor` (0: never). Counted from the best or the last reduction,
        whichever is later, while `early_stop` counts from the best alone.
      lr_plateau_factor: what each reduction multiplies the learning rate by.
      lr_plateau_times: at most this many reductions.
      ema: the momentum per iteration of an exponential moving average of the weights; the
        average is what is validated, kept as the best checkpoints and tested (0: the
        weights themselves).
      max_events: keep at most this many of a user's most recent events per batch (0: all).
      eval_batch_users: users per evaluation batch.
      steps_per_call: at most this many iterations run in one `tf.function` call.
      checkpoint_secs: save the resumable checkpoint at an evaluation at most this often (and
        always at the end); 0 saves at every evaluation.
      item_features: 'onehot' (the paper's: the dataset's features, one-hot ids) or
        'generalising' (plus item statistics of the training users, `ganrl.data.item_stats`).
      model: the architecture.
    """

    dataset: str = "yelp"
    data_folder: str = "dropbox"
    save_dir: str = "runs/yelp__LSTM__entropy__0"
    regularizer: str = "entropy"
    learning_rate: float = 0.0005
    batch_size: int = 50
    num_itrs: int = 2000
    num_epochs: float = 0.0
    early_stop: int = 0
    seed: int = 0
    eval_every: int = 50
    pretrain_dir: str = ""
    pretrain_checkpoint: str = "prec1"
    start_margin: float = 1.0
    resplit: bool = False
    train_share: float = 1.0
    weight_decay: float = 0.0
    lr_plateau: int = 0
    lr_plateau_factor: float = 0.3
    lr_plateau_times: int = 2
    ema: float = 0.0
    max_events: int = 0
    eval_batch_users: int = 2048
    steps_per_call: int = 100
    item_features: str = "onehot"
    checkpoint_secs: float = 30.0
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)

    def __post_init__(self):
        config_checks.check_choice(self, "regularizer", REGULARIZERS)
        config_checks.check_choice(self, "item_features", ITEM_FEATURES)
        config_checks.check_choice(self, "pretrain_checkpoint", BEST_METRICS)
        config_checks.check(
            self,
            "a positive integer",
            "batch_size",
            "eval_every",
            "eval_batch_users",
            "steps_per_call",
        )
        config_checks.check(
            self,
            "a non-negative integer",
            "seed",
            "max_events",
            "num_itrs",
            "early_stop",
            "lr_plateau",
            "lr_plateau_times",
        )
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(
            self,
            "a non-negative number",
            "start_margin",
            "weight_decay",
            "checkpoint_secs",
            "num_epochs",
        )
        if not 0.0 < self.lr_plateau_factor < 1.0:
            raise ValueError(
                f"lr_plateau_factor={self.lr_plateau_factor}: expected a number in (0, 1)"
            )
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema={self.ema}: expected a number in [0, 1)")
        if not 0.0 < self.train_share <= 1.0:
            raise ValueError(f"train_share={self.train_share}: expected a number in (0, 1]")
        if self.pretrain_dir and self.regularizer != "L2":
            raise ValueError(
                f"pretrain_dir={self.pretrain_dir!r}: only an L2 (adversarial) run starts from "
                f"a pre-trained one; regularizer={self.regularizer!r} trains from scratch"
            )
        if self.num_itrs == 0 and self.num_epochs <= 0:
            raise ValueError("num_itrs=0: the length is then num_epochs, which must be positive")

    def iterations(self, train_users: int) -> int:
        """The training length: `num_itrs`, or `num_epochs` passes over `train_users`."""
        if self.num_itrs:
            return self.num_itrs
        return max(1, math.ceil(self.num_epochs * train_users / self.batch_size))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        model = ModelConfig(**d.pop("model", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(model=model, **{k: v for k, v in d.items() if k in known})


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or Inf."""


# Settings a rerun into a run folder may change: they do not change the results.
RERUN_MAY_CHANGE = ("save_dir", "checkpoint_secs", "eval_batch_users", "steps_per_call")

# A finite training loss that ends more than this many times, and this many nats, above the
# start's validation loss means training diverged: the model ended far worse than it began
# (a step size too large overshoots further at every step).
DIVERGENCE_RATIO = 3.0
DIVERGENCE_NATS = 1.0


def divergence(curve_rows: list[dict]) -> str:
    """Why the rows of curves.csv (iteration 0 first) say training diverged, or ''."""
    if len(curve_rows) < 2:
        return ""
    start, last = float(curve_rows[0]["vali_loss"]), curve_rows[-1]
    loss = float(last["train_loss"])
    if not loss > max(DIVERGENCE_RATIO * start, start + DIVERGENCE_NATS):
        return ""
    return (
        f"training diverged: the training loss ended at {loss:.4g} (iteration "
        f"{last['iteration']}), far above the start's validation loss {start:.4g}"
    )


# Model settings that shape the variables: a pre-trained run must share them.
ARCHITECTURE_FIELDS = (
    "item_features",
    "user_model",
    "dims",
    "item_dim",
    "rnn_hidden_dim",
    "pw_dim",
    "pw_band_size",
    "pw_activation",
    "rnn_skip",
    "item_bias",
    "mlp_item",
    "bilinear",
    "display_history",
    "choice_history",
    "history_features",
    "set_context",
    "set_summary",
    "taste_mixture",
    "taste_posterior",
    "taste_evidence",
)
