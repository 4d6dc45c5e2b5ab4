"""What a history encoder must capture on the synthetic set: reference rankers with known v, b.

The synthetic generator (`ganrl.data.synthetic`) knows every parameter, so the gap between a
learned user model and the reachable limit (the posterior predictive, `bayes_prob`) can be
split into steps. With the item vectors v, biases b and the history effect known (the world is
the truth file's `config`), this ranks each display set of a split by:
- `oracle`: the true click probabilities (uses the user's taste: a ceiling, not a target);
- `bayes`: the posterior predictive given the user's earlier events (the reachable limit);
- `posterior_mean`: theta's posterior mean . v + base, a single utility per item (what a
  softmax choice model can express at best);
- `surprise_p0`, `surprise_uniform`, `clicks_only`: a linear statistic of the earlier events,
  m = sum_t (v_clicked,t - sum_a w_t(a) v_a) / (1 + k n), scored as s m . v + base, with w_t
  the softmax of the event's base utilities and the no-click option (p0, the likelihood's
  gradient at theta = 0), uniform weights over the displayed items, or none (the clicks'
  sum alone); k and s are tuned on the validation split;
- `chance`.
Learned runs given by `--run_dirs` (run folders trained on the same dataset) are listed beside
them with their test prec@1 and prec@2.

  python benchmarks/bench_synthetic_limits.py --truth=dropbox/synthetic-truth.npz \
      --run_dirs=runs/synthetic__LSTM__entropy__0 --out=benchmarks/results/synthetic_limits
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import SPLIT_NAMES  # noqa: E402
from ganrl.data.synthetic import (  # noqa: E402
    SyntheticConfig,
    base_utilities,
    choice_probabilities,
    load_truth,
    posterior_mean_taste,
)
from ganrl.metrics import precision_at_k  # noqa: E402

SHRINKS = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6)
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def exclusive_user_sums(values: np.ndarray, event_offsets: np.ndarray) -> np.ndarray:
    """`[E, ...]` per-event values -> for each event, the sum over its user's earlier events."""
    lengths = np.diff(event_offsets)
    start = np.repeat(event_offsets[:-1], lengths)
    total = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    return total[:-1] - total[start]


def precisions(
    scores: np.ndarray, mask: np.ndarray, clicked: np.ndarray, rows: np.ndarray
) -> tuple[float, float]:
    rows = rows[clicked[rows] >= 0]
    return tuple(
        float(np.mean(precision_at_k(scores[rows], mask[rows], clicked[rows], k))) for k in (1, 2)
    )


def reference_rankers(
    truth: dict, world: SyntheticConfig, samples: int, seed: int
) -> dict[str, np.ndarray]:
    """`{name: [E, D] scores}` of the rankers of the module docstring, but the tuned linear
    statistics, which `linear_statistics` gives."""
    display, mask, clicked = truth["display"], truth["display_mask"], truth["clicked_pos"]
    offsets = truth["event_offsets"]
    clicked_item = np.where(
        clicked >= 0, display[np.arange(len(display)), np.maximum(clicked, 0)], -1
    )
    vd, base = base_utilities(
        truth["item_vectors"], truth["item_bias"], display, clicked_item, offsets, world
    )
    draws = np.random.default_rng(seed).normal(size=(samples, vd.shape[-1]))
    choice = np.where(clicked >= 0, clicked, display.shape[1])
    theta_mean = posterior_mean_taste(vd, base, mask, choice, offsets, draws, world.no_click_logit)
    return {
        "oracle": truth["true_prob"],
        "bayes": truth["bayes_prob"],
        "posterior_mean": np.einsum("ek,edk->ed", theta_mean, vd) + base,
        "chance": np.zeros(display.shape),
        "_base": base,
        "_vd": vd,
    }


def linear_statistics(
    truth: dict, base: np.ndarray, vd: np.ndarray, no_click_utility: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{name: (m_unshrunk [E, d], n_before [E])}`: the earlier events' statistic per event."""
    display, mask, clicked = truth["display"], truth["display_mask"], truth["clicked_pos"]
    offsets = truth["event_offsets"]
    has_click = clicked >= 0
    v_clicked = np.where(has_click[:, None], vd[np.arange(len(vd)), np.maximum(clicked, 0)], 0.0)
    p0 = choice_probabilities(base, mask, no_click_utility)
    uniform = mask / mask.sum(axis=1, keepdims=True)
    per_event = {
        "surprise_p0": v_clicked - np.einsum("ed,edk->ek", p0, vd),
        "surprise_uniform": v_clicked - np.einsum("ed,edk->ek", uniform, vd),
        "clicks_only": v_clicked,
    }
    n_before = exclusive_user_sums(np.ones(len(display)), offsets)
    return {name: (exclusive_user_sums(x, offsets), n_before) for name, x in per_event.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", required=True, help="NAME-truth.npz of the synthetic set")
    parser.add_argument("--run_dirs", default="", help="comma-separated learned run folders")
    parser.add_argument("--samples", type=int, default=3000, help="posterior draws")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/synthetic_limits")
    args = parser.parse_args()
    world, truth = load_truth(args.truth)
    mask, clicked = truth["display_mask"], truth["clicked_pos"]
    split_rows = {s: np.flatnonzero(truth["event_split"] == i) for i, s in enumerate(SPLIT_NAMES)}
    scores = reference_rankers(truth, world, args.samples, args.seed)
    base, vd = scores.pop("_base"), scores.pop("_vd")
    rows = []
    for name, s in scores.items():
        rows.append(
            {
                "ranker": name,
                **dict(zip(("prec1", "prec2"), precisions(s, mask, clicked, split_rows["test"]))),
            }
        )
    for name, (m, n) in linear_statistics(truth, base, vd, world.no_click_logit).items():
        best = None
        for k in SHRINKS:
            for scale in SCALES:
                s = scale * np.einsum("ek,edk->ed", m / (1.0 + k * n)[:, None], vd) + base
                vali = precisions(s, mask, clicked, split_rows["vali"])[0]
                if best is None or vali > best[0]:
                    best = (vali, k, scale, s)
        _, k, scale, s = best
        rows.append(
            {
                "ranker": name,
                "shrink": k,
                "scale": scale,
                **dict(zip(("prec1", "prec2"), precisions(s, mask, clicked, split_rows["test"]))),
            }
        )
    for run_dir in filter(None, args.run_dirs.split(",")):
        with open(os.path.join(run_dir, "results.json")) as f:
            test = json.load(f)["test"]
        rows.append(
            {"ranker": f"learned: {run_dir}", "prec1": test["prec1"], "prec2": test["prec2"]}
        )
    events = int(np.sum(clicked[split_rows["test"]] >= 0))
    lines = [
        f"test split of {args.truth}: {events} events with a click",
        "",
        "| ranker | test prec@1 | test prec@2 |",
        "|---|---|---|",
    ]
    lines += [f"| {r['ranker']} | {r['prec1']:.4f} | {r['prec2']:.4f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    safe_io.dump_json(os.path.join(args.out, "limits.json"), {"truth": args.truth, "rows": rows})
    with safe_io.atomic_open(os.path.join(args.out, "limits.md"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
