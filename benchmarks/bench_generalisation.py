"""Does the user model rank items it never saw clicked? One-hot against generalising features.

For every dataset, variant and seed, trains a user model (the run script's settings: LSTM,
learning rate 0.0005, 50 users a batch, 2000 iterations, dims 64-64, item_dim 32; on ml100k,
whose users have ~100 display sets each, 300 iterations at 0.002) and tests the checkpoints
that were best on validation, as the original reports them. Writes the mean (std) of test prec@1,
prec@2 and loss per (dataset, variant), beside chance (the mean of 1 / |display set| over
test events with a click, what ranking at random scores), as JSON and a Markdown table.

Variants (`VARIANTS`): `onehot` is the paper's model; `generalising` adds training-user item
statistics (leave-user-out on training batches), identity dropout with a fallback for unseen
items and the user's history of each item (`MODEL_PRESETS["generalising"]`); the others are
ablations of it.

  python benchmarks/bench_generalisation.py --data_folder=dropbox \
      --datasets=yelp,tb,rsc,ml100k --variants=onehot,generalising --seeds=0,1,2,3,4

Runs go to `OUT/runs/{dataset}__{variant}__{seed}` and are reused when finished. All runs share
one process (TensorFlow is imported once).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import load_split_data  # noqa: E402
from ganrl.train.user_model import TrainConfig, UserModelRunner  # noqa: E402
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig  # noqa: E402

# name -> (TrainConfig.item_features, ModelConfig options)
VARIANTS = {
    "onehot": ("onehot", MODEL_PRESETS["onehot"]),
    "generalising": ("generalising", MODEL_PRESETS["generalising"]),
    "stats_only": ("generalising", {"id_dropout": 0.5}),
    "history_only": ("onehot", {"history_features": True}),
    "no_leave_user_out": (
        "generalising",
        {**MODEL_PRESETS["generalising"], "leave_user_out": False},
    ),
    "no_id_dropout": ("generalising", {**MODEL_PRESETS["generalising"], "id_dropout": 0.0}),
    "set_context": ("generalising", {**MODEL_PRESETS["generalising"], "set_context": True}),
}


def chance(events) -> dict[str, float]:
    """Expected prec@1 and prec@2 of a random ranking over the test events with a click."""
    sizes = np.asarray(events.display_mask).sum(axis=1)[np.asarray(events.clicked_pos) >= 0]
    return {
        "prec1": float(np.mean(1.0 / sizes)),
        "prec2": float(np.mean(np.minimum(2.0, sizes) / sizes)),
    }


def run_one(
    dataset: str,
    variant: str,
    seed: int,
    out: str,
    data,
    num_itrs: int,
    learning_rate: float,
    eval_every: int,
) -> dict:
    item_features, options = VARIANTS[variant]
    save_dir = os.path.join(out, "runs", f"{dataset}__{variant}__{seed}")
    config = TrainConfig(
        dataset=dataset,
        save_dir=save_dir,
        seed=seed,
        num_itrs=num_itrs,
        learning_rate=learning_rate,
        eval_every=eval_every,
        item_features=item_features,
        model=ModelConfig(**options),
    )
    tic = time.perf_counter()
    results = UserModelRunner(config, data, progress=lambda line: None).run()
    return {
        "dataset": dataset,
        "variant": variant,
        "seed": seed,
        **{k: results["test"][k] for k in ("prec1", "prec2", "loss")},
        "vali_prec1": results["vali"]["prec1"],
        "events_per_second": results.get("events_per_second", float("nan")),
        "wall_seconds": time.perf_counter() - tic,
    }


def per_dataset(spec: str, dataset: str) -> str:
    """The value of `dataset` in 'DATASET=V,...,V' (a bare V is the default)."""
    values = dict(part.split("=", 1) if "=" in part else ("", part) for part in spec.split(","))
    return values.get(dataset, values.get(""))


def summarise(records: list[dict], chances: dict[str, dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["variant"]), []).append(r)
    rows = []
    for (dataset, variant), rs in groups.items():
        row = {
            "dataset": dataset,
            "variant": variant,
            "seeds": len(rs),
            "chance_prec1": chances[dataset]["prec1"],
            "chance_prec2": chances[dataset]["prec2"],
        }
        for key in ("prec1", "prec2", "loss", "vali_prec1", "events_per_second"):
            values = np.array([r[key] for r in rs], dtype=float)
            row[key], row[key + "_std"] = float(np.mean(values)), float(np.std(values))
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | variant | seeds | test prec@1 | test prec@2 | test loss "
        "| chance prec@1 / prec@2 | vali prec@1 | train events/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['variant']} | {r['seeds']} "
            f"| {r['prec1']:.3f} ({r['prec1_std']:.3f}) | {r['prec2']:.3f} ({r['prec2_std']:.3f}) "
            f"| {r['loss']:.3f} ({r['loss_std']:.3f}) "
            f"| {r['chance_prec1']:.3f} / {r['chance_prec2']:.3f} "
            f"| {r['vali_prec1']:.3f} | {r['events_per_second']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="yelp,tb,rsc,ml100k")
    parser.add_argument("--variants", default="onehot,generalising")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--data_folder", default="dropbox")
    parser.add_argument(
        "--num_itrs",
        default="2000,ml100k=300",
        help="iterations: N, or per dataset N,DATASET=N,...",
    )
    parser.add_argument(
        "--learning_rate",
        default="0.0005,ml100k=0.002",
        help="Adam step size: R, or per dataset R,DATASET=R,...",
    )
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/results/generalisation")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    records, chances = [], {}
    for dataset in args.datasets.split(","):
        data = load_split_data(args.data_folder, dataset, mmap=False)
        chances[dataset] = chance(data.splits["test"])
        num_itrs = int(per_dataset(args.num_itrs, dataset))
        learning_rate = float(per_dataset(args.learning_rate, dataset))
        for variant in args.variants.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                record = run_one(
                    dataset, variant, seed, out, data, num_itrs, learning_rate, args.eval_every
                )
                print(json.dumps(record), flush=True)
                records.append(record)
    rows = summarise(records, chances)
    os.makedirs(out, exist_ok=True)
    safe_io.dump_json(
        os.path.join(out, "summary.json"),
        {"runs": records, "summary": rows, "chance": chances, "args": vars(args)},
    )
    table = markdown(rows)
    with safe_io.atomic_open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
