"""Sim-to-real harness runs checked against the bar, per run and per world over seeds.

`python -m ganrl.reporting.sim_to_real RUNS_ROOT [--out DIR]` reads every
`RUNS_ROOT/{world}__{seed}/results.json` written by `ganrl.sim2real.harness` and writes
`summary.md` and `checks.csv` into DIR (RUNS_ROOT by default); `--learning=a,b` names the
learning policies instead of the registry (which imports TensorFlow). `run_sim_to_real.sh`
runs it after the harness.

Per run (one world, one seed), from the policies' rows:
- `learners`: every learning policy (`Policy.learns`) serves true users at least GAN-Greedy's
  reward less 2 se, se being the standard error of the paired gap (the 95% interval's
  half-width over 1.96); the policies that do not are named in `learners_below`;
- `cdqn_lower`: CDQN's gap to GAN-Greedy less 2 se: above 0, CDQN beats GAN-Greedy beyond
  noise;
- `greedy_over_popular`: most popular's whole 95% interval below GAN-Greedy;
- `session_error`: the largest |simulated / true - 1| of the session length over the
  policies the learned simulator ran (`session_worst` names the policy); the bar is 10%;
- `spearman`, `spearman_off_policy`: the simulator's and the doubly robust estimate's rank
  correlation with the truth over the policies; the bar is 0.8.
Per world, each policy's true reward and gap to GAN-Greedy, mean over the seeds, and in how
many seeds the gap lies beyond 2 se below and above zero.
"""

from __future__ import annotations

import glob
import math
import os
import sys
from collections.abc import Collection

import numpy as np

from ganrl.data import safe_io
from ganrl.data.safe_io import DataError
from ganrl.reporting.tables import markdown_table, ordered_unique

BASELINE = "gan_greedy"
Z95 = 1.96
SESSION_BAR = 0.10
SPEARMAN_BAR = 0.8
ROW_FIELDS = (
    "policy",
    "true_reward",
    "true_se",
    "true_steps",
    "sim_steps",
    "gap_to_gan_greedy",
    "gap_ci95_low",
    "gap_ci95_high",
)
CHECK_FIELDS = (
    "world",
    "seed",
    "gan_greedy",
    "learners",
    "learners_below",
    "cdqn_lower",
    "greedy_over_popular",
    "session_error",
    "session_worst",
    "spearman",
    "spearman_off_policy",
)


def learning_policies() -> frozenset[str]:
    """Names of the registered policies that learn (imports the policies, hence TensorFlow)."""
    from ganrl.policy import registry

    return frozenset(name for name in registry.names() if registry.POLICIES[name].learns)


