"""Line plots that stay readable: each line its own colour, line style and marker, and a
legend note for a line that coincides with an earlier one (drawn under it, it would vanish).

`plot_policy_run` draws a `PolicyRunner` run's `curves.png`; `ganrl.reporting.compare` and
`ganrl.reporting.policy_comparison` draw their figures with `line_style` and `legend_labels`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ganrl.data import safe_io

LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">")


def line_style(index: int) -> dict:
    """Matplotlib keywords of line `index`: a colour of the 10-colour cycle, a line style and
    a hollow marker, all three cycling at different lengths (10, 4 and 11), so no two of the
    first 220 lines look alike. Markers grow with the index, so where lines coincide the later
    line's marker rings the earlier one's instead of hiding it."""
    return {
        "color": f"C{index % 10}",
        "linestyle": LINE_STYLES[index % len(LINE_STYLES)],
        "marker": MARKERS[index % len(MARKERS)],
        "fillstyle": "none",
        "markersize": 4 + 1.5 * (index % 4),
    }


def legend_labels(curves: dict[str, Sequence[float]]) -> dict[str, str]:
    """`{name: legend label}`: the name, plus "(= other)" when its curve equals that of an
    earlier name (same length, values within 1e-9)."""
    labels, seen = {}, []
    for name, curve in curves.items():
        values = np.asarray(curve, dtype=np.float64)
        twin = next(
            (
                other
                for other, v in seen
                if v.shape == values.shape
                and np.allclose(v, values, rtol=0, atol=1e-9, equal_nan=True)
            ),
            None,
        )
        labels[name] = f"{name} (= {twin})" if twin else name
        seen.append((name, values))
    return labels


def plot_lines(ax, curves: dict[str, Sequence[float]], start: int = 1) -> None:
    """One line per curve on `ax` (x from `start`), styled and labelled as above."""
    labels = legend_labels(curves)
    for index, (name, curve) in enumerate(curves.items()):
        ax.plot(range(start, len(curve) + start), curve, label=labels[name], **line_style(index))
    if curves:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def save_figure(fig, path: str) -> None:
    """Writes `fig` as a PNG at `path` atomically and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with safe_io.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def policy_run_figure(results: dict):
    """A policy run's panels (a matplotlib figure): each policy's cumulative reward per user
    over the horizon in the test simulator, its CTR per step (with a no-click option), and,
    when run, the CDQN's adaptation and the regret curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["reward_curve"] + (["ctr_curve"] if results["has_no_click"] else [])
    panels += [p for p in ("adaptation", "regret") if p in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "regret":
            plot_lines(ax, results["regret"])
            ax.set_title("regret against the best slate (test simulator)", fontsize=10)
            ax.set_xlabel("online step in the test simulator")
            ax.set_ylabel("cumulative regret per user")
        elif panel == "adaptation":
            adaptation = results["adaptation"]
            plot_lines(
                ax, {f"cdqn {label}": adaptation[label] for label in ("pretrained", "scratch")}
            )
            ax.set_title("CDQN learning online in the test simulator", fontsize=10)
            ax.set_xlabel("online episode in the test simulator")
            ax.set_ylabel(adaptation["metric"])
        else:
            plot_lines(ax, {name: r[panel] for name, r in results["policies"].items()})
            reward = panel == "reward_curve"
            ax.set_title(
                ("cumulative reward per user" if reward else "click rate per step")
                + " (test simulator)",
                fontsize=10,
            )
            ax.set_xlabel("time step")
            ax.set_ylabel("cumulative reward" if reward else "CTR")
    return fig


def plot_policy_run(results: dict, path: str) -> None:
    """`policy_run_figure` written as a PNG to `path`."""
    save_figure(policy_run_figure(results), path)
