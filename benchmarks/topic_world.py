"""A click log from a world whose form is not `ganrl.data.synthetic`'s: items in topics.

To check that a user-model default is not tuned to ganrl's own generator. Items belong to
one of T topics and have a Zipf-like quality q_i = -0.9 log(rank_i) (centred); a user has a
sparse taste over topics pi_u ~ Dirichlet(0.15); her utility of item i is

  u = 0.6 q_i + 1.5 log(T pi_u[topic_i] + 0.02) + 1.2 [topic_i = topic of her last click],

and she picks by a softmax over the display set and a no-click option of utility 1. Display
sets of 3-12 items are drawn half by quality (weights exp(q)), half uniformly; users see a
geometric number of sets (mean 7, 2 to 30). Written in the released format as `NAME.txt`
(convert it with `./process_data.sh --data_folder=DIR --dataset=NAME`), with
`NAME-limits.json`: on the test users' clicked events, the prec@1 of the Bayes posterior
predictive that knows the items (topics and qualities) and infers each user's taste from her
earlier events (importance weights over `--samples` prior draws), of an oracle that knows her
taste, and of quality and the last click's topic alone.

  python -m benchmarks.topic_world --out=DIR --seed=0
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.world_log import log_softmax, write_log_and_limits
from ganrl.data.synthetic import draw_user_splits

MAX_DISPLAY = 12
TEST = 2  # split code of a test user (`draw_user_splits`)


def utilities(quality, topic, taste, last_topic, shown):
    """`[..., D]` utilities of `shown` items for tastes `taste [..., T]` and last click topics."""
    n_topics = taste.shape[-1]
    liked = np.take_along_axis(taste, topic[shown], axis=-1)
    return (
        0.6 * quality[shown]
        + 1.5 * np.log(n_topics * liked + 0.02)
        + 1.2 * (topic[shown] == last_topic[..., None])
    )


def generate(out: str, name: str, seed: int, users: int, items: int, topics: int, samples: int):
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, topics, items)
    quality = -0.9 * np.log(rng.permutation(items) + 1.0)
    quality -= quality.mean()
    taste = rng.dirichlet(np.full(topics, 0.15), users)
    lengths = np.clip(rng.geometric(1 / 7, users), 2, 30)
    split = draw_user_splits(rng, users)
    prior = np.random.default_rng(seed + 1000).dirichlet(np.full(topics, 0.15), samples)
    test_users = np.nonzero(split == TEST)[0]
    log_weight = np.zeros((len(test_users), samples))
    popular = np.exp(quality) / np.exp(quality).sum()
    last_topic = np.full(users, -1)
    rows = []  # per step: (users, display [n, D], mask, clicked)
    hits = {"bayes": 0, "oracle": 0, "quality_recency": 0, "clicks": 0}
    for t in range(lengths.max()):
        active = np.nonzero(lengths > t)[0]
        n = len(active)
        sizes = rng.integers(3, MAX_DISPLAY + 1, n)
        by_quality = rng.random(n) < 0.5
        # Without replacement: the smallest exponential keys over weights (Gumbel top-k).
        weights = np.where(by_quality[:, None], popular[None, :], 1.0 / items)
        keys = rng.exponential(size=(n, items)) / weights
        display = np.argsort(keys, axis=1)[:, :MAX_DISPLAY]
        mask = np.arange(MAX_DISPLAY)[None, :] < sizes[:, None]
        util = utilities(quality, topic, taste[active], last_topic[active], display)
        logits = np.concatenate([np.where(mask, util, -np.inf), np.ones((n, 1))], axis=1)
        choice = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
        clicked = np.where(choice < MAX_DISPLAY, choice, -1)
        # The limits on the test users' clicked events, before this event updates them.
        is_test = np.isin(active, test_users)
        where = np.searchsorted(test_users, active[is_test])
        shown, shown_mask = display[is_test], mask[is_test]
        sample_util = utilities(
            quality, topic, prior[None, :, :], last_topic[active[is_test]][:, None], shown[:, None]
        )
        sample_logits = np.concatenate(
            [
                np.where(shown_mask[:, None], sample_util, -np.inf),
                np.ones((len(where), samples, 1)),
            ],
            axis=2,
        )
        sample_log_p = log_softmax(sample_logits)  # [n_test, S, D + 1]
        w = np.exp(log_weight[where] - log_weight[where].max(axis=1, keepdims=True))
        predictive = np.einsum("ns,nsd->nd", w / w.sum(axis=1, keepdims=True), np.exp(sample_log_p))
        picked = clicked[is_test]
        did_click = picked >= 0
        masked = lambda x: np.where(shown_mask, x, -np.inf)  # noqa: E731
        recency = 0.6 * quality[shown] + 1.2 * (topic[shown] == last_topic[active[is_test], None])
        for key, scores in (
            ("bayes", predictive[:, :MAX_DISPLAY]),
            ("oracle", util[is_test]),
            ("quality_recency", recency),
        ):
            best = np.argmax(masked(scores), axis=1)
            hits[key] += int(np.sum(did_click & (best == picked)))
        hits["clicks"] += int(did_click.sum())
        log_weight[where] += np.take_along_axis(
            sample_log_p, np.where(picked >= 0, picked, MAX_DISPLAY)[:, None, None], axis=2
        )[:, :, 0]
        item_clicked = display[np.arange(n), np.maximum(clicked, 0)]
        last_topic[active] = np.where(clicked >= 0, topic[item_clicked], last_topic[active])
        rows.append((active, display, mask, clicked))
    return write_log_and_limits(out, name, rows, split, hits)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder of the log")
    parser.add_argument("--name", default="topics", help="dataset name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=25)
    parser.add_argument("--samples", type=int, default=3000, help="prior draws of the taste")
    args = parser.parse_args(argv)
    limits = generate(
        args.out, args.name, args.seed, args.users, args.items, args.topics, args.samples
    )
    print(json.dumps(limits))


if __name__ == "__main__":
    main()
