"""The synthetic table script: its summary by hand, and its non-ganrl columns end to end (with
the by-step view of `benchmarks/bench_synthetic_steps.py`)."""

import csv
import json
import math
import sys

import numpy as np
import pytest

from benchmarks.bench_synthetic_steps import by_step, table
from benchmarks.bench_synthetic_table import markdown, summarise
from tests.script_helpers import run_script


def test_summary_by_hand():
    # Two seeds of one method: prec@1 0.5 and 0.7 -> mean 0.6, sd sqrt(0.02) = 0.141 (n - 1);
    # one seed of another: no spread.
    nan = float("nan")
    records = [
        {
            "world": "w",
            "users": 10,
            "seed": s,
            "method": "m",
            "test_prec1": p,
            "test_prec2": 1.0,
            "train_loss": nan,
            "vali_loss": nan,
            "test_loss": nan,
        }
        for s, p in ((0, 0.5), (1, 0.7))
    ]
    records.append({**records[0], "method": "other"})
    rows = summarise(records)
    assert [r["method"] for r in rows] == ["m", "other"]
    assert math.isclose(rows[0]["test_prec1"], 0.6)
    assert math.isclose(rows[0]["test_prec1_sd"], math.sqrt(0.02))
    lines = markdown(rows).splitlines()
    assert lines[2] == "| w | 10 | m | 2 | 0.600 ± 0.141 | 1.000 ± 0.000 | - | - | - |"
    assert lines[3] == "| w | 10 | other | 1 | 0.500 | 1.000 | - | - | - |"


def test_steps_by_hand():
    # Two users of 2 and 1 events: step 0 has events 0 and 2, step 1 event 1.
    predicted = {
        "nll": np.array([1.0, 0.5, 2.0]),
        "scores": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
        "display_mask": np.ones((3, 2), bool),
        "clicked_pos": np.array([0, 0, 1]),
        "step": np.array([0, 1, 0]),
    }
    steps = by_step(predicted)
    assert steps[0] == (2, 1.5, 0.5)  # event 0 ranked right, event 2 wrong
    assert steps[1] == (1, 0.5, 0.0)
    assert steps[-1][0] == 3 and math.isclose(steps[-1][1], 3.5 / 3)
    better = {k: (n, loss - 0.25, p) for k, (n, loss, p) in steps.items()}
    lines = table({"bayes": better, "m": steps}).splitlines()
    assert lines[0] == "| step | events | bayes loss | bayes prec@1 | m loss - bayes | m prec@1 |"
    assert lines[2] == "| 0 | 2 | 1.250 | 0.500 | +0.250 | 0.500 |"
    assert lines[-1].startswith("| all | 3 | 0.917 | 0.333 | +0.250 | 0.333 |")


@pytest.mark.slow
def test_table_without_ganrl(tmp_path):
    args = [
        sys.executable,
        "-m",
        "benchmarks.bench_synthetic_table",
        "--skip_ganrl",
        "--users=120",
        "--seeds=0,1",
        "--posterior_samples=50",
        f"--work={tmp_path / 'work'}",
        f"--out={tmp_path / 'out'}",
    ]
    run_script(args)
    with open(tmp_path / "out" / "records.csv") as f:
        records = list(csv.DictReader(f))
    assert [r["method"] for r in records[:4]] == ["chance", "popularity", "reference_mle", "bayes"]
    assert len(records) == 8 and {r["seed"] for r in records} == {"0", "1"}
    summary = {
        r["method"]: r
        for r in json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    }
    assert summary["bayes"]["test_prec1"] > summary["chance"]["test_prec1"] + 0.2
    assert math.isfinite(summary["reference_mle"]["vali_loss"])
    # A second run reuses the worlds and the reference fits.
    again = run_script(args)
    assert "generating" not in again.stdout and "fitting" not in again.stdout
    # The by-step view of the same world: its `all` rows are the table's test figures (the
    # reference learner refitted with the same seed).
    out = tmp_path / "steps.md"
    world = tmp_path / "work" / "lag_popular_always__120__0"
    run_script(
        [sys.executable, "-m", "benchmarks.bench_synthetic_steps", str(world), "--reference"]
        + [f"--out={out}"]
    )
    cells = out.read_text().strip().splitlines()[-1].strip("|").split("|")
    bayes_loss, bayes_prec1 = float(cells[2]), float(cells[3])
    reference_above, reference_prec1 = float(cells[4]), float(cells[5])
    first = {r["method"]: r for r in records if r["seed"] == "0"}
    assert math.isclose(bayes_loss, float(first["bayes"]["test_loss"]), abs_tol=6e-4)
    assert math.isclose(bayes_prec1, float(first["bayes"]["test_prec1"]), abs_tol=6e-4)
    assert math.isclose(
        bayes_loss + reference_above, float(first["reference_mle"]["test_loss"]), abs_tol=2e-3
    )
    assert math.isclose(reference_prec1, float(first["reference_mle"]["test_prec1"]), abs_tol=2e-3)
