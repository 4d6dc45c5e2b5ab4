"""`ganrl.reporting.sim_to_real`: the bar's checks worked out by hand on written runs, the
per-world means, bad results files, the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ganrl.data.safe_io import DataError
from ganrl.reporting.sim_to_real import (
    gap_se,
    learning_policies,
    read_runs,
    run_checks,
    summarise,
    world_rows,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEARNING = frozenset({"cdqn", "ppo"})
NAN = float("nan")


def row(policy, reward, gap, half, true_steps=4.0, sim_steps=4.0):
    """A harness row; `half` is the gap's 95% half-width, so its se is half / 1.96."""
    return {
        "policy": policy,
        "true_reward": reward,
        "true_se": 0.1,
        "true_steps": true_steps,
        "sim_steps": sim_steps,
        "sim_reward": 0.0,
        "sim_ci95": 0.0,
        "off_policy_dr": 0.0,
        "gap_to_gan_greedy": gap,
        "gap_ci95_low": gap - half,
        "gap_ci95_high": gap + half,
    }


def write(root, world, seed, rows, spearman=0.5, spearman_off_policy=0.9):
    folder = os.path.join(root, f"{world}__{seed}")
    os.makedirs(folder)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(
            {
                "config": {"world": world, "seed": seed},
                "rows": rows,
                "spearman": spearman,
                "spearman_off_policy": spearman_off_policy,
            },
            f,
        )
    return folder


@pytest.fixture
def root(tmp_path):
    # se = half / 1.96, so half = 1.96 gives se 1 and "2 se" = 2.
    write(
        tmp_path,
        "satiation",
        0,
        [
            row("gan_greedy", 4.0, 0.0, 0.0),
            # 3 above GAN-Greedy with se 1: gap - 2 se = +1.
            row("cdqn", 7.0, 3.0, 1.96, sim_steps=4.4),
            # 1.5 below with se 1: gap + 2 se = +0.5, within noise.
            row("ppo", 2.5, -1.5, 1.96),
            row("most_popular", 3.0, -1.0, 0.5, true_steps=3.0, sim_steps=3.6),
            row("oracle_myopic", 9.0, 5.0, 1.0, sim_steps=NAN),
        ],
        spearman=0.85,
    )
    write(
        tmp_path,
        "satiation",
        1,
        [
            row("gan_greedy", 5.0, 0.0, 0.0),
            row("cdqn", 5.5, 0.5, 1.96),  # gap - 2 se = -1.5
            row("ppo", 2.0, -3.0, 1.96),  # gap + 2 se = -1: below beyond noise
            row("most_popular", 5.2, 0.2, 0.5),  # interval [-0.3, 0.7] not below
        ],
    )
    return str(tmp_path)


def test_gap_se_from_the_interval():
    assert gap_se(row("x", 0.0, -1.0, 0.98)) == pytest.approx(0.5)


def test_checks_by_hand(root):
    first, second = (run_checks(run, LEARNING) for run in read_runs(root))
    assert (first["world"], first["seed"]) == ("satiation", 0)
    assert first["learners"] == 2 and first["learners_below"] == ""
    assert first["cdqn_lower"] == pytest.approx(1.0)
    assert first["greedy_over_popular"] is True
    # cdqn 4.4 / 4.0 - 1 = 10%, most popular 3.6 / 3.0 - 1 = 20%; the oracle has no sim.
    assert first["session_error"] == pytest.approx(0.2)
    assert first["session_worst"] == "most_popular"
    assert first["spearman"] == pytest.approx(0.85)

    assert second["learners"] == 1 and second["learners_below"] == "ppo"
    assert second["cdqn_lower"] == pytest.approx(-1.5)
    assert second["greedy_over_popular"] is False
    assert second["session_error"] == 0.0 and second["session_worst"] == ""


def test_a_learner_whose_gap_is_not_measured_is_not_passed(tmp_path):
    write(
        tmp_path,
        "satiation",
        0,
        [row("gan_greedy", 4.0, 0.0, 0.0), row("ppo", NAN, NAN, NAN), row("cdqn", 4.0, 0.0, 0.0)],
    )
    (checks,) = (run_checks(run, LEARNING) for run in read_runs(str(tmp_path)))
    assert checks["learners_below"] == "ppo"


