"""What a policy gains in the TRUE world from seeing each user's recent display sets.

For sim-to-real harness run folders (`experiment_policy/main_sim_to_real.py`,
`SAVE_DIR/{world}__{seed}`), serves the harness's true users twice with the same trained
policy, through the public serving API (`load_policy`, `recommend`): once with the users'
recent slates and clicks (`recommend(..., events=)`, the default since
`Observation.events`), once with their clicks alone (as before it). Same users, same noise
(`harness.evaluate_true`'s seed); prints the true reward of each, the session lengths and
the paired gap with its 95% interval.

  python -m benchmarks.bench_event_replay runs/sim_to_real/satiation__0 [--policy=gan_greedy]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import load_true_env  # noqa: E402


def compare(run_dir: str, policy_name: str, users: int, true_reward: str) -> dict:
    """{"events": ..., "clicks": ...} true rewards and steps, and the paired gap."""
    from ganrl.policy.export import load_policy, recommend

    world, seed = os.path.basename(os.path.normpath(run_dir)).rsplit("__", 1)
    policy_dir = os.path.join(run_dir, "policy")
    with open(os.path.join(policy_dir, "config.json")) as f:
        config = json.load(f)
    truth = os.path.join(run_dir, "data", f"{harness.DATASET}-truth.npz")
    env = load_true_env(truth, true_reward)
    policy = load_policy(policy_dir, policy_name)
    k, horizon = config["k"], config["horizon"]
    serving = {
        "events": lambda h, c, e: recommend(policy, h, c, k, events=e),
        "clicks": lambda h, c, e: recommend(policy, h, c, k),
    }
    out = {
        name: harness.evaluate_true(env, fn, users, horizon, int(seed) + 100)
        for name, fn in serving.items()
    }
    out["gap"] = harness.paired_gap(out["events"]["reward"], out["clicks"]["reward"])
    out["world"] = world
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="harness run folders ({world}__{seed})")
    parser.add_argument("--policy", default="gan_greedy")
    parser.add_argument("--users", type=int, default=1000, help="the harness's true users")
    parser.add_argument("--true_reward", default="utility", help="as the harness's flag")
    args = parser.parse_args()
    print("| run | with events (se) | clicks alone (se) | gap [95% CI] | sessions |")
    print("|---|---|---|---|---|")
    for run_dir in args.run_dirs:
        r = compare(run_dir, args.policy, args.users, args.true_reward)
        cells = []
        for name in ("events", "clicks"):
            reward = r[name]["reward"]
            cells.append(f"{reward.mean():.3f} ({reward.std() / len(reward) ** 0.5:.3f})")
        gap, low, high = r["gap"]
        steps = f"{r['events']['steps'].mean():.2f} / {r['clicks']['steps'].mean():.2f}"
        print(
            f"| {os.path.basename(os.path.normpath(run_dir))} | {cells[0]} | {cells[1]} | "
            f"{gap:+.3f} [{low:+.3f}, {high:+.3f}] | {steps} |"
        )


if __name__ == "__main__":
    main()
