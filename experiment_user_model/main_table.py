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

import csv  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import main_gan_user_model  # noqa: E402  (defines the user-model flags)
from ganrl import table  # noqa: E402
from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import SplitData, load_split_data  # noqa: E402
from ganrl.train.distribute import make_strategy  # noqa: E402
from ganrl.train.user_model import (  # noqa: E402
    TrainConfig, TrainingDivergedError, UserModelRunner)
from ganrl.user_model_baselines import (  # noqa: E402
    PAPER_BASELINES, chance_summary, evaluate_scorer)

# GAN method -> (encoder, regularizer).
GAN_METHODS = {"gan_pw": ("PW", "entropy"), "gan_lstm": ("LSTM", "entropy"),
               "gan_pw_l2": ("PW", "L2"), "gan_lstm_l2": ("LSTM", "L2")}
METHODS = ("chance", *PAPER_BASELINES, *GAN_METHODS)
LABELS = {"chance": "chance", "most_popular": "most popular", "iknn": "IKNN", "srnn": "S-RNN",
          "scknnc": "SCKNNC", "xgboost": "XGBOOST", "dfm": "DFM", "wd_lr": "W&D-LR",
          "wd_ccf": "W&D-CCF",
          **{m: f"GAN-{encoder} ({regularizer})"
             for m, (encoder, regularizer) in GAN_METHODS.items()}}
# Flags of main_gan_user_model.py that the table sets per run.
PER_RUN_FLAGS = ("dataset", "seed", "user_model", "regularizer", "save_dir", "pretrain_dir")

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["yelp", "tb", "rsc", "ml100k"], "Datasets (columns).")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds.")
flags.DEFINE_list("methods", list(METHODS), "Methods (rows): " + ", ".join(METHODS))
flags.DEFINE_string("out", "runs/table", "Output folder (records, GAN run folders, tables).")
flags.DEFINE_integer("adv_itrs", 5000, "Adversarial (L2) iterations (run script: 5000).")
flags.DEFINE_float("adv_learning_rate", 0.0001, "Adversarial (L2) learning rate.")
flags.DEFINE_boolean("write_only", False, "Write the tables from the records already in "
                     "--out; train and evaluate nothing ('-' where a record is missing).")


def entropy_method(method: str) -> str:
    """The entropy pre-training an L2 GAN method starts from (`gan_pw_l2` -> `gan_pw`)."""
    return method.removesuffix("_l2")


def methods_to_run(methods: list[str]) -> list[str]:
    """`methods` plus the entropy runs their L2 methods start from, in `METHODS` order (so an
    entropy run precedes its fine-tuning)."""
    needed = set(methods) | {entropy_method(m) for m in methods if m in GAN_METHODS}
    return [m for m in METHODS if m in needed]


def gan_run_dir(method: str, dataset: str, seed: int) -> str:
    encoder, regularizer = GAN_METHODS[method]
    return os.path.join(FLAGS.out, "runs", f"{dataset}__{encoder}__{regularizer}__{seed}")


def gan_config(base: TrainConfig, method: str, dataset: str, seed: int) -> TrainConfig:
    """`base` (the user-model flags) for one GAN run; an L2 run starts from the entropy run of
    the same encoder and seed (as `run_gan_L2_regularized.sh`)."""
    encoder, regularizer = GAN_METHODS[method]
    adversarial = regularizer == "L2"
    return dataclasses.replace(
        base, dataset=dataset, seed=seed, regularizer=regularizer,
        save_dir=gan_run_dir(method, dataset, seed),
        pretrain_dir=gan_run_dir(entropy_method(method), dataset, seed) if adversarial else "",
        learning_rate=FLAGS.adv_learning_rate if adversarial else base.learning_rate,
        num_itrs=FLAGS.adv_itrs if adversarial else base.num_itrs,
        model=dataclasses.replace(base.model, user_model=encoder))


def run_one(method: str, dataset: str, seed: int, data: SplitData, base: TrainConfig,
            strategy) -> dict:
    """Test `{"prec1", "prec2"}` of one method on one dataset and seed."""
    if method == "chance":
        return chance_summary(data.splits["test"])
    if method not in GAN_METHODS:
        return evaluate_scorer(method, data, seed)["test"]
    results_path = os.path.join(gan_run_dir(method, dataset, seed), "results.json")
    if os.path.exists(results_path):
        print(f"reusing the finished run {os.path.dirname(results_path)}", flush=True)
        with open(results_path) as f:
            return json.load(f)["test"]
    config = gan_config(base, method, dataset, seed)
    return UserModelRunner(config, data, progress=lambda _: None, strategy=strategy).run()["test"]


