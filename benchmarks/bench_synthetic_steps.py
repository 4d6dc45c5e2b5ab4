"""Where a learner loses to the reachable limit of a synthetic world: test loss and prec@1 by
the number of the user's earlier events.

For a world folder of `bench_synthetic_table` (`WORK/{world}__{users}__{seed}/`, or any data
folder with `synthetic.pkl` and `synthetic-truth.npz`) it reports, for each step t (the
user's t-th display set, t earlier ones before it), the mean negative log-probability of the
observed choice and prec@1 on the test users of:
- `bayes`: the reachable limit (the posterior predictive with the true parameters);
- `reference_mle` (with `--reference`): the generator's own form fitted on the training
  users (`benchmarks/reference_mle.py`, refitted here with the world's seed);
- each ganrl run folder given (`--runs`; default: every finished run under `ganrl/`), from
  its best-loss checkpoint.
At step 0 the history is empty, so what a learner loses there is item-level (biases,
popularity, the choice's form without a taste estimate); what it loses later is how it reads
the history. Writes the table as Markdown to `--out` when given.

  python -m benchmarks.bench_synthetic_steps runs/synthetic_table/lag_popular_always__20000__0
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import load_split_data, paths  # noqa: E402
from ganrl.data.synthetic import load_truth  # noqa: E402
from ganrl.metrics import precision_at_k  # noqa: E402
from ganrl.train.user_model import event_predictions  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402

DATASET = "synthetic"


def bayes_predictions(truth: dict) -> dict[str, np.ndarray]:
    """The limit's per-event figures on the test split, as `event_predictions` gives them."""
    test = truth["event_split"] == 2
    prob, clicked = truth["bayes_prob"][test], truth["clicked_pos"][test]
    mask = truth["display_mask"][test]
    chosen = np.where(
        clicked >= 0,
        prob[np.arange(len(prob)), np.maximum(clicked, 0)],
        1.0 - prob.sum(axis=1),
    )
    return {
        "nll": -np.log(np.maximum(chosen, np.finfo(np.float64).tiny)),
        "scores": prob,
        "display_mask": mask,
        "clicked_pos": clicked,
        "step": truth["event_step"][test],
    }


def reference_predictions(folder: str, seed: int) -> dict[str, np.ndarray]:
    from benchmarks import reference_mle

    config = reference_mle.config_for(folder, DATASET, seed=seed)
    data = load_split_data(folder, DATASET, mmap=False)
    users = {
        name: reference_mle.user_tensors(data.splits[name], config.history_depth)
        for name in ("train", "vali", "test")
    }
    has_no_click = bool(np.any(data.splits["train"].clicked_pos < 0))
    learner = reference_mle.ReferenceLearner(data.n_items, config, has_no_click)
    learner.fit(users["train"], users["vali"])
    return learner.event_predictions(users["test"])


def by_step(predicted: dict[str, np.ndarray]) -> dict[int, tuple[int, float, float]]:
    """step -> (events, mean NLL, prec@1 over the events with a click)."""
    prec1 = precision_at_k(
        predicted["scores"], predicted["display_mask"], predicted["clicked_pos"], 1
    )
    out = {}
    for step in np.unique(predicted["step"]):
        rows = predicted["step"] == step
        out[int(step)] = (
            int(rows.sum()),
            float(predicted["nll"][rows].mean()),
            float(np.nanmean(prec1[rows])) if np.any(~np.isnan(prec1[rows])) else float("nan"),
        )
    out[-1] = (
        len(predicted["nll"]),
        float(predicted["nll"].mean()),
        float(np.nanmean(prec1)),
    )
    return out


def table(methods: dict[str, dict[int, tuple[int, float, float]]]) -> str:
    """Markdown: a row per step (and `all`), the limit's loss and prec@1, then each method's
    loss above the limit and prec@1."""
    bayes = methods["bayes"]
    others = [m for m in methods if m != "bayes"]
    head = ["step", "events", "bayes loss", "bayes prec@1"]
    for m in others:
        head += [f"{m} loss - bayes", f"{m} prec@1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step in sorted(bayes, key=lambda s: (s < 0, s)):
        events, loss, prec = bayes[step]
        row = ["all" if step < 0 else str(step), f"{events:,}", f"{loss:.3f}", f"{prec:.3f}"]
        for m in others:
            _, other_loss, other_prec = methods[m].get(step, (0, float("nan"), float("nan")))
            row += [f"{other_loss - loss:+.3f}", f"{other_prec:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", help="a world folder (synthetic.pkl, synthetic-truth.npz)")
    parser.add_argument(
        "--runs", default="", help="comma-separated ganrl run folders (default: all finished)"
    )
    parser.add_argument("--reference", action="store_true", help="also fit the reference MLE")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the reference learner's seed (default: the folder name's last `__` part, as "
        "bench_synthetic_table names worlds, else 0)",
    )
    parser.add_argument("--out", default="", help="write the Markdown table here")
    args = parser.parse_args()
    _, truth = load_truth(paths(args.folder, DATASET)["truth"])
    methods = {"bayes": by_step(bayes_predictions(truth))}
    if args.reference:
        seed = args.seed
        if seed is None:
            last = os.path.basename(os.path.normpath(args.folder)).rsplit("__", 1)[-1]
            seed = int(last) if last.isdigit() else 0
        methods["reference_mle"] = by_step(reference_predictions(args.folder, seed))
    runs = (
        args.runs.split(",")
        if args.runs
        else sorted(
            os.path.dirname(p)
            for p in glob.glob(os.path.join(args.folder, "ganrl", "*", "runs", "*", "results.json"))
        )
    )
    data = load_split_data(args.folder, DATASET)
    for run in runs:
        name = os.path.relpath(run, os.path.join(args.folder, "ganrl"))
        model = load_user_model(run).behavior
        methods[name] = by_step(event_predictions(model, data.splits["test"]))
    text = table(methods)
    print(text, flush=True)
    if args.out:
        with safe_io.atomic_open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
