"""How close learners come to the reachable limit of synthetic worlds, over sizes and seeds.

For each world (`ganrl.data.synthetic`, e.g. `lag_popular_always`), number of users and seed,
it generates the dataset `synthetic` in `WORK/{world}__{users}__{seed}/` (data seed = the
seed; reused when its truth file holds the same settings) and reports on the test users:
- `chance`: a random ranking (expected value);
- `popularity`: items ranked by their training clicks;
- `reference_mle`: the generator's own form fitted by maximum likelihood
  (`benchmarks/reference_mle.py`; cached as `reference_mle.json`);
- `LSTM`, `PW`: ganrl's user model trained by `experiment_user_model/run_gan_user_model.sh`
  with its defaults (`--seed` = the seed) and the extra flags given after `--`; finished runs
  are reused (`ganrl/runs/` of the world's folder, a folder per set of extra flags). As
  ganrl reports them, prec@k comes from the checkpoint best on validation prec@k; the losses
  from the checkpoint best on validation loss (train loss: the mean over the iterations
  before that evaluation);
- `bayes`: the reachable limit (the posterior predictive with the true parameters).
Each figure is the mean over seeds with its standard deviation (`±`, over seeds). Losses are
the mean negative log-likelihood of the observed choice per event. Writes `records.csv` (one
row per world, size, seed and method), `summary.json` and `table.md` in `--out`.

  python -m benchmarks.bench_synthetic_table --skip_ganrl     # from the repository root
  python -m benchmarks.bench_synthetic_table --users=1000 --seeds=0 -- --num_itrs=100
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys

import numpy as np

from benchmarks import reference_mle  # noqa: E402
from benchmarks.bench_user_model import run_one  # noqa: E402
from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import SPLIT_NAMES, load_split_data, paths  # noqa: E402
from ganrl.data.pipeline import PrepareConfig, prepare  # noqa: E402
from ganrl.data.synthetic import (  # noqa: E402
    DEFAULT_WORLD,
    SyntheticConfig,
    load_truth,
    world_settings,
)
from ganrl.metrics import ranking_summary  # noqa: E402
from ganrl.user_model_baselines.neighbours import training_clicks  # noqa: E402

DATASET = "synthetic"
FIGURES = ("test_prec1", "test_prec2", "train_loss", "vali_loss", "test_loss")
METHODS = ("chance", "popularity", "reference_mle", "LSTM", "PW", "bayes")


def ensure_world(folder: str, config: SyntheticConfig, seed: int) -> dict:
    """The truth of the world in `folder`, generated unless it holds these settings."""
    truth_path = paths(folder, DATASET)["truth"]
    if os.path.exists(truth_path):
        stored, truth = load_truth(truth_path)
        if stored == config:
            return truth
    print(f"generating {folder}", flush=True)
    prepare(
        DATASET,
        PrepareConfig(
            data_folder=folder, seed=seed, max_display=config.max_display, synthetic=config
        ),
    )
    return load_truth(truth_path)[1]


def truth_figures(truth: dict, scorer: str) -> dict:
    """Test prec@k of the truth's `scorer` ('chance' or 'bayes'); for 'bayes' also each
    split's loss under the posterior predictive `bayes_prob`."""
    out = {f"test_prec{k}": float(truth[f"test_{scorer}_prec{k}"]) for k in (1, 2)}
    if scorer == "bayes":
        prob, clicked = truth["bayes_prob"], truth["clicked_pos"]
        chosen = np.where(
            clicked >= 0, prob[np.arange(len(prob)), np.maximum(clicked, 0)], 1.0 - prob.sum(axis=1)
        )
        for code, split in enumerate(SPLIT_NAMES):
            out[f"{split}_loss"] = float(-np.log(chosen[truth["event_split"] == code]).mean())
    return out


def popularity_figures(folder: str) -> dict:
    """Test prec@k of ranking by training clicks."""
    splits = load_split_data(folder, DATASET).splits
    test = splits["test"]
    summary = ranking_summary(
        training_clicks(splits["train"])[test.display], test.display_mask, test.clicked_pos
    )
    return {f"test_prec{k}": summary[f"prec{k}"] for k in (1, 2)}


def reference_figures(folder: str, seed: int) -> dict:
    """The reference learner's figures (fitted once, then read from `reference_mle.json`)."""
    path = os.path.join(folder, "reference_mle.json")
    if not os.path.exists(path):
        print(f"fitting the reference learner in {folder}", flush=True)
        config = reference_mle.config_for(folder, DATASET, seed=seed)
        safe_io.dump_json(path, reference_mle.run(folder, DATASET, config))
    with open(path) as f:
        results = json.load(f)
    return {
        "test_prec1": results["test"]["prec1"],
        "test_prec2": results["test"]["prec2"],
        **{f"{split}_loss": results[split]["loss"] for split in SPLIT_NAMES},
        "best": results["best_epoch"],
    }


