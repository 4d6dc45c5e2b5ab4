"""Compares user-model runs from their run folders: curves as PNG plots, a summary table.

`python -m ganrl.reporting.compare RUN_DIR [RUN_DIR ...] --out DIR` reads each run folder
written by `ganrl.train.user_model.UserModelRunner`:
  config.json   the run's configuration (nested dicts are flattened to dotted keys);
  curves.csv    iteration,phase,train_loss,vali_loss,vali_prec1,vali_prec2,events_per_second
                (phase `mle` or `adversarial`);
  results.json  when the run finished: {"test": {"loss", "prec1", "prec2"}, "vali": {...},
                "train_seconds", "events_per_second", "peak_rss_mb"}.
It draws `vali_loss.png`, `vali_prec1.png` and `vali_prec2.png` in DIR (one line per run,
dashed where the phase is adversarial), labels each run by the configuration keys whose
values differ between the runs (paths such as `save_dir` aside), and prints and writes
`summary.md`: best validation figures over the curve and the test figures of results.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

from ganrl.data import safe_io
from ganrl.data.safe_io import DataError
from ganrl.reporting.curves import line_style, save_figure
from ganrl.reporting.tables import markdown_table, read_typed_csv

CURVE_COLUMNS = (
    "iteration",
    "phase",
    "train_loss",
    "vali_loss",
    "vali_prec1",
    "vali_prec2",
    "events_per_second",
)
PLOTS = (
    ("vali_loss", "validation loss"),
    ("vali_prec1", "validation prec@1"),
    ("vali_prec2", "validation prec@2"),
)
# Keys that differ between runs without describing the model: never used as labels.
IGNORED_KEYS = (
    "save_dir",
    "data_folder",
    "pretrain_dir",
    "eval_batch_users",
    "steps_per_call",
    "checkpoint_secs",
)


@dataclasses.dataclass
class Run:
    """One run folder's contents.

    Attributes:
      path: the folder.
      config: the flattened configuration (`model.rnn_hidden_dim`, ...).
      curves: one dict per curves.csv row, `iteration` an int, `phase` a str, the rest floats
        (NaN where empty).
      results: results.json, or None while the run is unfinished.
    """

    path: str
    config: dict
    curves: list[dict]
    results: dict | None

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))


def flatten_config(config: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys: {"model": {"dims": 3}} -> {"model.dims": 3}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _number(text: str | None) -> float:
    return float("nan") if text in (None, "") else float(text)


def read_curves(path: str) -> list[dict]:
    """Rows of a curves.csv: `iteration` an int, `phase` a str, the rest floats (NaN where
    empty).

    Raises:
      DataError: a missing column or a value that is not a number, naming file, line, field.
    """
    parsers = {c: _number for c in CURVE_COLUMNS}
    parsers.update(iteration=int, phase=str)
    return read_typed_csv(path, parsers)


def read_run(path: str) -> Run:
    """Reads a run folder (config.json and curves.csv required, results.json optional).

    Raises:
      DataError: a missing or malformed file, naming it.
    """
    for required in ("config.json", "curves.csv"):
        if not os.path.exists(os.path.join(path, required)):
            raise DataError(f"{path}: no {required}: not a user-model run folder")
    results_path = os.path.join(path, "results.json")
    return Run(
        path=path,
        config=flatten_config(safe_io.read_json_object(os.path.join(path, "config.json"))),
        curves=read_curves(os.path.join(path, "curves.csv")),
        results=read_results(results_path) if os.path.exists(results_path) else None,
    )


def read_results(path: str) -> dict:
    """A user-model run's results.json, checked for what the summary reads: `test` an
    object of numbers (loss, prec1, prec2; each may be absent) and `train_seconds` a number.

    Raises:
      DataError: naming the file and the field that has another form.
    """
    results = safe_io.read_json_object(path)
    test = results.get("test", {})
    if not isinstance(test, dict):
        raise DataError(f"{path}: field 'test': expected an object, got {test!r}")
    fields = {f"test.{m}": test[m] for m in ("loss", "prec1", "prec2") if m in test}
    if "train_seconds" in results:
        fields["train_seconds"] = results["train_seconds"]
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{path}: field {name!r}: expected a number, got {value!r}")
    return results


def differing_keys(configs: list[dict], ignore: tuple[str, ...] = IGNORED_KEYS) -> list[str]:
    """Keys whose values are not the same in every config (absent counts as a value), in
    order of first appearance, without `ignore`d ones."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [
        k
        for k in keys
        if k not in ignore
        and len(
            {
                json.dumps(c[k] if k in c else "<absent>", sort_keys=True, default=str)
                for c in configs
            }
        )
        > 1
    ]


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    return str(value)