def _number(path: str, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{path}: {where}: expected a number, got {value!r}")
    return float(value)


def read_run(path: str) -> dict:
    """One harness `results.json`: {world, seed, rows: {policy: row}, spearman, ...}."""
    value = safe_io.read_json_object(path)
    for key in ("config", "rows", "spearman", "spearman_off_policy"):
        if key not in value:
            raise DataError(f"{path}: field '{key}' missing (a sim-to-real results.json?)")
    config = value["config"]
    if not isinstance(config, dict) or "world" not in config or "seed" not in config:
        raise DataError(f"{path}: field 'config' needs 'world' and 'seed'")
    if not isinstance(value["rows"], list):
        raise DataError(f"{path}: field 'rows': expected a list of policy rows")
    rows = {}
    for i, row in enumerate(value["rows"]):
        if not isinstance(row, dict):
            raise DataError(f"{path}: rows[{i}]: expected an object")
        for field in ROW_FIELDS:
            if field not in row:
                raise DataError(f"{path}: rows[{i}]: field '{field}' missing")
        rows[str(row["policy"])] = {
            field: _number(path, f"rows[{i}].{field}", row[field])
            for field in ROW_FIELDS
            if field != "policy"
        }
    if BASELINE not in rows:
        raise DataError(f"{path}: no '{BASELINE}' row: every gap is measured against it")
    return {
        "path": path,
        "world": str(config["world"]),
        "seed": int(_number(path, "config.seed", config["seed"])),
        "rows": rows,
        "spearman": _number(path, "spearman", value["spearman"]),
        "spearman_off_policy": _number(path, "spearman_off_policy", value["spearman_off_policy"]),
    }


def read_runs(root: str) -> list[dict]:
    """Every `root/*/results.json`, ordered by world then seed."""
    paths = sorted(glob.glob(os.path.join(root, "*", "results.json")))
    if not paths:
        raise DataError(f"{root}: no sim-to-real runs ({{world}}__{{seed}}/results.json) in it")
    return sorted((read_run(p) for p in paths), key=lambda r: (r["world"], r["seed"]))


def gap_se(row: dict) -> float:
    """Standard error of a paired gap, from its 95% interval."""
    return (row["gap_ci95_high"] - row["gap_ci95_low"]) / (2 * Z95)


def run_checks(run: dict, learning: Collection[str]) -> dict:
    """The bar's checks for one run (the module docstring); nan where a policy is absent."""
    rows = run["rows"]
    learners = [name for name in rows if name in learning]
    # A gap that could not be measured (nan) is not a pass: it counts as below.
    below = [n for n in learners if not rows[n]["gap_to_gan_greedy"] + 2 * gap_se(rows[n]) >= 0]
    cdqn = rows.get("cdqn")
    popular = rows.get("most_popular")
    errors = {
        name: abs(row["sim_steps"] / row["true_steps"] - 1.0)
        for name, row in rows.items()
        if not math.isnan(row["sim_steps"]) and row["true_steps"] > 0
    }
    worst = max(errors, key=errors.get) if errors else ""
    session_error = errors[worst] if errors else float("nan")
    if session_error == 0:
        worst = ""  # every simulated session as long as the true one: no policy to name
    return {
        "world": run["world"],
        "seed": run["seed"],
        "gan_greedy": rows[BASELINE]["true_reward"],
        "learners": len(learners) - len(below),
        "learners_below": " ".join(below),
        "cdqn_lower": (
            cdqn["gap_to_gan_greedy"] - 2 * gap_se(cdqn) if cdqn is not None else float("nan")
        ),
        "greedy_over_popular": (
            popular["gap_ci95_high"] < 0 if popular is not None else float("nan")
        ),
        "session_error": session_error,
        "session_worst": worst,
        "spearman": run["spearman"],
        "spearman_off_policy": run["spearman_off_policy"],
        "_learner_count": len(learners),
    }


def world_rows(runs: list[dict]) -> list[dict]:
    """Per (world, policy): true reward and gap, mean over seeds; seeds beyond 2 se."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        for name, row in run["rows"].items():
            groups.setdefault((run["world"], name), []).append(row)
    out = []
    for (world, name), rows in groups.items():
        gaps = np.array([r["gap_to_gan_greedy"] for r in rows])
        ses = np.array([gap_se(r) for r in rows])
        out.append(
            {
                "world": world,
                "policy": name,
                "seeds": len(rows),
                "true_reward": float(np.mean([r["true_reward"] for r in rows])),
                "gap": float(gaps.mean()),
                "seeds_below": int(np.sum(gaps + 2 * ses < 0)),
                "seeds_above": int(np.sum(gaps - 2 * ses > 0)),
            }
        )
    return out


def _cell(value: float, fmt: str) -> str:
    return "" if isinstance(value, float) and math.isnan(value) else format(value, fmt)


def _mark(passed: bool) -> str:
    return "yes" if passed else "**no**"


def markdown(checks: list[dict], worlds: list[dict]) -> str:
    """`summary.md`: the per-run checks, then per world the policies over seeds."""
    header = [
        "world",
        "seed",
        "GAN-Greedy",
        "learners >= GAN-Greedy - 2 se",
        "CDQN gap - 2 se",
        "GAN-Greedy > most popular",
        "worst session error",
        "Spearman sim (>= 0.8)",
        "Spearman DR",
    ]
    body = []
    for c in checks:
        learners = f"{c['learners']} of {c['_learner_count']}"
        if c["learners_below"]:
            learners += f" (**below: {c['learners_below']}**)"
        popular = c["greedy_over_popular"]
        session = _cell(c["session_error"], ".1%")
        if session and c["session_worst"]:
            session = f"{session} ({c['session_worst']})"
            if c["session_error"] > SESSION_BAR:
                session = f"**{session}**"
        body.append(
            [
                c["world"],
                c["seed"],
                f"{c['gan_greedy']:.3f}",
                learners,
                _cell(c["cdqn_lower"], "+.3f"),
                "" if isinstance(popular, float) else _mark(popular),
                session,
                "n/a (under 3 policies, or one side constant)"
                if math.isnan(c["spearman"])
                else f"{c['spearman']:.2f} {_mark(c['spearman'] >= SPEARMAN_BAR)}",
                _cell(c["spearman_off_policy"], ".2f"),
            ]
        )
    lines = [
        "# Sim-to-real runs against the bar",
        "",
        "Per run: learning policies whose true reward is not below GAN-Greedy's by more "
        "than 2 se of the paired gap; CDQN's gap less 2 se (above 0: better beyond noise); "
        "most popular's 95% interval below GAN-Greedy; the largest relative error of the "
        "simulated session length (bar 10%); the simulator's and the doubly robust "
        "estimate's Spearman correlation with the truth (bar 0.8).",
        "",
        markdown_table(header, body),
        "Per world, mean over seeds: true reward, gap to GAN-Greedy, and the seeds where "
        "the gap is beyond 2 se below / above zero.",
        "",
    ]
    for world in ordered_unique([r["world"] for r in worlds]):
        rows = [r for r in worlds if r["world"] == world]
        lines += [
            f"## {world}",
            "",
            markdown_table(
                ["policy", "seeds", "true reward", "gap", "seeds below", "seeds above"],
                [
                    [
                        r["policy"],
                        r["seeds"],
                        f"{r['true_reward']:.3f}",
                        f"{r['gap']:+.3f}",
                        r["seeds_below"],
                        r["seeds_above"],
                    ]
                    for r in rows
                ],
            ),
        ]
    return "\n".join(lines)


def summarise(root: str, out_dir: str | None = None, learning: Collection[str] | None = None):
    """Reads the runs under `root`, writes `summary.md` and `checks.csv`; returns the text."""
    runs = read_runs(root)
    learning = learning_policies() if learning is None else learning
    checks = [run_checks(run, learning) for run in runs]
    text = markdown(checks, world_rows(runs))
    out_dir = out_dir or root
    safe_io.make_folder(out_dir, "--out")
    safe_io.write_csv_rows(
        os.path.join(out_dir, "checks.csv"), CHECK_FIELDS, checks, extrasaction="ignore"
    )
    with safe_io.atomic_open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(text)
    return text


def main(argv: list[str]) -> None:
    from absl import flags

    if len(argv) != 2:
        print("usage: python -m ganrl.reporting.sim_to_real RUNS_ROOT [--out DIR]", file=sys.stderr)
        sys.exit(2)
    try:
        learning = flags.FLAGS.learning
        print(summarise(argv[1], flags.FLAGS.out, learning and frozenset(learning)), end="")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    # Flags are defined only when this module is the entry point.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from absl import app, flags

    flags.DEFINE_string("out", None, "Folder for summary.md and checks.csv (default: RUNS_ROOT).")
    flags.DEFINE_list(
        "learning",
        None,
        "The learning policies (default: those of ganrl.policy.registry whose Policy.learns).",
    )
    app.run(main)
