"""Speed of the off-policy replay (`ganrl.policy.off_policy.event_terms`) on a run's logs.

  python -m benchmarks.bench_off_policy RUN_DIR [--users=235] [--events=50] [--score=both]

Replays the first `--users` logged validation users of a user-model run folder (their first
`--events` events, as the policy runner's checks and estimates do) through GAN-Greedy over the
whole catalogue, the run's own model as the direct method, and prints logged events per
second and the peak RSS. `--score=needed` scores only the displayed and the slate's items at
each step (what a model that reads no display set takes), `catalogue` every item (what a
set-reading model takes; the replay before commit 'replay scores only the items it needs'),
`both` times each and checks that they give the same terms.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from ganrl.policy import off_policy  # noqa: E402
from ganrl.policy.base import PolicyFeatures  # noqa: E402
from ganrl.policy.heuristics import GanGreedy  # noqa: E402
from ganrl.policy.runner import load_training_data  # noqa: E402
from ganrl.user_model import load_user_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("users", 235, "Logged validation users replayed.")
flags.DEFINE_integer("events", 50, "Each user's first events replayed.")
flags.DEFINE_integer("k", 5, "Slate size.")
flags.DEFINE_enum("score", "both", ["needed", "catalogue", "both"], "Items scored per step.")


def replay(policy, model, events, propensity, catalogue: bool, train) -> tuple[dict, float]:
    """The replay's terms and its seconds; `catalogue` scores every item at every step."""
    behavior = model.behavior
    config = behavior.config
    if catalogue:  # the path of a set-reading model, on this model's own figures
        behavior.config = dataclasses.replace(config, set_summary=True)
    try:
        tic = time.perf_counter()
        terms = off_policy.event_terms(
            policy, model, events, propensity, FLAGS.k, max_events=FLAGS.events, reference=train
        )
        return terms, time.perf_counter() - tic
    finally:
        behavior.config = config


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise app.UsageError("expected one user-model run folder")
    model = load_user_model(argv[1])
    splits = load_training_data(model).splits
    events = splits["vali"].subset(np.arange(min(FLAGS.users, splits["vali"].n_users)))
    replayed = int(np.minimum(events.events_per_user, FLAGS.events).sum())
    propensity = off_policy.display_propensities(splits["train"])
    policy = GanGreedy(
        PolicyFeatures.from_user_model(model.reward), FLAGS.k, reward_model=model.reward
    )
    modes = ["needed", "catalogue"] if FLAGS.score == "both" else [FLAGS.score]
    train = splits["train"]
    replay(
        policy, model, events.subset(np.arange(min(8, events.n_users))), propensity, False, train
    )
    results, terms = {}, {}
    for mode in modes:
        terms[mode], seconds = replay(policy, model, events, propensity, mode == "catalogue", train)
        results[mode] = {
            "users": events.n_users,
            "events": replayed,
            "items": model.n_items,
            "seconds": round(seconds, 2),
            "events_per_second": round(replayed / seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(mode, json.dumps(results[mode]), flush=True)
    if len(terms) == 2:
        gap = max(
            float(np.max(np.abs(getattr(terms["needed"], f) - getattr(terms["catalogue"], f))))
            for f in ("ips", "weight", "dm", "correction")
        )
        print(f"largest difference between the two paths' terms: {gap:.2e}")


if __name__ == "__main__":
    app.run(main)