def run_labels(runs: list[Run], ignore: tuple[str, ...] = IGNORED_KEYS) -> list[str]:
    """`key=value, ...` over the differing keys; the folder name when nothing differs, and
    the folder name appended where two labels would be equal."""
    keys = differing_keys([r.config for r in runs], ignore)
    labels = [
        ", ".join(f"{k}={format_value(r.config.get(k, '<absent>'))}" for k in keys) or r.name
        for r in runs
    ]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [
        f"{label} [{r.name}]" if label in repeated and label != r.name else label
        for label, r in zip(labels, runs)
    ]


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if not math.isnan(v) and not math.isinf(v)]


def summary_rows(runs: list[Run], labels: list[str]) -> list[dict]:
    """Per run: label, folder, last iteration, best validation loss (lowest) / prec@1 / prec@2
    (highest) over the curve, and test loss / prec@1 / prec@2 and train seconds from
    results.json (NaN when absent)."""
    rows = []
    for run, label in zip(runs, labels):
        row = {
            "label": label,
            "run": run.name,
            "iterations": max((c["iteration"] for c in run.curves), default=0),
        }
        for column, best in (("vali_loss", min), ("vali_prec1", max), ("vali_prec2", max)):
            values = _finite([c[column] for c in run.curves])
            row[f"best_{column}"] = best(values) if values else float("nan")
        test = (run.results or {}).get("test", {})
        for metric in ("loss", "prec1", "prec2"):
            row[f"test_{metric}"] = float(test.get(metric, float("nan")))
        row["train_seconds"] = float((run.results or {}).get("train_seconds", float("nan")))
        rows.append(row)
    return rows


# (row key, column title, number format)
SUMMARY_COLUMNS = (
    ("label", "run", ""),
    ("run", "folder", ""),
    ("iterations", "iterations", ""),
    ("best_vali_loss", "best vali loss", ".4f"),
    ("best_vali_prec1", "best vali prec@1", ".4f"),
    ("best_vali_prec2", "best vali prec@2", ".4f"),
    ("test_loss", "test loss", ".4f"),
    ("test_prec1", "test prec@1", ".4f"),
    ("test_prec2", "test prec@2", ".4f"),
    ("train_seconds", "train s", ".1f"),
)


def _cell(value, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def markdown_summary(rows: list[dict]) -> str:
    return markdown_table(
        [title for _, title, _ in SUMMARY_COLUMNS],
        [[_cell(row[key], spec) for key, _, spec in SUMMARY_COLUMNS] for row in rows],
    )


def phase_segments(curves: list[dict], column: str) -> list[tuple[str, list[tuple]]]:
    """Runs of consecutive rows of one phase as (phase, [(iteration, value), ...]), finite
    values only; a segment starts at the previous segment's last point so the line joins."""
    segments: list[tuple[str, list[tuple]]] = []
    for row in curves:
        if not math.isfinite(row[column]):
            continue
        point = (row["iteration"], row[column])
        if segments and segments[-1][0] == row["phase"]:
            segments[-1][1].append(point)
        else:
            segments.append((row["phase"], [segments[-1][1][-1]] if segments else []))
            segments[-1][1].append(point)
    return segments


def plot_curves(runs: list[Run], labels: list[str], out_dir: str) -> list[str]:
    """One PNG per validation curve (`PLOTS`), one line per run; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for column, title in PLOTS:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for index, (run, label) in enumerate(zip(runs, labels)):
            # Colour and marker tell the runs apart; the line style tells the phase.
            style = dict(line_style(index), markersize=4)
            for number, (phase, points) in enumerate(phase_segments(run.curves, column)):
                xs, ys = zip(*points)
                style["linestyle"] = "--" if phase == "adversarial" else "-"
                ax.plot(xs, ys, label=label if number == 0 else "_nolegend_", **style)
        ax.set_xlabel("iteration")
        ax.set_ylabel(title)
        ax.set_title(f"{title} (dashed: adversarial phase)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
        path = os.path.join(out_dir, f"{column}.png")
        save_figure(fig, path)
        paths.append(path)
    return paths


def compare(run_dirs: list[str], out_dir: str, ignore: tuple[str, ...] = IGNORED_KEYS) -> str:
    """Reads the runs, writes the plots and `summary.md` into `out_dir`; returns the table."""
    if not run_dirs:
        raise ValueError("no run folders given")
    runs = [read_run(path) for path in run_dirs]
    labels = run_labels(runs, ignore)
    safe_io.make_folder(out_dir, "--out")
    plot_curves(runs, labels, out_dir)
    text = markdown_summary(summary_rows(runs, labels))
    with safe_io.atomic_open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(text)
    return text


def main(argv: list[str]) -> None:
    from absl import flags

    from ganrl.cli.errors import report_error

    try:
        print(compare(argv[1:], flags.FLAGS.out, tuple(flags.FLAGS.ignore_keys)), end="")
    except (DataError, ValueError) as e:
        sys.exit(report_error(e))


if __name__ == "__main__":
    # Flags are defined only when this module is the entry point.
    from absl import app, flags

    flags.DEFINE_string("out", None, "Folder for the PNG plots and summary.md.", required=True)
    flags.DEFINE_list(
        "ignore_keys", list(IGNORED_KEYS), "Configuration keys never used to label runs."
    )
    app.run(main)
