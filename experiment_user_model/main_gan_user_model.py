"""Trains and evaluates a generative adversarial user model (Chen et al., ICML 2019).

Flags (`ganrl.cli.user_model_flags`) keep the original code's names and meanings; they become
a frozen `TrainConfig` that is passed down. Examples:

  python experiment_user_model/main_gan_user_model.py --dataset=yelp --user_model=LSTM
  python experiment_user_model/main_gan_user_model.py --dataset=yelp --regularizer=L2 \
      --pretrain_dir=runs/yelp__LSTM__entropy__0 --num_itrs=5000
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from ganrl.cli import user_model_flags  # noqa: E402  (defines the user-model flags)
from ganrl.cli.distribution_flags import strategy_from_flags  # noqa: E402
from ganrl.cli.errors import report_error, report_stop  # noqa: E402
from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import load_split_data  # noqa: E402
from ganrl.train.interrupt import Interrupted  # noqa: E402
from ganrl.train.user_model import (  # noqa: E402
    TrainingDivergedError,
    UserModelRunner,
    is_chief,
)
from ganrl.user_model.leave import ensure_leave_model  # noqa: E402

flags.DEFINE_boolean(
    "check_flags",
    False,
    "Only check the flags and exit (the run script does, before it prepares the data).",
)


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        config = user_model_flags.config_from_flags()  # checks the flags: before anything
        safe_io.check_folder_path(config.save_dir, "--save_dir")
        if flags.FLAGS.check_flags:
            return 0
        print(f"config: {json.dumps(config.to_dict(), sort_keys=True)}", flush=True)
        strategy = strategy_from_flags()
        data = load_split_data(
            config.data_folder, config.dataset, resplit_seed=config.seed if config.resplit else None
        )
        results = UserModelRunner(config, data, strategy=strategy).run()
        if is_chief(strategy):
            # When users leave (`ganrl.user_model.leave`): fitted once on the trained model,
            # reused by a rerun.
            ensure_leave_model(config.save_dir)
    except Interrupted as e:
        return report_stop(e)
    except (safe_io.DataError, FileNotFoundError, TrainingDivergedError, ValueError) as e:
        return report_error(e)
    test = results["test"]
    print(
        f"test ({config.save_dir}): loss {test.get('loss', float('nan')):.4f}  "
        f"prec@1 {test.get('prec1', float('nan')):.4f}  "
        f"prec@2 {test.get('prec2', float('nan')):.4f}  "
        f"train {results['train_seconds']:.1f}s  "
        f"{results['events_per_second']:,.0f} events/s  "
        f"peak RSS {results['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    print(
        f"iterations of the best checkpoints by validation: {results.get('best_iteration')}"
        + (
            "  (training diverged: see the warning in results.json)"
            if results.get("diverged")
            else ""
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    app.run(main)
