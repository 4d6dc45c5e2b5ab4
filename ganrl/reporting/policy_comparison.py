"""Policies compared over datasets and seeds: a table and a plot from finished protocol runs.

Input: the `results.json` of `PolicyRunner` runs keyed by (dataset, seed). Every policy of a
run was trained in that dataset's training simulator and evaluated in its test simulator.
Output: per (policy, dataset) the cumulative reward and the CTR over the horizon, mean and
standard deviation (population, ddof=0) over seeds of the per-seed means, and the mean training
wall time; as Markdown, as CSV, and a PNG of the cumulative-reward curves.
"""

from __future__ import annotations

import os

import numpy as np

from ganrl.data import safe_io
from ganrl.reporting.curves import plot_lines, save_figure
from ganrl.reporting.tables import ordered_unique

FIELDS = (
    "dataset",
    "policy",
    "seeds",
    "reward_mean",
    "reward_std",
    "ctr_mean",
    "ctr_std",
    "train_seconds",
)


def summarise(runs: dict[tuple[str, int], dict]) -> list[dict]:
    """One row per (dataset, policy), in order of first appearance."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for (dataset, _seed), results in runs.items():
        for policy, result in results["policies"].items():
            groups.setdefault((dataset, policy), []).append(result)
    rows = []
    for (dataset, policy), results in groups.items():
        reward = np.array([r["cumulative_reward"]["mean"] for r in results])
        ctr = np.array([r["ctr"]["mean"] for r in results if "ctr" in r])
        seconds = np.array([r.get("train_seconds", 0.0) for r in results])
        rows.append(
            {
                "dataset": dataset,
                "policy": policy,
                "seeds": len(results),
                "reward_mean": float(reward.mean()),
                "reward_std": float(reward.std()),
                "ctr_mean": float(ctr.mean()) if len(ctr) else float("nan"),
                "ctr_std": float(ctr.std()) if len(ctr) else float("nan"),
                "train_seconds": float(seconds.mean()),
            }
        )
    return rows


def _cell(mean: float, std: float) -> str:
    return "-" if np.isnan(mean) else f"{mean:.3f} ({std:.3f})"


def markdown(rows: list[dict]) -> str:
    """Policies x datasets; each dataset has cumulative reward, CTR and training seconds."""
    datasets = ordered_unique([r["dataset"] for r in rows])
    policies = ordered_unique([r["policy"] for r in rows])
    by_key = {(r["dataset"], r["policy"]): r for r in rows}
    header = ["policy"]
    for d in datasets:
        header += [f"{d} cumulative reward", f"{d} CTR", f"{d} train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in policies:
        cells = [p]
        for d in datasets:
            r = by_key.get((d, p))
            if r is None:
                cells += ["-", "-", "-"]
                continue
            cells += [
                _cell(r["reward_mean"], r["reward_std"]),
                _cell(r["ctr_mean"], r["ctr_std"]),
                f"{r['train_seconds']:.1f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], out_dir: str) -> str:
    """Writes comparison.md and comparison.csv (atomically); returns the Markdown."""
    safe_io.make_folder(out_dir, "--out")
    text = markdown(rows)
    with safe_io.atomic_open(os.path.join(out_dir, "comparison.md"), "w") as f:
        f.write(text)
    safe_io.write_csv_rows(os.path.join(out_dir, "comparison.csv"), FIELDS, rows)
    return text


def plot(runs: dict[tuple[str, int], dict], path: str) -> None:
    """One panel per dataset: each policy's cumulative reward per step, mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = ordered_unique([d for d, _ in runs])
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        curves: dict[str, list] = {}
        for (d, _seed), results in runs.items():
            if d == dataset:
                for policy, r in results["policies"].items():
                    curves.setdefault(policy, []).append(r["reward_curve"])
        plot_lines(
            ax, {policy: np.mean(np.array(seeds), axis=0) for policy, seeds in curves.items()}
        )
        # Two lines: one did not fit a 5-inch panel.
        ax.set_title(
            f"{dataset}: cumulative reward per user\n(test simulator, mean over seeds)",
            fontsize=10,
        )
        ax.set_xlabel("time step")
        ax.set_ylabel("cumulative reward")
    save_figure(fig, path)