def test_world_means_and_seeds_beyond_noise(root):
    rows = {r["policy"]: r for r in world_rows(read_runs(root))}
    assert rows["cdqn"]["seeds"] == 2
    assert rows["cdqn"]["true_reward"] == pytest.approx(6.25)
    assert rows["cdqn"]["gap"] == pytest.approx(1.75)
    assert (rows["cdqn"]["seeds_above"], rows["cdqn"]["seeds_below"]) == (1, 0)
    assert (rows["ppo"]["seeds_above"], rows["ppo"]["seeds_below"]) == (0, 1)
    assert rows["oracle_myopic"]["seeds"] == 1


def test_summary_files(root, tmp_path):
    out = tmp_path / "out"
    text = summarise(root, str(out), LEARNING)
    assert "| satiation | 1 | 5.000 | 1 of 2 (**below: ppo**) | -1.500 | **no** |" in text
    assert "**20.0% (most_popular)**" in text
    assert "0.85 yes" in text and "0.50 **no**" in text
    lines = (out / "checks.csv").read_text().splitlines()
    assert lines[0].startswith("world,seed,gan_greedy,learners,learners_below")
    assert len(lines) == 3


def test_an_undefined_spearman_is_not_called_a_failure(tmp_path):
    # Two policies give no rank correlation (NaN): the summary says so, not "**no**".
    write(
        tmp_path,
        "satiation",
        0,
        [row("gan_greedy", 4.0, 0.0, 0.0), row("cdqn", 4.0, 0.0, 0.0)],
        spearman=NAN,
    )
    text = summarise(str(tmp_path), str(tmp_path / "out"), LEARNING)
    assert "n/a (under 3 policies, or one side constant)" in text
    assert "nan" not in text.split("| satiation | 0 |")[1].splitlines()[0]


def test_the_registry_names_the_learning_policies():
    learning = learning_policies()
    assert {"cdqn", "ppo", "a2c", "ddpg", "linucb"} <= learning
    assert not {"gan_greedy", "most_popular", "random"} & learning


@pytest.mark.parametrize(
    "results, message",
    [
        ("{not json", r"results.json: line 1: not valid JSON"),
        ({"config": {"world": "w", "seed": 0}, "rows": []}, "field 'spearman' missing"),
        (
            {"config": {"seed": 0}, "rows": [], "spearman": 0, "spearman_off_policy": 0},
            "'config' needs 'world' and 'seed'",
        ),
        (
            {
                "config": {"world": "w", "seed": 0},
                "rows": [{"policy": "gan_greedy"}],
                "spearman": 0,
                "spearman_off_policy": 0,
            },
            r"rows\[0\]: field 'true_reward' missing",
        ),
        (
            {
                "config": {"world": "w", "seed": 0},
                "rows": [{**row("gan_greedy", 1.0, 0.0, 0.0), "true_steps": "4"}],
                "spearman": 0,
                "spearman_off_policy": 0,
            },
            r"rows\[0\].true_steps: expected a number",
        ),
        (
            {
                "config": {"world": "w", "seed": 0},
                "rows": [row("cdqn", 1.0, 0.0, 0.0)],
                "spearman": 0,
                "spearman_off_policy": 0,
            },
            "no 'gan_greedy' row",
        ),
    ],
)
def test_bad_results_are_named(tmp_path, results, message):
    folder = tmp_path / "w__0"
    folder.mkdir()
    with open(folder / "results.json", "w") as f:
        f.write(results if isinstance(results, str) else json.dumps(results))
    with pytest.raises(DataError, match=message):
        read_runs(str(tmp_path))
    assert not (tmp_path / "summary.md").exists()


def test_command_line(root, tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "ganrl.reporting.sim_to_real", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    # --learning names the learning policies, so the command does not import TensorFlow.
    done = run(root, "--learning=cdqn,ppo")
    assert done.returncode == 0, done.stderr
    assert "## satiation" in done.stdout and "(**below: ppo**)" in done.stdout
    assert os.path.exists(os.path.join(root, "summary.md"))
    failed = run(str(tmp_path / "none"), "--learning=cdqn")
    assert failed.returncode == 1 and "no sim-to-real runs" in failed.stderr
