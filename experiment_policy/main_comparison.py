"""Every policy on several datasets and seeds, in the paper's protocol, and one table.

  python experiment_policy/main_comparison.py --datasets=yelp,ml100k --seeds=0,1,2,3,4

For each dataset the training simulator is `{models_root}/{dataset}__LSTM__entropy__0` and the
test simulator `{models_root}/{dataset}__PW__entropy__1` (`run_comparison.sh` trains them when
missing). Each (dataset, seed) is one `PolicyRunner` run in `{out}/{dataset}__{seed}`; finished
runs and policies are reused. Writes `{out}/comparison.md`, `comparison.csv` and
`comparison.png`. Every protocol flag (`ganrl.cli.policy_flags`: k, horizon, num_itrs, ...)
applies to all runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from ganrl.cli import (
    policy_flags,  # noqa: E402  (defines the protocol's flags)
    register_seed_list,  # noqa: E402
)
from ganrl.cli.distribution_flags import strategy_from_flags  # noqa: E402
from ganrl.cli.errors import report_error, report_stop  # noqa: E402
from ganrl.data.safe_io import DataError  # noqa: E402
from ganrl.policy.runner import PolicyRunner  # noqa: E402
from ganrl.reporting import policy_comparison as comparison  # noqa: E402
from ganrl.train.interrupt import Interrupted  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["yelp", "ml100k"], "Datasets to compare on.")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Policy seeds.")
register_seed_list()
flags.DEFINE_string("models_root", "runs", "Folder of the user-model run folders.")
flags.DEFINE_string("out", "runs/comparison", "Output folder.")
flags.DEFINE_boolean(
    "check_flags",
    False,
    "Only check the flags and exit (the run script does, before it trains user models).",
)


def run_configs() -> list:
    """Every (dataset, seed) run's `PolicyConfig`, in order; checks the flags."""
    configs = []
    for dataset in FLAGS.datasets:
        train_dir = os.path.join(FLAGS.models_root, f"{dataset}__LSTM__entropy__0")
        test_dir = os.path.join(FLAGS.models_root, f"{dataset}__PW__entropy__1")
        for seed in (int(s) for s in FLAGS.seeds):
            save_dir = os.path.join(FLAGS.out, f"{dataset}__{seed}")
            configs.append(
                (dataset, seed, policy_flags.config_from_flags(train_dir, test_dir, save_dir, seed))
            )
    return configs


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        configs = run_configs()
    except (DataError, ValueError) as e:
        return report_error(e)
    if FLAGS.check_flags:
        return 0
    strategy = strategy_from_flags()
    runs, tic = {}, time.perf_counter()
    try:
        for dataset, seed, config in configs:
            print(f"{dataset} seed {seed}: {config.save_dir}", flush=True)
            results = PolicyRunner(config, strategy=strategy).run()
            results["policies"] = {name: results["policies"][name] for name in config.policies}
            runs[(dataset, seed)] = results
    except Interrupted as e:
        return report_stop(e)
    except (DataError, FileNotFoundError, ValueError) as e:
        return report_error(e)
    table = comparison.write_tables(comparison.summarise(runs), FLAGS.out)
    comparison.plot(runs, os.path.join(FLAGS.out, "comparison.png"))
    print(
        f"\ncumulative reward and CTR over {FLAGS.horizon} steps in each dataset's test "
        f"simulator, mean (std) over seeds {','.join(FLAGS.seeds)}; train s: mean training "
        f"wall seconds (this invocation: {time.perf_counter() - tic:.0f} s)\n"
    )
    print(table)
    print(f"tables and plot: {FLAGS.out}/comparison.{{md,csv,png}}")
    return 0


if __name__ == "__main__":
    app.run(main)
