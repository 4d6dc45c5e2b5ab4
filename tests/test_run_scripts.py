"""One-iteration smoke tests of the run scripts on a tiny synthetic dataset, and the command
lines the scripts build (recorded by a stub interpreter, nothing trains)."""

import json
import os
import subprocess

import pytest

from tests.script_helpers import (
    ROOT,
    flags_of,
    recorded_commands,
    synthetic_data_folder,
)
from tests.script_helpers import (
    run_script as _run,
)


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    return synthetic_data_folder(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
def test_user_model_scripts(data_folder, tmp_path):
    pre, adv = tmp_path / "pre", tmp_path / "adv"
    common = [
        f"--data_folder={data_folder}",
        "--dataset=synthetic",
        "--num_itrs=1",
        "--eval_every=1",
        "--batch_size=5",
    ]
    _run(["experiment_user_model/run_gan_user_model.sh", *common, f"--save_dir={pre}"])
    results = json.loads((pre / "results.json").read_text())
    assert set(results["test"]) == {"loss", "prec1", "prec2"}
    _run(
        [
            "experiment_user_model/run_gan_L2_regularized.sh",
            *common,
            f"--save_dir={adv}",
            f"--pretrain_dir={pre}",
        ]
    )
    assert json.loads((adv / "config.json").read_text())["regularizer"] == "L2"
    assert (adv / "results.json").exists()


@pytest.mark.slow
def test_policy_script_trains_missing_user_models(data_folder, tmp_path):
    train_dir, test_dir = tmp_path / "um_train", tmp_path / "um_test"
    proc = _run(
        [
            "experiment_policy/run_policy.sh",
            f"--data_folder={data_folder}",
            "--dataset=synthetic",
            "--user_model_itrs=1",
            f"--user_model_dir={train_dir}",
            f"--test_user_model_dir={test_dir}",
            f"--save_dir={tmp_path / 'policy'}",
            "--num_itrs=2",
            "--horizon=2",
            "--batch_size=4",
            "--train_batch_size=4",
            "--eval_users=6",
            "--adapt_itrs=2",
            "--regret_itrs=4",
            "--k=2",
            "--hidden=8",
        ]
    )
    assert (train_dir / "results.json").exists() and (test_dir / "results.json").exists()
    results = json.loads((tmp_path / "policy" / "results.json").read_text())
    assert "cdqn" in results["policies"] and "CTR" in proc.stdout


@pytest.mark.slow
def test_comparison_script_writes_the_table_and_reuses_runs(data_folder, tmp_path):
    models, out = tmp_path / "models", tmp_path / "comparison"
    args = [
        "experiment_policy/run_comparison.sh",
        f"--data_folder={data_folder}",
        "--datasets=synthetic",
        "--seeds=0,1",
        "--user_model_itrs=1",
        f"--models_root={models}",
        f"--out={out}",
        "--policy=cdqn,gan_greedy,random",
        "--num_itrs=2",
        "--horizon=2",
        "--batch_size=4",
        "--train_batch_size=4",
        "--eval_users=6",
        "--adapt_itrs=0",
        "--regret_itrs=0",
        "--k=2",
        "--hidden=8",
        "--n_candidates=10",
    ]
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


@pytest.mark.slow
def test_adversarial_run_refuses_a_pretrained_model_of_another_architecture(data_folder, tmp_path):
    pre = tmp_path / "pre"
    common = [
        f"--data_folder={data_folder}",
        "--dataset=synthetic",
        "--num_itrs=1",
        "--eval_every=1",
        "--batch_size=5",
    ]
    _run(
        [
            "experiment_user_model/run_gan_user_model.sh",
            *common,
            f"--save_dir={pre}",
            "--item_features=onehot",
        ]
    )
    proc = _run(
        [
            "experiment_user_model/run_gan_L2_regularized.sh",
            *common,
            f"--save_dir={tmp_path / 'adv'}",
            f"--pretrain_dir={pre}",
        ],
        check=False,
    )
    assert proc.returncode != 0
    assert "item_features='onehot'" in proc.stderr and "item_features='generalising'" in proc.stderr
    assert not (tmp_path / "adv" / "results.json").exists()


def test_scripts_pick_the_repository_virtualenv_unless_told_otherwise():
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}

    def interpreter(**extra) -> str:
        return subprocess.run(
            ["bash", "-c", 'source experiment_user_model/common.sh && echo "$PYTHON"'],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    # Outside a virtualenv: the repository's, when `make venv` made one.
    assert interpreter() == (venv if os.access(venv, os.X_OK) else "python3")
    assert interpreter(VIRTUAL_ENV="/some/venv") == "python3"  # the active virtualenv's
    assert interpreter(PYTHON="/opt/python") == "/opt/python"


def test_scripts_import_their_own_checkout_first():
    # An interpreter whose environment has ganrl installed from another checkout (one
    # virtualenv shared by two clones) still runs this checkout's library.
    def search_path(**extra) -> list[str]:
        return (
            subprocess.run(
                ["bash", "-c", 'source experiment_user_model/common.sh && echo "$PYTHONPATH"'],
                cwd=ROOT,
                env={**os.environ, **extra},
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split(":")
        )

    root = os.path.realpath(ROOT)
    assert [os.path.realpath(p) for p in search_path(PYTHONPATH="")] == [root]
    first, *rest = search_path(PYTHONPATH="/elsewhere")
    assert (os.path.realpath(first), rest) == (root, ["/elsewhere"])


# Each script the user runs, with flags in the `--flag=value` form; the paths are relative (to
# the test's folder, from which the scripts are started) and `--choice_history` is a boolean.
SCRIPT_FLAGS = {
    "experiment_user_model/run_gan_user_model.sh": [
        "--dataset=tb",
        "--user_model=PW",
        "--choice_history",
        "--seed=2",
        "--data_folder=data",
        "--save_dir=run",
    ],
    "experiment_user_model/run_gan_L2_regularized.sh": [
        "--dataset=tb",
        "--seed=2",
        "--data_folder=data",
        "--save_dir=run",
        "--pretrain_dir=pre",
        "--num_itrs=7",
    ],
    "experiment_user_model/run_table.sh": [
        "--datasets=tb",
        "--seeds=0",
        "--data_folder=data",
        "--out=table",
    ],
    "experiment_user_model/ablations/pw_vs_lstm.sh": [
        "--dataset=tb",
        "--data_folder=data",
        "--out=ablation",
        "--num_itrs=3",
    ],
    "experiment_policy/run_policy.sh": [
        "--dataset=yelp",
        "--data_folder=data",
        "--models_root=models",
        "--policy=cdqn,random",
        "--seed=3",
    ],
    "experiment_policy/run_comparison.sh": [
        "--datasets=yelp",
        "--data_folder=data",
        "--models_root=models",
        "--seeds=0,1",
    ],
    "demo.sh": [
        "--dataset=yelp",
        "--data_folder=data",
        "--models_root=models",
        "--user_model_itrs=5",
    ],
}
PATH_FLAGS = (
    "data_folder",
    "save_dir",
    "out",
    "pretrain_dir",
    "user_model_dir",
    "test_user_model_dir",
    "models_root",
)


def _split_form(flags: list[str]) -> list[str]:
    """`--name=value` -> `--name value` (two arguments); bare flags stay."""
    return [part for flag in flags for part in flag.split("=", 1)]


@pytest.mark.parametrize("script", sorted(SCRIPT_FLAGS))
def test_script_takes_flags_in_both_forms(script, tmp_path):
    (tmp_path / "stub").mkdir()
    joined, _ = recorded_commands(
        [os.path.join(ROOT, script), *SCRIPT_FLAGS[script]], tmp_path / "stub", cwd=str(tmp_path)
    )
    split, _ = recorded_commands(
        [os.path.join(ROOT, script), *_split_form(SCRIPT_FLAGS[script])],
        tmp_path / "stub",
        cwd=str(tmp_path),
    )
    assert joined and split == joined


@pytest.mark.parametrize("script", sorted(SCRIPT_FLAGS))
def test_script_paths_are_taken_from_the_callers_folder(script, tmp_path):
    (tmp_path / "stub").mkdir()
    commands, _ = recorded_commands(
        [os.path.join(ROOT, script), *_split_form(SCRIPT_FLAGS[script])],
        tmp_path / "stub",
        cwd=str(tmp_path),
    )
    for folder, *args in commands:
        assert folder == ROOT  # the scripts run from the repository root
        paths = {
            name: value for name, value in flags_of([folder, *args]).items() if name in PATH_FLAGS
        }
        assert paths and all(value.startswith(f"{tmp_path}/") for value in paths.values()), args


# process_data.sh's own flags, in the split form; --csv_path relative to the caller's folder.
DATA_STEP_FLAGS = [
    "--columns",
    "user=visitor,time=ts,item=product,click=clicked",
    "--csv_path",
    "logs.csv",
    "--csv_sep=;",
    "--nosynthetic_true_features",
]


@pytest.mark.parametrize("script", sorted(SCRIPT_FLAGS))
def test_data_flags_reach_the_data_step_and_no_trainer(script, tmp_path):
    (tmp_path / "stub").mkdir()
    commands, _ = recorded_commands(
        [os.path.join(ROOT, script), *SCRIPT_FLAGS[script], *DATA_STEP_FLAGS],
        tmp_path / "stub",
        cwd=str(tmp_path),
    )
    data_steps = [c for c in commands if c[1:3] == ["-m", "ganrl.cli.process_data"]]
    # The first data step prepares the dataset (the stub writes no pickle, so the later ones,
    # which would find it, run too).
    assert data_steps and data_steps[0][-4:] == [
        "--columns=user=visitor,time=ts,item=product,click=clicked",
        f"--csv_path={tmp_path}/logs.csv",
        "--csv_sep=;",
        "--nosynthetic_true_features",
    ]
    names = ("columns", "csv_path", "csv_sep", "nosynthetic_true_features")
    for command in commands:
        if command not in data_steps:
            assert not set(names) & set(flags_of(command)), command


def test_data_flags_of_a_prepared_dataset_are_said_unused(tmp_path):
    (tmp_path / "stub").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tb.pkl").write_bytes(b"")
    commands, proc = recorded_commands(
        [
            "experiment_user_model/run_gan_user_model.sh",
            "--dataset=tb",
            f"--data_folder={tmp_path / 'data'}",
            "--csv_sep=;",
        ],
        tmp_path / "stub",
    )
    assert [c[1] for c in commands] == ["experiment_user_model/main_gan_user_model.py"]
    assert "csv_sep" not in flags_of(commands[0])
    assert "is prepared already: --csv_sep=; not used" in proc.stderr


@pytest.mark.slow
def test_user_model_script_prepares_a_csv_dataset(tmp_path):
    # 20 users (u0..u19), 3 display sets of 3 products each, the first shown one clicked.
    lines = ["visitor,ts,product,clicked"]
    for u in range(20):
        for t in range(3):
            lines += [f"u{u},{t},p{(u + t + j) % 9},{int(j == 0)}" for j in range(3)]
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "shop.csv").write_text("\n".join(lines) + "\n")
    _run(
        [
            os.path.join(ROOT, "experiment_user_model/run_gan_user_model.sh"),
            "--dataset=shop",
            "--data_folder=dd",
            "--columns=user=visitor,time=ts,item=product,click=clicked",
            "--user_model=PW",
            "--num_itrs=1",
            "--eval_every=1",
            "--batch_size=5",
            "--save_dir=run",
        ],
        cwd=str(tmp_path),
    )
    assert (tmp_path / "run" / "results.json").exists()
    assert json.loads((tmp_path / "dd" / "shop-stats.json").read_text())["users"] == 20
    assert (tmp_path / "dd" / "shop-items.csv").read_text().startswith("item_id,product\n0,p0\n")


def test_run_policy_passes_on_only_main_policy_flags(tmp_path):
    (tmp_path / "stub").mkdir()
    commands, _ = recorded_commands(
        [
            "experiment_policy/run_policy.sh",
            "--dataset",
            "yelp",
            "--data_folder",
            str(tmp_path),
            "--models_root",
            str(tmp_path / "models"),
            "--seed",
            "3",
        ],
        tmp_path / "stub",
    )
    main_policy = commands[-1]
    assert main_policy[1] == "experiment_policy/main_policy.py"
    flags = flags_of(main_policy)
    assert not {"dataset", "data_folder", "models_root", "user_model_itrs"} & set(flags)
    # The run folder follows --seed; one --save_dir, which --save_dir replaces.
    assert flags["save_dir"] == str(tmp_path / "models" / "policy" / "yelp__3")
    assert flags["seed"] == "3" and sum(a.startswith("--save_dir") for a in main_policy) == 1
    commands, _ = recorded_commands(
        [
            "experiment_policy/run_policy.sh",
            "--dataset",
            "yelp",
            "--data_folder",
            str(tmp_path),
            "--models_root",
            str(tmp_path / "models"),
            "--save_dir",
            str(tmp_path / "mine"),
        ],
        tmp_path / "stub",
    )
    assert [a for a in commands[-1] if a.startswith("--save_dir")] == [
        f"--save_dir={tmp_path / 'mine'}"
    ]


@pytest.mark.parametrize(
    "script, bad, message",
    [
        ("experiment_policy/run_policy.sh", "--polcy=cdqn", "Unknown command line flag 'polcy'"),
        ("experiment_policy/run_policy.sh", "--k=0", "k=0"),
        ("experiment_user_model/run_gan_user_model.sh", "--bogus=1", "flag 'bogus'"),
        ("experiment_user_model/run_gan_user_model.sh", "--batch_size=0", "batch_size=0"),
        ("experiment_user_model/run_table.sh", "--methods=bogus", "unknown methods ['bogus']"),
        ("experiment_policy/run_comparison.sh", "--polcy=cdqn", "Unknown command line flag"),
        ("experiment_policy/run_comparison.sh", "--horizon=0", "horizon=0"),
        # The second world is mistyped: nothing of the first may run.
        (
            "experiment_policy/run_sim_to_real.sh",
            "--worlds=satiation,satiaton",
            "flag --world=satiaton",
        ),
        ("experiment_policy/run_sim_to_real.sh", "--user_model_args=--bogus=1", "flag 'bogus'"),
        ("experiment_policy/run_sim_to_real.sh", "--k=0", "k=0"),
    ],
)
def test_a_bad_flag_stops_a_run_script_before_the_data_step(script, bad, message, tmp_path):
    # Before the dataset is prepared and the user models are trained, which take minutes.
    if script.endswith("run_sim_to_real.sh"):
        proc = _run([script, f"--save_dir={tmp_path / 'run'}", bad], check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
        assert os.listdir(tmp_path) == []
        return
    folders = [f"--data_folder={tmp_path / 'data'}", f"--save_dir={tmp_path / 'run'}"]
    if script.endswith("run_policy.sh"):
        folders.append(f"--models_root={tmp_path / 'models'}")
    dataset = "--dataset=synthetic"
    if script.endswith("run_comparison.sh"):
        dataset = "--datasets=synthetic"
        folders = [f"--data_folder={tmp_path / 'data'}", f"--models_root={tmp_path / 'models'}"]
    if script.endswith("run_table.sh"):
        dataset = "--datasets=synthetic"
        folders = [f"--data_folder={tmp_path / 'data'}", f"--out={tmp_path / 'table'}"]
    proc = _run([script, dataset, *folders, bad], check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "script, given, message",
    [
        ("hidden_sizes.sh", "--dims=16-16", "--dims is what this ablation varies"),
        ("pw_vs_lstm.sh", "--user_model", "--user_model is what this ablation varies"),
        ("no_pretraining.sh", "--regularizer=L2", "--regularizer is what this ablation"),
        ("hidden_sizes.sh", "--dimz=16", "flag 'dimz'"),
    ],
)
def test_an_ablation_refuses_a_flag_its_variants_set(script, given, message, tmp_path):
    # The caller's value would win in every variant: identical runs under the variants'
    # labels. Refused before any training (the dataset stands in as prepared).
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "yelp.pkl").write_bytes(b"")
    args = [f"--data_folder={tmp_path / 'data'}", f"--out={tmp_path / 'out'}", given]
    if given == "--user_model":
        args.append("PW")
    proc = _run([f"experiment_user_model/ablations/{script}", *args], check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def _training_commands(commands: list[list[str]]) -> list[list[str]]:
    """The user-model trainings among recorded commands (not the flag checks before them)."""
    return [
        c
        for c in commands
        if c[1] == "experiment_user_model/main_gan_user_model.py" and "--check_flags" not in c
    ]


def test_run_policy_trains_the_ensemble_members_and_passes_them_on(tmp_path):
    (tmp_path / "stub").mkdir()
    models = tmp_path / "models"
    common = ["--dataset=yelp", f"--data_folder={tmp_path}", f"--models_root={models}"]
    commands, _ = recorded_commands(
        ["experiment_policy/run_policy.sh", *common, "--ensemble", "3"], tmp_path / "stub"
    )
    trained = [flags_of(c) for c in _training_commands(commands)]
    assert [(f["user_model"], f["seed"]) for f in trained] == [
        ("LSTM", "0"),
        ("PW", "1"),
        ("LSTM", "2"),
        ("LSTM", "3"),
        ("LSTM", "4"),
    ]
    members = [str(models / f"yelp__LSTM__entropy__{i}") for i in (2, 3, 4)]
    assert [f["save_dir"] for f in trained[2:]] == members
    policy = flags_of(commands[-1])
    assert policy["ensemble_dirs"] == ",".join(members) and "ensemble" not in policy
    # Without --ensemble: no members; with --ensemble_dirs: those, as given.
    commands, _ = recorded_commands(["experiment_policy/run_policy.sh", *common], tmp_path / "stub")
    assert flags_of(commands[-1])["ensemble_dirs"] == ""
    commands, _ = recorded_commands(
        ["experiment_policy/run_policy.sh", *common, "--ensemble=2", "--ensemble_dirs=a,b"],
        tmp_path / "stub",
    )
    trained = _training_commands(commands)
    # Relative paths are the caller's (here the repository root, the test's cwd).
    assert len(trained) == 2
    assert flags_of(commands[-1])["ensemble_dirs"] == f"{ROOT}/a,{ROOT}/b"
    commands, _ = recorded_commands(
        ["experiment_policy/run_policy.sh", *common, "--ensemble_dirs=/x/a,b"],
        tmp_path / "stub",
    )
    assert flags_of(commands[-1])["ensemble_dirs"] == f"/x/a,{ROOT}/b"
    proc = subprocess.run(
        ["experiment_policy/run_policy.sh", *common, "--ensemble=two"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--ensemble=two: expected a non-negative integer" in (
        proc.stderr
    )
    # --reward_ensemble: the same members, passed on as the reward's alone.
    commands, _ = recorded_commands(
        ["experiment_policy/run_policy.sh", *common, "--reward_ensemble=2"], tmp_path / "stub"
    )
    policy = flags_of(commands[-1])
    assert policy["reward_dirs"] == ",".join(members[:2]) and policy["ensemble_dirs"] == ""
    assert "reward_ensemble" not in policy
    proc = subprocess.run(
        ["experiment_policy/run_policy.sh", *common, "--ensemble=2", "--reward_ensemble=2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "expected one" in proc.stderr


def test_run_policy_reuses_the_demos_user_models(tmp_path):
    (tmp_path / "stub").mkdir()
    models = tmp_path / "models"
    common = ["--dataset=ml100k", f"--data_folder={tmp_path}", f"--models_root={models}"]
    demo, proc = recorded_commands(["./demo.sh", *common], tmp_path / "stub")
    trained = [flags_of(c) for c in _training_commands(demo)]
    assert [(f["user_model"], f["seed"], f["num_itrs"]) for f in trained] == [
        ("LSTM", "0", "500"),
        ("PW", "1", "500"),
    ]
    assert proc.stderr.count("training user model") == 2
    demo_policy = flags_of(demo[-1])
    assert str(models / "policy" / "ml100k__0") in proc.stdout  # the demo says where it wrote
    # As if the demo's training had finished: run_policy.sh finds the two runs and says so.
    for f in trained:
        os.makedirs(f["save_dir"])
        with open(os.path.join(f["save_dir"], "results.json"), "w") as results:
            results.write("{}")
    again, proc = recorded_commands(["experiment_policy/run_policy.sh", *common], tmp_path / "stub")
    assert not _training_commands(again)
    assert "training user model" not in proc.stderr and proc.stderr.count("reused") == 2
    policy = flags_of(again[-1])
    assert (
        (policy["user_model_dir"], policy["test_user_model_dir"])
        == (demo_policy["user_model_dir"], demo_policy["test_user_model_dir"])
        == (trained[0]["save_dir"], trained[1]["save_dir"])
    )


def test_process_data_takes_flags_in_both_forms_and_paths_from_the_caller(tmp_path):
    _run(
        [
            os.path.join(ROOT, "process_data.sh"),
            "--dataset",
            "synthetic",
            "--data_folder",
            "data",
            "--users",
            "20",
            "--items=30",
            "--events_per_user",
            "4",
            "--posterior_samples=50",
        ],
        cwd=str(tmp_path),
    )
    stats = json.loads((tmp_path / "data" / "synthetic-stats.json").read_text())
    assert stats["users"] == 20 and stats["items"] == 30


def test_sim_to_real_script_takes_both_forms_and_the_callers_paths(tmp_path):
    script = os.path.join(ROOT, "experiment_policy/run_sim_to_real.sh")
    flags = ["--worlds=satiation", "--seeds=0,1", "--save_dir=s2r", "--num_itrs=7"]
    (tmp_path / "stub").mkdir()
    joined, _ = recorded_commands([script, *flags], tmp_path / "stub", cwd=str(tmp_path))
    split, _ = recorded_commands(
        [script, *_split_form(flags)], tmp_path / "stub", cwd=str(tmp_path)
    )
    assert split == joined
    check, *runs, summary = joined
    # The flags are checked first, once per world; then one harness run per world and seed,
    # into the caller's folder; the script's own flags stay with it.
    assert "--check_flags" in check and flags_of(check)["world"] == "satiation"
    assert [(flags_of(c)["world"], flags_of(c)["seed"]) for c in runs] == [
        ("satiation", "0"),
        ("satiation", "1"),
    ]
    for folder, *args in runs:
        assert folder == ROOT
        assert flags_of([folder, *args])["save_dir"] == f"{tmp_path}/s2r"
        assert flags_of([folder, *args])["num_itrs"] == "7"
        assert not {"worlds", "seeds"} & set(flags_of([folder, *args]))
    assert summary[1:] == ["-m", "ganrl.reporting.sim_to_real", f"{tmp_path}/s2r"]
