"""Which learned simulator ranks a sim-to-real run's policies as the truth does.

For harness run folders (`experiment_policy/main_sim_to_real.py`, `SAVE_DIR/{world}__{seed}`)
it evaluates every trained policy (through `load_policy`, frozen) in the simulator of each of
the run's user models: the training LSTM (seed + 0, GAN-Greedy's), the test PW (seed + 1,
the harness's "simulator" column) and, in a run with `--ensemble=N`, every ensemble member
(LSTM, seeds + 2 ...). Each simulator has the test simulator's settings (its leave model on,
the same users and random stream for every policy). Then the Spearman rank correlation with
the true rewards of the run's table (`table.csv`) of each simulator alone and of the mean
cumulative reward over groups of them:
- "held_out": the models no policy trained in (the test PW and, with an ensemble, the last
  member, in which snapshots were selected; without an ensemble, the PW alone);
- "all": every user model of the run.
A simulator a policy trained in flatters it, so only the held-out group is an honest
ranking; "all" and the single training models are printed to show how much they flatter.

  python -m benchmarks.bench_sim_ranking runs/sim2real/satiation__0 [--users=500]
      [--variant=ensemble4_penalty1] [--reward=centred]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ganrl.policy.export import load_policy  # noqa: E402
from ganrl.policy.runner import PolicyConfig, run_episodes  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.simulator.simulator import REWARDS, Simulator  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402

USER_MODEL = re.compile(r"user_model_(LSTM|PW)__(\d+)$")


def user_models(run_dir: str) -> list[tuple[str, int]]:
    """[(folder, seed offset)] of the run's finished user models, by offset."""
    found = []
    for folder in os.listdir(run_dir):
        match = USER_MODEL.match(folder)
        if match and os.path.exists(os.path.join(run_dir, folder, "results.json")):
            found.append((folder, int(match.group(2))))
    return sorted(found, key=lambda item: item[1])


def held_out(folders: list[tuple[str, int]]) -> list[str]:
    """The models no policy trained in: the test PW (offset 1) and, with ensemble members
    (offsets 2 ...), the last of them (the selection model)."""
    names = [folder for folder, offset in folders if offset == 1]
    members = [folder for folder, offset in folders if offset >= 2]
    return names + members[-1:]


def true_rewards(run_dir: str) -> dict[str, float]:
    """{policy: true reward} of the run's table, the policies it trained or served (rows
    with a simulator figure: not the oracles)."""
    with open(os.path.join(run_dir, "table.csv")) as f:
        return {
            row["policy"]: float(row["true_reward"])
            for row in csv.DictReader(f)
            if row["sim_reward"] not in ("", "nan")
        }


def simulated_rewards(
    run_dir: str, policies: list[str], users: int, policy_folder: str = "policy", reward: str = ""
) -> dict[str, dict]:
    """{user model folder: {policy: mean cumulative reward in its simulator}} (`reward`: the
    simulators' reward if not the run's, `SimulatorConfig.reward`)."""
    policy_dir = os.path.join(run_dir, policy_folder)
    with open(os.path.join(policy_dir, "config.json")) as f:
        config = PolicyConfig.from_dict(json.load(f))
    if reward:
        config = dataclasses.replace(config, reward=reward)
    loaded = {name: load_policy(policy_dir, name) for name in policies}
    out = {}
    for folder, _ in user_models(run_dir):
        sim = Simulator(load_user_model(os.path.join(run_dir, folder)), config.simulator(1))
        out[folder] = {}
        for name, policy in loaded.items():
            sim.rng.reset_from_seed(config.seed + 1)  # the same users and draws for each
            rewards, _, _ = run_episodes(sim, policy, users)
            out[folder][name] = float(rewards.sum(axis=1).mean())
        print(f"  {folder}: " + ", ".join(f"{n} {v:.3f}" for n, v in out[folder].items()))
    return out


def rankings(
    run_dir: str, users: int, variant: str = "", reward: str = ""
) -> list[tuple[str, float, dict]]:
    """[(simulator or group, Spearman with the truth, {policy: reward})] of one run (of its
    policy settings `variant`, `HarnessConfig.variant`; `reward`: the simulators' reward)."""
    truth = true_rewards(os.path.join(run_dir, variant))
    policies = sorted(truth)
    folder = f"policy__{variant}" if variant else "policy"
    sims = simulated_rewards(run_dir, policies, users, folder, reward)
    groups = {
        "held_out": held_out(user_models(run_dir)),
        "all": [folder for folder, _ in user_models(run_dir)],
    }
    rows = [(folder, rewards) for folder, rewards in sims.items()]
    for group, folders in groups.items():
        rows.append(
            (
                f"{group} ({', '.join(folders)})",
                {p: float(np.mean([sims[f][p] for f in folders])) for p in policies},
            )
        )
    y = [truth[p] for p in policies]
    return [(name, harness.spearman([r[p] for p in policies], y), r) for name, r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="harness run folders")
    parser.add_argument("--users", type=int, default=500, help="simulated users per policy")
    parser.add_argument(
        "--variant", default="", help="the policy settings' folder suffix (policy__VARIANT)"
    )
    parser.add_argument(
        "--reward",
        default="",
        choices=["", *REWARDS],
        help="the simulators' reward (default: the run's)",
    )
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        print(f"{run_dir}:")
        for name, rho, _ in rankings(run_dir, args.users, args.variant, args.reward):
            print(f"| {name} | {rho:.2f} |", flush=True)


if __name__ == "__main__":
    main()
