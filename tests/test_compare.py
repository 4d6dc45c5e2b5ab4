"""`ganrl.reporting.compare`: labels from differing configs, summary figures, plots, bad run
folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ganrl.data.safe_io import DataError
from ganrl.reporting.compare import compare, phase_segments, read_run, run_labels, summary_rows

HEADER = "iteration,phase,train_loss,vali_loss,vali_prec1,vali_prec2,events_per_second"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_run(folder, config: dict, rows: list[str], results: dict | None = None) -> str:
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "curves.csv"), "w") as f:
        f.write("\n".join([HEADER] + rows) + "\n")
    if results is not None:
        with open(os.path.join(folder, "results.json"), "w") as f:
            json.dump(results, f)
    return str(folder)


def base_config(save_dir: str, **changes) -> dict:
    config = {
        "dataset": "yelp",
        "save_dir": save_dir,
        "seed": 0,
        "regularizer": "entropy",
        "learning_rate": 0.0005,
        "model": {"user_model": "LSTM", "rnn_hidden_dim": 20},
    }
    for key, value in changes.items():
        if key.startswith("model."):
            config["model"][key[len("model.") :]] = value
        else:
            config[key] = value
    return config


@pytest.fixture
def runs(tmp_path):
    a = write_run(
        tmp_path / "a",
        base_config("runs/a"),
        ["0,mle,,1.5,0.40,0.60,", "50,mle,1.2,1.1,0.60,0.80,900", "100,mle,1.0,1.2,0.65,0.78,950"],
        {
            "test": {"loss": 1.15, "prec1": 0.62, "prec2": 0.81},
            "vali": {},
            "train_seconds": 12.5,
            "events_per_second": 930,
            "peak_rss_mb": 400,
        },
    )
    b = write_run(
        tmp_path / "b",
        base_config("runs/b", **{"model.rnn_hidden_dim": 64, "regularizer": "L2"}),
        ["0,adversarial,,1.4,0.50,0.70,", "50,adversarial,1.3,nan,0.55,0.75,800"],
    )
    return [a, b]


def test_labels_name_the_differing_keys_only(runs):
    loaded = [read_run(r) for r in runs]
    # save_dir differs too but is a path, not a setting.
    assert run_labels(loaded) == [
        "regularizer=entropy, model.rnn_hidden_dim=20",
        "regularizer=L2, model.rnn_hidden_dim=64",
    ]


def test_identical_configs_fall_back_to_folder_names(tmp_path):
    a = write_run(tmp_path / "x", base_config("x"), ["0,mle,,1,0.5,0.7,"])
    b = write_run(tmp_path / "y", base_config("y"), ["0,mle,,1,0.5,0.7,"])
    assert run_labels([read_run(a), read_run(b)]) == ["x", "y"]


def test_summary_best_values_and_test_figures(runs):
    loaded = [read_run(r) for r in runs]
    rows = summary_rows(loaded, run_labels(loaded))
    # Run a: lowest vali loss 1.1 (iteration 50), highest prec@1 0.65, prec@2 0.80.
    assert rows[0]["best_vali_loss"] == pytest.approx(1.1)
    assert rows[0]["best_vali_prec1"] == pytest.approx(0.65)
    assert rows[0]["best_vali_prec2"] == pytest.approx(0.80)
    assert rows[0]["test_prec1"] == pytest.approx(0.62)
    assert rows[0]["iterations"] == 100
    # Run b: the NaN loss is skipped; unfinished, so no test figures.
    assert rows[1]["best_vali_loss"] == pytest.approx(1.4)
    assert rows[1]["test_prec1"] != rows[1]["test_prec1"]  # NaN


def test_compare_writes_plots_and_table(runs, tmp_path):
    out = tmp_path / "out"
    text = compare(runs, str(out))
    for name in ("vali_loss.png", "vali_prec1.png", "vali_prec2.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
    assert (out / "summary.md").read_text() == text
    lines = text.splitlines()
    assert lines[2].startswith(
        "| regularizer=entropy, model.rnn_hidden_dim=20 | a | 100 | "
        "1.1000 | 0.6500 | 0.8000 | 1.1500 | 0.6200 | 0.8100 | 12.5 |"
    )
    assert lines[3].endswith("| 1.4000 | 0.5500 | 0.7500 | - | - | - | - |")


def test_bad_run_folders_are_named(tmp_path):
    with pytest.raises(DataError, match="no config.json"):
        read_run(str(tmp_path))
    bad = write_run(tmp_path / "bad", base_config("bad"), ["0,mle,,abc,0.5,0.7,"])
    with pytest.raises(DataError, match=r"curves.csv: line 2, field 'vali_loss'"):
        read_run(bad)


def test_a_last_curve_row_cut_by_a_kill_is_dropped_and_others_refused(tmp_path):
    rows = ["0,mle,,1.5,0.5,0.7,", "10,mle,1.2,1.3,0.6,0.8,"]
    # A kill while appending leaves a short last row: dropped, as a resumed run drops it
    # (read as it stands, its missing fields were NaN and its vali_loss 1.0 the best).
    cut = read_run(write_run(tmp_path / "cut", base_config("c"), rows + ["20,mle,1.1,1.0"]))
    assert [(c["iteration"], c["vali_loss"]) for c in cut.curves] == [(0, 1.5), (10, 1.3)]
    with pytest.raises(DataError, match=r"curves.csv: line 3: expected 7 fields .* got fewer"):
        read_run(write_run(tmp_path / "mid", base_config("m"), [rows[0], "5,mle,1.1", rows[1]]))
    with pytest.raises(DataError, match=r"curves.csv: line 2: expected 7 fields .* got more"):
        read_run(write_run(tmp_path / "wide", base_config("x"), [rows[0] + ",9"]))


@pytest.mark.parametrize(
    "results, field",
    [({"test": [1, 2]}, "'test': expected an object"), ({"test": {"loss": None}}, "'test.loss'")],
)
def test_results_of_another_form_are_named(tmp_path, results, field):
    folder = write_run(tmp_path / "r", base_config("r"), ["0,mle,,1.5,0.5,0.7,"], results)
    with pytest.raises(DataError, match=f"results.json: field {field}"):
        read_run(folder)


def test_an_out_path_under_a_file_is_refused_by_name(runs, tmp_path):
    (tmp_path / "afile").write_text("")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(DataError, match=f"--out={out}: it or a folder above it is a file"):
            compare(runs, str(out))


def test_command_line(runs, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "ganrl.reporting.compare", *runs, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert done.returncode == 0, done.stderr
    assert "regularizer=L2, model.rnn_hidden_dim=64" in done.stdout
    assert (out / "vali_prec2.png").stat().st_size > 1000
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganrl.reporting.compare",
            str(tmp_path / "none"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert failed.returncode == 1 and "no config.json" in failed.stderr


def test_phase_segments_join_at_the_phase_change():
    rows = [
        {"iteration": i, "phase": p, "v": v}
        for i, p, v in [
            (0, "mle", 1.0),
            (50, "mle", float("nan")),
            (100, "mle", 0.5),
            (150, "adversarial", 0.4),
            (200, "adversarial", 0.3),
        ]
    ]
    # The NaN row is skipped; the adversarial line starts at the last mle point.
    assert phase_segments(rows, "v") == [
        ("mle", [(0, 1.0), (100, 0.5)]),
        ("adversarial", [(100, 0.5), (150, 0.4), (200, 0.3)]),
    ]
