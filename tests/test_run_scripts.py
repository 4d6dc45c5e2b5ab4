"""One-iteration smoke tests of the run scripts on a tiny synthetic dataset."""

import json
import os
import subprocess

import pytest

from tests.script_helpers import ROOT, run_script as _run, synthetic_data_folder


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    return synthetic_data_folder(tmp_path_factory.mktemp("data"))


def test_user_model_scripts(data_folder, tmp_path):
    pre, adv = tmp_path / "pre", tmp_path / "adv"
    common = [f"--data_folder={data_folder}", "--dataset=synthetic", "--num_itrs=1",
              "--eval_every=1", "--batch_size=5"]
    _run(["experiment_user_model/run_gan_user_model.sh", *common, f"--save_dir={pre}"])
    results = json.loads((pre / "results.json").read_text())
    assert set(results["test"]) == {"loss", "prec1", "prec2"}
    _run(["experiment_user_model/run_gan_L2_regularized.sh", *common, f"--save_dir={adv}",
          f"--pretrain_dir={pre}"])
    assert json.loads((adv / "config.json").read_text())["regularizer"] == "L2"
    assert (adv / "results.json").exists()


def test_policy_script_trains_missing_user_models(data_folder, tmp_path):
    train_dir, test_dir = tmp_path / "um_train", tmp_path / "um_test"
    proc = _run(["experiment_policy/run_policy.sh", f"--data_folder={data_folder}",
                 "--dataset=synthetic", "--user_model_itrs=1",
                 f"--user_model_dir={train_dir}", f"--test_user_model_dir={test_dir}",
                 f"--save_dir={tmp_path / 'policy'}", "--num_itrs=2", "--horizon=2",
                 "--batch_size=4", "--train_batch_size=4", "--eval_users=6", "--adapt_itrs=2",
                 "--k=2", "--hidden=8"])
    assert (train_dir / "results.json").exists() and (test_dir / "results.json").exists()
    results = json.loads((tmp_path / "policy" / "results.json").read_text())
    assert "cdqn" in results["policies"] and "CTR" in proc.stdout


def test_comparison_script_writes_the_table_and_reuses_runs(data_folder, tmp_path):
    models, out = tmp_path / "models", tmp_path / "comparison"
    args = ["experiment_policy/run_comparison.sh", f"--data_folder={data_folder}",
            "--datasets=synthetic", "--seeds=0,1", "--user_model_itrs=1",
            f"--models_root={models}", f"--out={out}", "--policy=cdqn,gan_greedy,random",
            "--num_itrs=2", "--horizon=2", "--batch_size=4", "--train_batch_size=4",
            "--eval_users=6", "--adapt_itrs=0", "--k=2", "--hidden=8", "--n_candidates=10"]
    proc = _run(args)
    table = (out / "comparison.md").read_text()
    for policy in ("cdqn", "gan_greedy", "random"):
        assert f"| {policy} |" in table
    assert "synthetic cumulative reward" in table and (out / "comparison.png").exists()
    csv_lines = (out / "comparison.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 3 and csv_lines[1].startswith("synthetic,cdqn,2,")
    first = (out / "synthetic__1" / "results.json").stat().st_mtime_ns
    again = _run(args)
    assert (out / "synthetic__1" / "results.json").stat().st_mtime_ns == first
    assert "training user model" not in again.stderr and table in again.stdout
    assert "training user model" in proc.stderr


def test_adversarial_run_refuses_a_pretrained_model_of_another_architecture(data_folder,
                                                                           tmp_path):
    pre = tmp_path / "pre"
    common = [f"--data_folder={data_folder}", "--dataset=synthetic", "--num_itrs=1",
              "--eval_every=1", "--batch_size=5"]
    _run(["experiment_user_model/run_gan_user_model.sh", *common, f"--save_dir={pre}",
          "--item_features=onehot"])
    proc = _run(["experiment_user_model/run_gan_L2_regularized.sh", *common,
                 f"--save_dir={tmp_path / 'adv'}", f"--pretrain_dir={pre}"], check=False)
    assert proc.returncode != 0
    assert "item_features='onehot'" in proc.stderr and "item_features='generalising'" in proc.stderr
    assert not (tmp_path / "adv" / "results.json").exists()



def test_scripts_pick_the_repository_virtualenv_unless_told_otherwise():
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}

    def interpreter(**extra) -> str:
        return subprocess.run(
            ["bash", "-c", 'source experiment_user_model/common.sh && echo "$PYTHON"'],
            cwd=ROOT, env={**env, **extra}, capture_output=True, text=True,
            check=True).stdout.strip()

    # Outside a virtualenv: the repository's, when `make venv` made one.
    assert interpreter() == (venv if os.access(venv, os.X_OK) else "python3")
    assert interpreter(VIRTUAL_ENV="/some/venv") == "python3"  # the active virtualenv's
    assert interpreter(PYTHON="/opt/python") == "/opt/python"
