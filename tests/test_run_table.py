"""run_table.sh end to end and an ablation script, on a tiny synthetic dataset, a few iterations."""

import csv
import json
import re

import numpy as np
import pytest

from ganrl.train import table_runs
from ganrl.train.run_folder import RunFolderError
from ganrl.train.user_model import TrainConfig
from ganrl.user_model.model import ModelConfig
from tests.script_helpers import run_script, synthetic_data_folder
from tests.tiny_data import write_tiny_dataset


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    return synthetic_data_folder(tmp_path_factory.mktemp("data"))


def _mtimes(folder):
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/results.json")}


@pytest.mark.slow
def test_table_script_writes_the_tables_and_reuses_records_and_runs(data_folder, tmp_path):
    out = tmp_path / "table"
    args = [
        "experiment_user_model/run_table.sh",
        f"--data_folder={data_folder}",
        "--datasets=synthetic",
        "--seeds=0,1",
        f"--out={out}",
        "--num_itrs=2",
        "--adv_itrs=2",
        "--eval_every=1",
        "--batch_size=5",
        "--methods=chance,most_popular,iknn,gan_pw_l2",
    ]
    first = run_script(args)
    text = (out / "table.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "| method | synthetic prec@1 | synthetic prec@2 |"
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in lines[2:]}
    # Rows in --methods order, labelled; the entropy run GAN-PW (L2) starts from is recorded
    # but not in the table.
    assert list(rows) == ["chance", "most popular", "IKNN", "GAN-PW (L2)"]
    for cells in rows.values():
        assert all(re.fullmatch(r"\d\.\d{3} \(\d\.\d{3}\) ?\|?", c) for c in cells), cells
    with open(out / "records.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert sorted((r["method"], r["seed"]) for r in records) == sorted(
        (m, s)
        for m in ("chance", "most_popular", "iknn", "gan_pw", "gan_pw_l2")
        for s in ("0", "1")
    )
    with open(out / "table.csv", newline="") as f:
        assert [(r["method"], r["seeds"]) for r in csv.DictReader(f)] == [
            ("chance", "2"),
            ("most popular", "2"),
            ("IKNN", "2"),
            ("GAN-PW (L2)", "2"),
        ]
    # The adversarial runs started from the entropy runs of their seed.
    runs = out / "runs"
    config = json.loads((runs / "synthetic__PW__L2__1" / "config.json").read_text())
    assert (config["pretrain_dir"], config["num_itrs"], config["learning_rate"]) == (
        str(runs / "synthetic__PW__entropy__1"),
        2,
        0.0001,
    )
    with open(out / "seconds.csv", newline="") as f:
        seconds = {(r["method"], r["seed"]): float(r["seconds"]) for r in csv.DictReader(f)}
    assert len(seconds) == 10 and seconds[("gan_pw_l2", "0")] > 0
    assert "0 runs reused" in first.stdout
    trained = _mtimes(runs)
    assert len(trained) == 4

    again = run_script(args)  # every record reused: nothing trained, nothing evaluated
    assert "10 runs reused" in again.stdout and text in again.stdout
    assert "reusing the finished run" not in again.stdout and _mtimes(runs) == trained

    # --write_only: the table of the records present; a dataset without any gets '-'.
    partial = run_script(args + ["--write_only", "--datasets=synthetic,other"])
    assert _mtimes(runs) == trained and "reusing the finished run" not in partial.stdout
    rows = [line for line in (out / "table.md").read_text().splitlines()[2:]]
    assert len(rows) == 4 and all(row.endswith("| - | - |") for row in rows)

    (out / "records.csv").unlink()  # finished run folders are read, never retrained
    third = run_script(args)
    assert third.stdout.count("reusing the finished run") == 4 and _mtimes(runs) == trained
    assert (out / "table.md").read_text() == text

    # Other shared settings into the same folder: refused, naming them, nothing reused.
    other = run_script(args + ["--num_itrs=3", "--dims=8"], check=False)
    assert other.returncode == 1, other.stderr
    assert "holds a table made with other flags" in other.stderr
    assert "num_itrs=2 there, 3 now" in other.stderr and "dims=" in other.stderr
    assert (out / "table.md").read_text() == text and _mtimes(runs) == trained