def load_seconds(path: str) -> dict[tuple[str, str, int], float]:
    """`{(method, dataset, seed): wall seconds}` from `seconds.csv` (none when absent)."""
    if not os.path.exists(path):
        return {}
    rows = table.read_typed_csv(path, {"method": str, "dataset": str, "seed": int,
                                       "seconds": float})
    return {(r["method"], r["dataset"], r["seed"]): r["seconds"] for r in rows}


def save_seconds(path: str, seconds: dict[tuple[str, str, int], float]) -> None:
    with safe_io.atomic_open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("method", "dataset", "seed", "seconds"))
        writer.writerows((*key, value) for key, value in seconds.items())


def check_flags() -> str:
    """An error message for flags the table cannot take, else ''."""
    unknown = sorted(set(FLAGS.methods) - set(METHODS))
    if unknown:
        return f"unknown methods {unknown}; expected some of {', '.join(METHODS)}"
    per_run = [f"--{name}" for name in PER_RUN_FLAGS if FLAGS[name].present]
    if per_run:
        return (f"{', '.join(per_run)}: set per run by the table; use --datasets, --seeds, "
                "--methods and --out")
    return ""


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    error = check_flags()
    try:
        base = main_gan_user_model.config_from_flags()  # checks the user-model flags
    except ValueError as e:
        error = error or str(e)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    strategy = make_strategy(FLAGS.distribution, FLAGS.cpu_replicas)
    shared = {k: v for k, v in base.to_dict().items() if k not in PER_RUN_FLAGS}
    shared["model"] = {k: v for k, v in shared["model"].items() if k not in PER_RUN_FLAGS}
    print(f"GAN runs: {json.dumps(shared, sort_keys=True)}; adversarial: {FLAGS.adv_itrs} "
          f"iterations, learning rate {FLAGS.adv_learning_rate}", flush=True)
    os.makedirs(FLAGS.out, exist_ok=True)
    records_path = os.path.join(FLAGS.out, "records.csv")
    seconds_path = os.path.join(FLAGS.out, "seconds.csv")
    records = table.load_records(records_path)
    seconds = load_seconds(seconds_path)
    done = {(r.method, r.dataset, r.seed) for r in records}
    seeds, needed = [int(s) for s in FLAGS.seeds], methods_to_run(FLAGS.methods)
    to_run = [] if FLAGS.write_only else needed
    tic, reused, data_cache = time.perf_counter(), 0, {}
    try:
        for dataset in FLAGS.datasets:
            for seed in seeds:
                for method in to_run:
                    if (method, dataset, seed) in done:
                        reused += 1
                        continue
                    key = (dataset, seed if FLAGS.resplit else None)
                    if key not in data_cache:  # loaded once, and only if something runs
                        data_cache = {key: load_split_data(FLAGS.data_folder, dataset,
                                                           resplit_seed=key[1])}
                    start = time.perf_counter()
                    test = run_one(method, dataset, seed, data_cache[key], base, strategy)
                    # A run folder finished earlier keeps the seconds it took then.
                    seconds.setdefault((method, dataset, seed), time.perf_counter() - start)
                    records.append(table.Record(method, dataset, seed, float(test["prec1"]),
                                                float(test["prec2"])))
                    table.save_records(records_path, records)
                    save_seconds(seconds_path, seconds)
                    print(f"{dataset} seed {seed} {LABELS[method]}: test prec@1 "
                          f"{test['prec1']:.3f} prec@2 {test['prec2']:.3f} "
                          f"({seconds[(method, dataset, seed)]:.1f} s)", flush=True)
    except (safe_io.DataError, FileNotFoundError, TrainingDivergedError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    in_table = [r for r in records if r.dataset in FLAGS.datasets and r.seed in seeds]
    text = table.write_tables(
        [dataclasses.replace(r, method=LABELS[r.method]) for r in in_table
         if r.method in FLAGS.methods],
        os.path.join(FLAGS.out, "table.md"), os.path.join(FLAGS.out, "table.csv"),
        methods=[LABELS[m] for m in FLAGS.methods], datasets=FLAGS.datasets)
    # Wall seconds of every run the table needed (the entropy runs of its L2 methods too).
    total = sum(seconds.get((r.method, r.dataset, r.seed), 0.0) for r in in_table
                if r.method in needed)
    print(f"\n{reused} runs reused; this invocation {time.perf_counter() - tic:.0f} s; all "
          f"runs of the table {total:.0f} s (per run: {seconds_path})\n")
    print(f"test prec@1 and prec@2, mean (std) over seeds {','.join(FLAGS.seeds)}\n")
    print(text)
    print(f"tables: {FLAGS.out}/table.{{md,csv}}")
    return 0


if __name__ == "__main__":
    app.run(main)
