"""Bad flags and run folders: one test per case. A bad flag is refused by its config dataclass
with one line naming the flag and what was expected, the command exits with 1 and writes
nothing; a run folder takes one run at a time, and only reruns with its flags."""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ganrl.data.dataset import (
    DataError,
    SplitData,
    load_run_data,
    save_dataset,
    save_event_splits,
)
from ganrl.policy.runner import PolicyConfig, PolicyRunner
from ganrl.train import run_folder
from ganrl.train import user_model as trainer
from ganrl.user_model.model import ModelConfig
from tests.policy_helpers import tiny_policy_config
from tests.tiny_data import tiny_dataset, write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = dict(n_users=24, no_click_every=4)


def _train_config(folder, **overrides) -> trainer.TrainConfig:
    model = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
    values = dict(
        dataset="tiny",
        data_folder=str(folder / "data"),
        save_dir=str(folder / "run"),
        learning_rate=0.05,
        batch_size=6,
        num_itrs=2,
        eval_every=2,
        checkpoint_secs=0,
        model=model,
    )
    return trainer.TrainConfig(**{**values, **overrides})


def _train(config: trainer.TrainConfig, progress=lambda _: None) -> dict:
    data = SplitData.from_dataset(tiny_dataset(**DATASET))
    return trainer.UserModelRunner(config, data, progress=progress).run()


def _policy_config(user_model_dir, save_dir, **overrides) -> PolicyConfig:
    values = dict(policies=("random",), num_itrs=2, eval_users=8, select_users=8)
    return tiny_policy_config(user_model_dir, save_dir, **{**values, **overrides})


@pytest.fixture(scope="module")
def user_model_dir(tmp_path_factory):
    """A finished tiny user model run (12 items) whose dataset is on disk."""
    folder = tmp_path_factory.mktemp("um")
    write_tiny_dataset(folder / "data", **DATASET)
    _train(_train_config(folder))
    return str(folder / "run")