def test_table_refuses_the_flags_it_sets_per_run(data_folder, tmp_path):
    proc = run_script(
        [
            "experiment_user_model/run_table.sh",
            f"--data_folder={data_folder}",
            "--datasets=synthetic",
            f"--out={tmp_path}",
            "--seed=3",
        ],
        check=False,
    )
    assert proc.returncode == 1 and "--seed: set per run by the table" in proc.stderr
    assert not (tmp_path / "records.csv").exists()


@pytest.mark.slow
def test_ablation_script_trains_its_variants_and_compares_them(data_folder, tmp_path):
    out = tmp_path / "ablation"
    run_script(
        [
            "experiment_user_model/ablations/no_pretraining.sh",
            f"--data_folder={data_folder}",
            "--dataset=synthetic",
            "--num_itrs=2",
            "--eval_every=1",
            "--batch_size=5",
            f"--out={out}",
        ]
    )
    configs = {
        label: json.loads((out / label / "config.json").read_text())
        for label in ("entropy", "L2_from_entropy", "L2_from_scratch")
    }
    assert all((out / label / "results.json").exists() for label in configs)
    assert [(c["regularizer"], c["pretrain_dir"]) for c in configs.values()] == [
        ("entropy", ""),
        ("L2", str(out / "entropy")),
        ("L2", ""),
    ]
    # The run script's settings reach every variant.
    assert {c["item_features"] for c in configs.values()} == {"generalising"}
    summary = (out / "compare" / "summary.md").read_text()
    assert "regularizer" in summary and (out / "compare" / "vali_prec1.png").exists()
    # A rerun with other flags into the same folder is refused, not answered with the old runs.
    proc = run_script(
        [
            "experiment_user_model/ablations/no_pretraining.sh",
            f"--data_folder={data_folder}",
            "--dataset=synthetic",
            "--num_itrs=3",
            "--eval_every=1",
            "--batch_size=5",
            f"--out={out}",
        ],
        check=False,
    )
    assert proc.returncode != 0 and "num_itrs=2 there, 3 now" in proc.stderr, proc.stderr


def _events(events, max_events=0):
    """What a method sees of a split: each user's id and (last `max_events`) events."""
    batch = events.flat_batch(np.arange(events.n_users), max_events or None)
    users = np.asarray(events.user_ids)[batch["event_user"]]
    return [users.tolist(), batch["display"].tolist(), batch["clicked_pos"].tolist()]


def test_every_method_of_the_table_sees_the_same_events(tmp_path, monkeypatch):
    """--train_share and --max_events cut the logs of the baselines as of the GAN runs: the
    same training users (the GAN runner's draw with the seed), each user's same last events."""
    write_tiny_dataset(tmp_path / "data", n_users=24, events=5)
    model = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
    base = TrainConfig(
        dataset="tiny",
        data_folder=str(tmp_path / "data"),
        train_share=0.5,
        max_events=3,
        model=model,
    )
    seen = {}

    class SeeingRunner(table_runs.UserModelRunner):
        def run(self):  # the events the run would train, validate and test on
            seen["gan_pw"] = {
                split: _events(events, self.config.max_events)
                for split, events in self.splits.items()
            }
            return {"test": {"prec1": 0.5, "prec2": 0.5}}

    def seeing_scorer(name, data, seed):
        seen[name] = {split: _events(events) for split, events in data.splits.items()}
        return {"test": {"prec1": 0.5, "prec2": 0.5}}

    def seeing_chance(events):
        seen["chance"] = {"test": _events(events)}
        return {"prec1": 0.5, "prec2": 0.5}

    monkeypatch.setattr(table_runs, "UserModelRunner", SeeingRunner)
    monkeypatch.setattr(table_runs, "evaluate_scorer", seeing_scorer)
    monkeypatch.setattr(table_runs, "chance_summary", seeing_chance)
    runs = table_runs.TableRuns(str(tmp_path / "table"), base)
    runs.run(["tiny"], [1], ["chance", "most_popular", "gan_pw"], progress=lambda _: None)
    assert seen["most_popular"] == seen["gan_pw"]
    assert seen["chance"]["test"] == seen["gan_pw"]["test"]
    train_users, displays, _ = seen["gan_pw"]["train"]
    # 6 of the 12 training users, 3 of their 5 events each.
    assert (len(set(train_users)), len(displays)) == (6, 18)
    # A table folder from before (its baselines had every user and event) is not reused.
    settings = tmp_path / "table" / "settings.json"
    settings.write_text(json.dumps({**runs.shared_settings(), "every_method_cut_alike": None}))
    with pytest.raises(RunFolderError, match="every_method_cut_alike"):
        runs.claim_settings()
