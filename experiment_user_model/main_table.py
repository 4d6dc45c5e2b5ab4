"""The paper's user-model comparison: every baseline and the GAN user models, datasets x seeds.

  python experiment_user_model/main_table.py --datasets=yelp,tb,rsc,ml100k --seeds=0,1,2,3,4

Methods: chance (the expected figures of a random ranking), the baselines of
`ganrl.baselines` and GAN-PW / GAN-LSTM, each after the Shannon-entropy pre-training
(`gan_pw`, `gan_lstm`) and after adversarial fine-tuning from it (`gan_pw_l2`, `gan_lstm_l2`),
with the run scripts' settings. One record (test prec@1, prec@2) per (method, dataset, seed) in
`{out}/records.csv`, written after each run, so a rerun reuses every finished record (and the
GAN run folders in `{out}/runs/`) instead of retraining. Writes `{out}/table.md` and
`{out}/table.csv` (methods x datasets, mean (std) over seeds) and `{out}/seconds.csv` (the
wall time of each run).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import csv  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganrl import table  # noqa: E402
from ganrl.baselines import PAPER_BASELINES, chance_summary, evaluate_scorer  # noqa: E402
from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import load_split_data  # noqa: E402
from ganrl.train.user_model_trainer import TrainConfig, UserModelRunner  # noqa: E402
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig  # noqa: E402

GAN_METHODS = {"gan_pw": ("PW", "entropy"), "gan_lstm": ("LSTM", "entropy"),
               "gan_pw_l2": ("PW", "L2"), "gan_lstm_l2": ("LSTM", "L2")}
METHODS = ("chance", *PAPER_BASELINES, *GAN_METHODS)

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["yelp", "tb", "rsc", "ml100k"], "Datasets (columns).")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds.")
flags.DEFINE_list("methods", list(METHODS), "Methods (rows): " + ", ".join(METHODS))
flags.DEFINE_string("data_folder", "dropbox", "Folder of the processed datasets.")
flags.DEFINE_string("out", "runs/table", "Output folder.")
flags.DEFINE_integer("num_itrs", 2000, "Entropy pre-training iterations (run script: 2000).")
flags.DEFINE_integer("adv_itrs", 5000, "Adversarial iterations (run script: 5000).")
flags.DEFINE_integer("eval_every", 50, "Validate the GAN models every this many iterations.")
flags.DEFINE_enum("item_features", "generalising", ["generalising", "onehot"],
                  "Item features of the GAN models (the run scripts' default).")


def gan_config(method: str, dataset: str, seed: int) -> TrainConfig:
    """A GAN run with the run scripts' settings (`run_gan_user_model.sh`, and
    `run_gan_L2_regularized.sh` from the entropy run of the same encoder and seed)."""
    encoder, regularizer = GAN_METHODS[method]
    runs = os.path.join(FLAGS.out, "runs")
    adversarial = regularizer == "L2"
    return TrainConfig(
        dataset=dataset, data_folder=FLAGS.data_folder, regularizer=regularizer,
        save_dir=os.path.join(runs, f"{dataset}__{encoder}__{regularizer}__{seed}"),
        pretrain_dir=(os.path.join(runs, f"{dataset}__{encoder}__entropy__{seed}")
                      if adversarial else ""),
        learning_rate=0.0001 if adversarial else 0.0005, batch_size=50,
        num_itrs=FLAGS.adv_itrs if adversarial else FLAGS.num_itrs, seed=seed,
        eval_every=FLAGS.eval_every, item_features=FLAGS.item_features,
        model=ModelConfig(user_model=encoder, dims="64-64", rnn_hidden_dim=20, pw_dim=4,
                          pw_band_size=20, **MODEL_PRESETS[FLAGS.item_features]))


def run_one(method: str, dataset: str, seed: int, data) -> dict:
    """Test prec@1 / prec@2 of one method on one dataset and seed."""
    if method == "chance":
        return chance_summary(data.splits["test"])
    if method in GAN_METHODS:
        if GAN_METHODS[method][1] == "L2":  # needs its entropy run first
            run_one(method.replace("_l2", ""), dataset, seed, data)
        results = UserModelRunner(gan_config(method, dataset, seed), data,
                                  progress=lambda _: None).run()
        return results["test"]
    return evaluate_scorer(method, data, seed)["test"]


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    unknown = sorted(set(FLAGS.methods) - set(METHODS))
    if unknown:
        print(f"error: unknown methods {unknown}; expected some of {', '.join(METHODS)}",
              file=sys.stderr)
        return 1
    os.makedirs(FLAGS.out, exist_ok=True)
    records_path = os.path.join(FLAGS.out, "records.csv")
    seconds_path = os.path.join(FLAGS.out, "seconds.csv")
    records = table.load_records(records_path)
    seconds = (table.read_typed_csv(seconds_path, {"method": str, "dataset": str, "seed": int,
                                                   "seconds": float})
               if os.path.exists(seconds_path) else [])
    done = {(r.method, r.dataset, r.seed) for r in records}
    tic, reused = time.perf_counter(), 0
    try:
        for dataset in FLAGS.datasets:
            data = load_split_data(FLAGS.data_folder, dataset)
            for seed in (int(s) for s in FLAGS.seeds):
                for method in FLAGS.methods:
                    if (method, dataset, seed) in done:
                        reused += 1
                        continue
                    start = time.perf_counter()
                    test = run_one(method, dataset, seed, data)
                    elapsed = time.perf_counter() - start
                    records.append(table.Record(method, dataset, seed, float(test["prec1"]),
                                                float(test["prec2"])))
                    seconds.append({"method": method, "dataset": dataset, "seed": seed,
                                    "seconds": elapsed})
                    table.save_records(records_path, records)
                    _save_seconds(seconds_path, seconds)
                    print(f"{dataset} seed {seed} {method}: test prec@1 {test['prec1']:.3f} "
                          f"prec@2 {test['prec2']:.3f} ({elapsed:.1f} s)", flush=True)
    except (safe_io.DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wanted = [r for r in records if r.method in FLAGS.methods and r.dataset in FLAGS.datasets
              and str(r.seed) in FLAGS.seeds]
    text = table.write_tables(wanted, os.path.join(FLAGS.out, "table.md"),
                              os.path.join(FLAGS.out, "table.csv"), methods=FLAGS.methods,
                              datasets=FLAGS.datasets)
    total = sum(s["seconds"] for s in seconds if s["method"] in FLAGS.methods
                and s["dataset"] in FLAGS.datasets and str(s["seed"]) in FLAGS.seeds)
    print(f"\ntest prec@1 and prec@2, mean (std) over seeds {','.join(FLAGS.seeds)} "
          f"({reused} runs reused; this invocation {time.perf_counter() - tic:.0f} s; "
          f"all runs of the table {total:.0f} s)\n")
    print(text)
    print(f"tables: {FLAGS.out}/table.{{md,csv}}")
    return 0


def _save_seconds(path: str, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ("method", "dataset", "seed", "seconds"),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with safe_io.atomic_open(path, "w") as f:
        f.write(buffer.getvalue())


if __name__ == "__main__":
    app.run(main)