def _main(script: str, *flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, script, *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _refused(proc: subprocess.CompletedProcess, *message_parts: str) -> None:
    """Exit 1, no traceback, and the last line of stderr the only error line (TensorFlow's
    C++ start-up lines, which ignore TF_CPP_MIN_LOG_LEVEL, may come before it)."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    for part in message_parts:
        assert part in lines[-1]


@contextlib.contextmanager
def _held_by_another_process(folder):
    """Another process holding `folder` the way a run holds its run folder (flock)."""
    hold = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", hold, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _listing(folder) -> dict:
    """Every file under `folder` with its modification time."""
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(folder)
        for f in files
    }


# -- 1. User-model flags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_itrs": -5}, "num_itrs=-5: expected a non-negative integer"),
        ({"batch_size": 0}, "batch_size=0: expected a positive integer"),
        ({"eval_every": 0}, "eval_every=0: expected a positive integer"),
        ({"learning_rate": -1.0}, "learning_rate=-1.0: expected a positive number"),
        ({"learning_rate": 0.0}, "learning_rate=0.0: expected a positive number"),
        ({"learning_rate": float("nan")}, "learning_rate=nan: expected a positive number"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1: expected a non-negative number"),
        ({"seed": -1}, "seed=-1: expected a non-negative integer"),
        ({"max_events": -1}, "max_events=-1: expected a non-negative integer"),
        ({"lr_plateau": -2}, "lr_plateau=-2: expected a non-negative integer"),
        ({"lr_plateau_factor": 1.0}, "lr_plateau_factor=1.0: expected a number in (0, 1)"),
        ({"train_share": 0.0}, "train_share=0.0: expected a number in (0, 1]"),
        ({"train_share": 1.5}, "train_share=1.5: expected a number in (0, 1]"),
        ({"item_features": "both"}, "item_features='both': expected one of onehot, generalising"),
        (
            {"pretrain_dir": "pre"},
            "pretrain_dir='pre': only an L2 (adversarial) run starts from a pre-trained one; "
            "regularizer='entropy' trains from scratch",
        ),
    ],
)
def test_train_config_refuses_bad_values(tmp_path, overrides, message):
    with pytest.raises(ValueError) as error:
        _train_config(tmp_path, **overrides)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"dims": "abc"},
            "dims='abc': expected the hidden sizes of the utility MLP, positive "
            "integers joined by '-', e.g. '64-64'",
        ),
        ({"dims": "64-0"}, "dims='64-0': expected the hidden sizes"),
        ({"dims": "64-"}, "dims='64-': expected the hidden sizes"),
        ({"dims": "", "bilinear": False}, "dims='': a utility without an MLP needs the bilinear"),
        ({"rnn_skip": -1}, "rnn_skip=-1: expected a non-negative integer"),
        ({"statistic_folds": 1}, "statistic_folds=1: expected 0 (leave-one-user-out) or at least"),
        ({"pw_activation": "tanh"}, "pw_activation='tanh': expected one of sigmoid, linear"),
        ({"rnn_hidden_dim": 0}, "rnn_hidden_dim=0: expected a positive integer"),
        ({"pw_dim": -1}, "pw_dim=-1: expected a positive integer"),
        ({"pw_band_size": 0}, "pw_band_size=0: expected a positive integer"),
        ({"item_dim": 0}, "item_dim=0: expected a positive integer"),
        ({"dropout": 1.0}, "dropout=1.0: expected a number in [0, 1)"),
        ({"id_dropout": -0.5}, "id_dropout=-0.5: expected a number in [0, 1)"),
        ({"l2_reg": -1.0}, "l2_reg=-1.0: expected a non-negative number"),
        ({"rate_prior_strength": 0.0}, "rate_prior_strength=0.0: expected a positive number"),
        ({"user_model": "GRU"}, "user_model='GRU': expected one of PW, LSTM"),
    ],
)
def test_model_config_refuses_bad_values(overrides, message):
    with pytest.raises(ValueError) as error:
        ModelConfig(**overrides)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--num_itrs=-5", "num_itrs=-5: expected a non-negative integer"),
        ("--dims=abc", "dims='abc': expected the hidden sizes"),
    ],
)
def test_user_model_entry_point_refuses_a_bad_flag_in_one_line(tmp_path, flag, message):
    write_tiny_dataset(tmp_path / "data", **DATASET)
    proc = _main(
        "experiment_user_model/main_gan_user_model.py",
        f"--data_folder={tmp_path / 'data'}",
        "--dataset=tiny",
        f"--save_dir={tmp_path / 'run'}",
        flag,
    )
    _refused(proc, message)
    assert not (tmp_path / "run").exists()


def test_a_missing_pretraining_is_refused_before_the_run_folder_exists(tmp_path):
    config = _train_config(tmp_path, regularizer="L2", pretrain_dir=str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="no best_prec1 checkpoint"):
        _train(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("events_folder", [False, True])
def test_a_split_with_an_empty_part_is_refused_before_the_run_folder_exists(
    tmp_path, events_folder
):
    # 3 users: 1 train, 0 validation, 2 test users (a pickle made elsewhere; the memory-mapped
    # events folder, when there, is what is read).
    dataset = dataclasses.replace(tiny_dataset(n_users=3), split=([0], [], [1, 2]))
    save_dataset(str(tmp_path / "data"), dataset)
    if events_folder:
        save_event_splits(str(tmp_path / "data"), SplitData.from_dataset(dataset))
    proc = _main(
        "experiment_user_model/main_gan_user_model.py",
        f"--data_folder={tmp_path / 'data'}",
        "--dataset=tiny",
        f"--save_dir={tmp_path / 'run'}",
        "--num_itrs=1",
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: dataset 'tiny'")
    assert "1 train, 0 validation and 2 test users: no validation user" in error
    assert not (tmp_path / "run").exists()


# -- 2. Policy flags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"k": 0}, "k=0: expected a positive integer"),
        ({"k": -1}, "k=-1: expected a positive integer"),
        ({"horizon": 0}, "horizon=0: expected a positive integer"),
        ({"batch_size": 0}, "batch_size=0: expected a positive integer"),
        ({"num_itrs": -1}, "num_itrs=-1: expected a positive integer"),
        ({"n_candidates": -3}, "n_candidates=-3: expected a non-negative integer"),
        ({"n_candidates": 1}, "n_candidates=1: expected 0 (every item) or at least k=2"),
        ({"gamma": 1.5}, "gamma=1.5: expected a number in [0, 1]"),
        ({"learning_rate": 0.0}, "learning_rate=0.0: expected a positive number"),
        ({"adapt_itrs": -1}, "adapt_itrs=-1: expected a non-negative integer"),
        ({"policies": ("cdqn", "dqn")}, "policy='dqn': expected one of a2c, cdqn"),
        ({"policies": ()}, "policy='': expected at least one policy"),
    ],
)
def test_policy_config_refuses_bad_values(tmp_path, overrides, message):
    with pytest.raises(ValueError) as error:
        _policy_config("um", tmp_path / "policy", **overrides)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_candidates": 13}, "n_candidates=13: expected at most the user model's 12 items"),
        ({"k": 13}, "k=13: expected at most the user model's 12 items"),
    ],
)
def test_policy_runner_refuses_more_than_the_catalogue_before_writing(
    user_model_dir, tmp_path, overrides, message
):
    with pytest.raises(ValueError, match=message):
        PolicyRunner(_policy_config(user_model_dir, tmp_path / "policy", **overrides))
    assert not (tmp_path / "policy").exists()


def test_policy_entry_point_refuses_a_bad_flag_in_one_line(user_model_dir, tmp_path):
    proc = _main(
        "experiment_policy/main_policy.py",
        f"--user_model_dir={user_model_dir}",
        f"--test_user_model_dir={user_model_dir}",
        f"--save_dir={tmp_path / 'p'}",
        "--n_candidates=100",
    )
    _refused(proc, "n_candidates=100: expected at most the user model's 12 items")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("under", [False, True])
def test_a_save_dir_that_is_a_file_is_refused_in_one_line(user_model_dir, tmp_path, under):
    (tmp_path / "afile").write_text("kept")
    save_dir = tmp_path / "afile" / "run" if under else tmp_path / "afile"
    policy = (
        "experiment_policy/main_policy.py",
        f"--user_model_dir={user_model_dir}",
        f"--test_user_model_dir={user_model_dir}",
        "--policy=random",
    )
    save_dataset(str(tmp_path / "data"), tiny_dataset())
    user_model = (
        "experiment_user_model/main_gan_user_model.py",
        f"--data_folder={tmp_path / 'data'}",
        "--dataset=tiny",
        "--num_itrs=1",
    )
    for command in (policy, user_model):
        proc = _main(*command, f"--save_dir={save_dir}")
        _refused(proc, f"--save_dir={save_dir}: it or a folder above it is a file")
        assert (tmp_path / "afile").read_text() == "kept"


# -- 3. Divergence ---------------------------------------------------------------------------


def test_divergence_by_hand():
    def rows(start, last):
        return [
            {"iteration": "0", "train_loss": "nan", "vali_loss": str(start)},
            {"iteration": "10", "train_loss": str(last), "vali_loss": "0"},
        ]

    assert trainer.divergence(rows(1.9, 5.6)) == ""  # below 3 x 1.9 = 5.7
    assert "training loss ended at 5.8 (iteration 10)" in trainer.divergence(rows(1.9, 5.8))
    assert trainer.divergence(rows(0.05, 0.9)) == ""  # 18 times the start, but within 1 nat
    assert trainer.divergence(rows(0.05, 1.1)) != ""
    assert trainer.divergence(rows(1.9, 1.0)[:1]) == ""  # nothing trained


def test_a_huge_learning_rate_warns_that_training_diverged(tmp_path):
    lines = []
    results = _train(_train_config(tmp_path, learning_rate=1e3, num_itrs=6), lines.append)
    assert results["diverged"] is True
    warnings = [line for line in lines if line.startswith("warning: training diverged")]
    assert len(warnings) == 1 and "try a lower learning_rate" in warnings[0]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["diverged"] is True and saved["warning"] == warnings[0][len("warning: ") :]
    assert set(saved["best_iteration"]) == {"loss", "prec1", "prec2"}
    assert f"loss {saved['best_iteration']['loss']}" in saved["warning"]
    sane = _train(_train_config(tmp_path / "sane"))
    assert sane["diverged"] is False and "warning" not in sane


# -- 4. Checkpoint writes that were killed ---------------------------------------------------


def _partial_checkpoint(folder) -> str:
    """What a kill during `CheckpointManager.save` leaves behind."""
    os.makedirs(folder)
    open(os.path.join(folder, "part-00000-of-00001.index"), "w").close()
    return str(folder)


def test_a_rerun_removes_partial_checkpoints(user_model_dir, tmp_path):
    config = _train_config(tmp_path)
    _train(config)
    checkpoints = tmp_path / "run" / "checkpoints"
    partial = [
        _partial_checkpoint(checkpoints / "latest" / "ckpt-5_temp"),
        _partial_checkpoint(checkpoints / "best_loss" / "ckpt-5_temp"),
    ]
    mine = checkpoints / "notes_temp"  # not a checkpoint write: kept
    os.makedirs(mine)
    (mine / "notes.txt").write_text("mine")
    _train(config)
    assert not any(os.path.exists(p) for p in partial) and mine.is_dir()

    policy = _policy_config(user_model_dir, tmp_path / "policy", policies=("linucb",))
    PolicyRunner(policy).run()
    partial = _partial_checkpoint(
        tmp_path / "policy" / "checkpoints" / "linucb__train" / "ckpt-9_temp"
    )
    PolicyRunner(policy).run()
    assert not os.path.exists(partial)


# -- 5. Two runs, one run folder -------------------------------------------------------------


def test_a_run_folder_takes_one_run_at_a_time(user_model_dir, tmp_path):
    config = _train_config(tmp_path)
    policy = _policy_config(user_model_dir, tmp_path / "policy")
    for folder in (tmp_path / "run", tmp_path / "policy"):
        os.makedirs(folder)
    with _held_by_another_process(tmp_path / "run"):
        with pytest.raises(
            run_folder.RunFolderError,
            match=f"{tmp_path / 'run'}: another run is writing to this run folder",
        ):
            _train(config)
        assert os.listdir(tmp_path / "run") == []
    with _held_by_another_process(tmp_path / "policy") as holder:
        with pytest.raises(run_folder.RunFolderError, match="another run is writing"):
            PolicyRunner(policy).run()
        assert os.listdir(tmp_path / "policy") == []
        holder.kill()  # a killed run leaves no stale lock
        holder.wait()
        assert "random" in PolicyRunner(policy).run()["policies"]
    assert "test" in _train(config)


# -- 6. Reruns with other flags --------------------------------------------------------------


def test_a_user_model_rerun_with_other_flags_is_refused(tmp_path):
    config = _train_config(tmp_path)
    first = _train(config)
    before = _listing(tmp_path / "run")
    other = dataclasses.replace(
        config, num_itrs=4, model=dataclasses.replace(config.model, dims="16")
    )
    with pytest.raises(run_folder.RunFolderError) as error:
        _train(other)
    assert str(error.value) == (
        f"{tmp_path / 'run'}: holds a run with other flags "
        "(dims='8' there, '16' now; num_itrs=2 there, 4 now): rerun "
        "with its flags or pass another --save_dir"
    )
    assert _listing(tmp_path / "run") == before
    # The same flags (where and how often it saves aside) reuse the finished run.
    assert _train(dataclasses.replace(config, checkpoint_secs=60.0)) == first


def test_a_user_model_rerun_on_data_prepared_again_is_refused(tmp_path):
    config = _train_config(tmp_path)
    first = _train(config)
    before = _listing(tmp_path / "run")
    assert os.path.exists(tmp_path / "run" / "data.json")
    # The same counts, other items: dense ids 1 and 2 swapped in the training users' sets.
    data = SplitData.from_dataset(tiny_dataset(**DATASET))
    train = data.splits["train"]
    swapped = np.select([train.display == 1, train.display == 2], [2, 1], train.display)
    data.splits["train"] = dataclasses.replace(train, display=swapped.astype(np.int32))
    with pytest.raises(
        run_folder.RunFolderError,
        match=rf"{tmp_path / 'run'}: holds a run trained on other data than dataset 'tiny' in ",
    ):
        trainer.UserModelRunner(config, data, progress=lambda _: None).run()
    assert _listing(tmp_path / "run") == before
    assert _train(config) == first  # the same data reuses the finished run
    # A policy run over that user model reads its logs back: on logs prepared again
    # differently it is refused too.
    write_tiny_dataset(tmp_path / "data", **DATASET)
    load_run_data(json.loads((tmp_path / "run" / "config.json").read_text()), str(tmp_path / "run"))
    dataset = tiny_dataset(**DATASET)
    first_set, first_click = dataset.behavior[0][1][0], dataset.behavior[0][2][0]
    dataset.behavior[0][2][0] = next(i for i in first_set if i != first_click)
    save_dataset(str(tmp_path / "data"), dataset)
    with pytest.raises(DataError, match=r"the user model was trained on other data than dataset"):
        load_run_data(
            json.loads((tmp_path / "run" / "config.json").read_text()), str(tmp_path / "run")
        )


def test_a_policy_rerun_with_other_flags_is_refused(user_model_dir, tmp_path):
    config = _policy_config(user_model_dir, tmp_path / "policy")
    first = PolicyRunner(config).run()
    before = _listing(tmp_path / "policy")
    with pytest.raises(run_folder.RunFolderError, match=r"\(horizon=2 there, 3 now\)"):
        PolicyRunner(dataclasses.replace(config, horizon=3)).run()
    assert _listing(tmp_path / "policy") == before
    assert PolicyRunner(config).run() == first


def test_an_error_from_inside_another_library_names_where_ganrl_called_it(monkeypatch):
    import io

    import numpy as np

    from ganrl.cli.errors import report_error
    from ganrl.config_checks import check

    def own_check():
        class Config:
            batch_size = 0

        check(Config(), "a positive integer", "batch_size")

    def numpy_under_ganrl():
        from ganrl.policy.export import padded_histories

        # numpy's own error (lengths of the wrong shape) inside a ganrl function.
        return padded_histories(np.zeros((2, 3)), 3, lengths=[1, 2, 3])

    monkeypatch.delenv("GANRL_TRACEBACK", raising=False)
    for raiser, lines in ((own_check, 1), (numpy_under_ganrl, 2)):
        out = io.StringIO()
        try:
            raiser()
        except ValueError as e:
            assert report_error(e, out) == 1
        text = out.getvalue().splitlines()
        assert len(text) == lines and text[0].startswith("error: "), text
    assert "ValueError raised at ganrl/policy/export.py:" in text[1], text
    assert "GANRL_TRACEBACK=1" in text[1]
    monkeypatch.setenv("GANRL_TRACEBACK", "1")
    out = io.StringIO()
    try:
        numpy_under_ganrl()
    except ValueError as e:
        report_error(e, out)
    assert "Traceback (most recent call last)" in out.getvalue()


@pytest.mark.parametrize(
    "script, flag, message",
    [
        ("experiment_user_model/main_table.py", "--seeds=a", "--seeds: expected comma-separated"),
        ("experiment_user_model/main_table.py", "--seeds=-1", "--seeds: expected comma-separated"),
        ("experiment_user_model/main_table.py", "--methods=", "--methods: expected at least one"),
        ("experiment_policy/main_comparison.py", "--seeds=0,b", "--seeds: expected comma-sep"),
    ],
)
def test_table_and_comparison_refuse_bad_seed_and_method_lists(tmp_path, script, flag, message):
    proc = _main(script, "--datasets=x", f"--out={tmp_path}/o", flag)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"Flags parsing error: flag {flag.split('=')[0]}" in proc.stderr
    assert message in proc.stderr and not (tmp_path / "o").exists()
