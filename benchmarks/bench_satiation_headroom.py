"""How much a satiation world rewards planning over the horizon, before any learning.

For the satiation world (`ganrl.data.satiation`) with its default settings and with the
variants given, it serves new users of the TRUE world (`ganrl.sim2real.true_env`, k items of
the whole catalogue, the harness's horizon) with references that know the truth and with
two policies that do not, and prints their clicks per user and session lengths:
- `myopic`: the top k by the true utilities now (knows each user's current tiredness);
- `no_clickbait`: the same, never showing a clickbait item (with clickbait: the simplest
  policy that gives up clicks now for the session; without, `myopic` itself);
- `lookahead`: the harness's short lookahead (`harness.lookahead_oracle`, `--width` candidate
  slates valued over this step and the next);
- `static`: the top k by the users' tastes, blind to tiredness (what a greedy policy with a
  perfect model of static preferences does);
- `popular`: the k items of highest bias for everyone; `random`: k items drawn uniformly.
`lookahead - myopic` is the value of planning that a long-horizon policy could add over a
greedy one with a perfect model of the current state; `myopic - static` the value of knowing
the state. The sim-to-real bar "CDQN above GAN-Greedy" needs the first to be sizeable.

  python -m benchmarks.bench_satiation_headroom                      # the default world
  python -m benchmarks.bench_satiation_headroom --variant=satiation_shown=1.0,leave_threshold=3
"""

from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ganrl.data.satiation import SatiationConfig, SatiationWorld  # noqa: E402
from ganrl.sim2real import harness  # noqa: E402
from ganrl.sim2real.true_env import SatiationEnvironment  # noqa: E402

POLICIES = ("myopic", "no_clickbait", "lookahead", "static", "popular", "random")


def parse_variant(text: str) -> dict[str, float]:
    """'name=value,name=value' -> settings of `SatiationConfig` (checked by name)."""
    fields = {f.name: f.type for f in dataclasses.fields(SatiationConfig)}
    settings = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        if not sep or name not in fields:
            raise SystemExit(
                f"--variant: {part!r} is not NAME=VALUE with NAME a SatiationConfig field "
                f"({', '.join(fields)})"
            )
        settings[name] = int(value) if fields[name] in (int, "int") else float(value)
    return settings


def recommenders(env: SatiationEnvironment, k: int, width: int, seed: int) -> dict:
    world = env.world
    popular = np.argsort(-world.b, kind="stable")[:k]
    rng = np.random.default_rng(seed)

    def static(history, candidates, events=None):
        u = env.static_utilities()[:, candidates]
        return candidates[np.argsort(-u, axis=1, kind="stable")[:, :k]]

    def most_popular(history, candidates, events=None):
        return np.broadcast_to(popular, (len(history), k))

    def uniform(history, candidates, events=None):
        keys = rng.random((len(history), len(candidates)))
        return candidates[np.argsort(keys, axis=1)[:, :k]]

    return {
        "myopic": harness.myopic_oracle(env, k),
        "no_clickbait": harness.no_clickbait_oracle(env, k),
        "lookahead": harness.lookahead_oracle(env, k, width),
        "static": static,
        "popular": most_popular,
        "random": uniform,
    }


def headroom(settings: dict, users: int, k: int, horizon: int, width: int, seed: int) -> dict:
    """{policy: {"reward": `[users]` clicks, "steps": `[users]` session lengths}} in one
    world; every policy meets the same users and noise (`evaluate_true`'s seed)."""
    config = SatiationConfig(**settings)
    config.validate()
    env = SatiationEnvironment(SatiationWorld.draw(config, np.random.default_rng(seed)))
    out = {}
    for name, recommend in recommenders(env, k, width, seed).items():
        out[name] = harness.evaluate_true(env, recommend, users, horizon, seed + 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="SatiationConfig settings 'name=value,...' (repeatable; the default world first)",
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--width", type=int, default=3, help="the lookahead's candidate slates")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("clicks per user (se), slates seen; gaps to myopic paired over users, 95% interval")
    print("| world | " + " | ".join(POLICIES) + " | no_clickbait - myopic | lookahead - myopic |")
    print("|---|" + "---|" * (len(POLICIES) + 2))
    worlds = {text or "default": parse_variant(text) for text in ["", *args.variant]}
    for name, settings in worlds.items():
        figures = headroom(settings, args.users, args.k, args.horizon, args.width, args.seed)
        cells = [
            f"{r['reward'].mean():.2f} ({r['reward'].std(ddof=1) / np.sqrt(args.users):.2f}), "
            f"{r['steps'].mean():.1f}"
            for r in figures.values()
        ]
        gaps = [
            harness.paired_gap(figures[policy]["reward"], figures["myopic"]["reward"])
            for policy in ("no_clickbait", "lookahead")
        ]
        print(
            f"| {name} | "
            + " | ".join(cells + [f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]" for g, lo, hi in gaps])
            + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