def ganrl_figures(folder: str, user_model: str, seed: int, extra: list[str]) -> dict:
    """Trains (or reuses) a ganrl run and reads its figures (see the module docstring)."""
    tag = hashlib.sha1(" ".join(extra).encode()).hexdigest()[:8] if extra else "defaults"
    out = os.path.join(folder, "ganrl", tag)
    record = run_one(DATASET, user_model, seed, out, folder, extra)
    run_dir = os.path.join(out, "runs", f"{DATASET}__{user_model}__{seed}")
    with open(os.path.join(run_dir, "results.json")) as f:
        best = json.load(f)["best_iteration"]["loss"]
    with open(os.path.join(run_dir, "curves.csv")) as f:
        row = [r for r in csv.DictReader(f) if int(r["iteration"]) == best][-1]
    return {
        "test_prec1": record["prec1"],
        "test_prec2": record["prec2"],
        "train_loss": float(row["train_loss"]),
        "vali_loss": float(row["vali_loss"]),
        "test_loss": record["loss"],
        "best": best,
    }


def cell_records(
    world: str, users: int, seed: int, args: argparse.Namespace, extra: list[str]
) -> list[dict]:
    """One record per method for one world, size and seed."""
    config = SyntheticConfig(
        users=users, posterior_samples=args.posterior_samples, **world_settings(world)
    )
    folder = os.path.join(os.path.abspath(args.work), f"{world}__{users}__{seed}")
    truth = ensure_world(folder, config, seed)
    figures = {
        "chance": truth_figures(truth, "chance"),
        "popularity": popularity_figures(folder),
        "reference_mle": reference_figures(folder, seed),
    }
    if not args.skip_ganrl:
        for user_model in args.user_models.split(","):
            figures[user_model] = ganrl_figures(folder, user_model, seed, extra)
    figures["bayes"] = truth_figures(truth, "bayes")
    return [
        {
            "world": world,
            "users": users,
            "seed": seed,
            "method": method,
            **{k: values.get(k, float("nan")) for k in FIGURES},
            "best": values.get("best", ""),
        }
        for method, values in figures.items()
    ]


def summarise(records: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per world, size and method."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["world"], r["users"], r["method"]), []).append(r)
    rows = []
    for (world, users, method), group in groups.items():
        row = {"world": world, "users": users, "method": method, "seeds": len(group)}
        for key in FIGURES:
            values = np.array([r[key] for r in group], dtype=float)
            row[key] = float(values.mean())
            row[key + "_sd"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        rows.append(row)
    return rows


def _cell(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.3f}" if not np.isfinite(sd) else f"{mean:.3f} ± {sd:.3f}"


def markdown(rows: list[dict]) -> str:
    lines = [
        "| world | users | method | seeds | test prec@1 | test prec@2 | train loss "
        "| vali loss | test loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = " | ".join(_cell(r[k], r[k + "_sd"]) for k in FIGURES)
        lines.append(f"| {r['world']} | {r['users']:,} | {r['method']} | {r['seeds']} | {cells} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worlds", default=DEFAULT_WORLD, help="comma-separated world names")
    parser.add_argument("--users", default="3000,20000", help="comma-separated user counts")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--user_models", default="LSTM,PW")
    parser.add_argument(
        "--skip_ganrl",
        action="store_true",
        help="only chance, popularity, the reference learner and the limit",
    )
    parser.add_argument(
        "--posterior_samples", type=int, default=SyntheticConfig().posterior_samples
    )
    parser.add_argument(
        "--work", default="runs/synthetic_table", help="where the worlds' datasets and runs go"
    )
    parser.add_argument("--out", default="benchmarks/results/synthetic_table")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    records = []
    for world in args.worlds.split(","):
        for users in (int(u) for u in args.users.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                for record in cell_records(world, users, seed, args, extra):
                    print(json.dumps(record), flush=True)
                    records.append(record)
    rows = summarise(records)
    table = markdown(rows)
    os.makedirs(args.out, exist_ok=True)
    with safe_io.atomic_open(os.path.join(args.out, "records.csv"), "w") as f:
        writer = csv.DictWriter(f, list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    safe_io.dump_json(
        os.path.join(args.out, "summary.json"),
        {"args": vars(args), "ganrl_flags": extra, "records": records, "summary": rows},
    )
    with safe_io.atomic_open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
