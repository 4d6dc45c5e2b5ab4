"""The paper's user-model comparison: every baseline and the GAN user models, datasets x seeds.

  python experiment_user_model/main_table.py --datasets=yelp,tb,rsc,ml100k --seeds=0,1,2,3,4

Methods (`--methods`, table label in brackets): chance (the expected figures of a random
ranking), the baselines of `ganrl.user_model_baselines` and GAN-PW / GAN-LSTM after the
Shannon-entropy pre-training (`gan_pw`, `gan_lstm`: "GAN-PW (entropy)") and after adversarial
fine-tuning from that run (`gan_pw_l2`, `gan_lstm_l2`: "GAN-PW (L2)"; its entropy run is trained
and recorded first when missing). The GAN runs take every model and training flag of
`main_gan_user_model.py` (dims, rnn_hidden_dim, pw_band_size, batch_size, item_features, ...;
`run_table.sh` sets the run scripts' values); the table sets dataset, seed, user_model,
regularizer, save_dir and pretrain_dir per run, `--num_itrs` / `--learning_rate` for the
entropy runs and `--adv_itrs` / `--adv_learning_rate` for the adversarial ones.
`--resplit`, `--train_share` and `--max_events` apply to every method alike: each method of a
seed is fitted to the same training users and events and tested on the same events.
`ganrl.train.table_runs` does the runs.

Output folder `--out`:
  records.csv    one row per (method, dataset, seed): test prec@1 and prec@2; written after
                 each run, so a rerun reuses every finished record
  seconds.csv    the wall seconds of each run
  runs/          the GAN run folders `{dataset}__{PW|LSTM}__{entropy|L2}__{seed}` (a finished
                 one, with results.json, is read, never retrained)
  table.md/.csv  methods x datasets, mean (std) over the seeds asked for
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from ganrl.cli import (
    register_seed_list,  # noqa: E402
    user_model_flags,  # noqa: E402  (defines the user-model flags)
)
from ganrl.cli.distribution_flags import strategy_from_flags  # noqa: E402
from ganrl.cli.errors import report_error, report_stop  # noqa: E402
from ganrl.data import safe_io  # noqa: E402
from ganrl.reporting import tables as table  # noqa: E402
from ganrl.train.interrupt import Interrupted  # noqa: E402
from ganrl.train.table_runs import (  # noqa: E402
    LABELS,
    METHODS,
    PER_RUN_SETTINGS,
    TableRuns,
    methods_to_run,
)
from ganrl.train.user_model import TrainingDivergedError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["yelp", "tb", "rsc", "ml100k"], "Datasets (columns).")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds.")
register_seed_list()
flags.DEFINE_list("methods", list(METHODS), "Methods (rows): " + ", ".join(METHODS))
flags.register_validator("methods", bool, message="--methods: expected at least one method")
flags.DEFINE_string("out", "runs/table", "Output folder (records, GAN run folders, tables).")
flags.DEFINE_integer("adv_itrs", 5000, "Adversarial (L2) iterations (run script: 5000).")
flags.DEFINE_float("adv_learning_rate", 0.0001, "Adversarial (L2) learning rate.")
flags.DEFINE_boolean(
    "write_only",
    False,
    "Write the tables from the records already in "
    "--out; train and evaluate nothing ('-' where a record is missing).",
)
flags.DEFINE_boolean(
    "check_flags",
    False,
    "Only check the flags and exit (run_table.sh does, before it prepares the data).",
)


def check_flags() -> str:
    """An error message for flags the table cannot take, else ''."""
    unknown = sorted(set(FLAGS.methods) - set(METHODS))
    if unknown:
        return f"unknown methods {unknown}; expected some of {', '.join(METHODS)}"
    per_run = [f"--{name}" for name in PER_RUN_SETTINGS if FLAGS[name].present]
    if per_run:
        return (
            f"{', '.join(per_run)}: set per run by the table; use --datasets, --seeds, "
            "--methods and --out"
        )
    return ""


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    error = check_flags()
    try:
        base = user_model_flags.config_from_flags()  # checks the user-model flags
    except ValueError as e:
        error = error or str(e)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if FLAGS.check_flags:
        return 0
    strategy = strategy_from_flags()
    shared = {k: v for k, v in base.to_dict().items() if k not in PER_RUN_SETTINGS}
    shared["model"] = {k: v for k, v in shared["model"].items() if k not in PER_RUN_SETTINGS}
    print(
        f"GAN runs: {json.dumps(shared, sort_keys=True)}; adversarial: {FLAGS.adv_itrs} "
        f"iterations, learning rate {FLAGS.adv_learning_rate}",
        flush=True,
    )
    runs = TableRuns(FLAGS.out, base, FLAGS.adv_itrs, FLAGS.adv_learning_rate)
    seeds, needed = [int(s) for s in FLAGS.seeds], methods_to_run(FLAGS.methods)
    tic = time.perf_counter()
    try:
        records, seconds, reused = runs.run(
            FLAGS.datasets,
            seeds,
            [] if FLAGS.write_only else needed,
            strategy,
            progress=lambda line: print(line, flush=True),
        )
    except Interrupted as e:
        return report_stop(e)
    except (safe_io.DataError, FileNotFoundError, TrainingDivergedError, ValueError) as e:
        return report_error(e)
    in_table = [r for r in records if r.dataset in FLAGS.datasets and r.seed in seeds]
    text = table.write_tables(
        [
            dataclasses.replace(r, method=LABELS[r.method])
            for r in in_table
            if r.method in FLAGS.methods
        ],
        os.path.join(FLAGS.out, "table.md"),
        os.path.join(FLAGS.out, "table.csv"),
        methods=[LABELS[m] for m in FLAGS.methods],
        datasets=FLAGS.datasets,
    )
    # Wall seconds of every run the table needed (the entropy runs of its L2 methods too).
    total = sum(
        seconds.get((r.method, r.dataset, r.seed), 0.0) for r in in_table if r.method in needed
    )
    print(
        f"\n{reused} runs reused; this invocation {time.perf_counter() - tic:.0f} s; all "
        f"runs of the table {total:.0f} s (per run: {runs.seconds_path})\n"
    )
    print(f"test prec@1 and prec@2, mean (std) over seeds {','.join(FLAGS.seeds)}\n")
    print(text)
    print(f"tables: {FLAGS.out}/table.{{md,csv}}")
    return 0


if __name__ == "__main__":
    app.run(main)
