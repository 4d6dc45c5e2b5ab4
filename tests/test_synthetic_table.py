"""The synthetic table script: its summary by hand, and its non-ganrl columns end to end."""

import csv
import json
import math
import sys

import pytest

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
