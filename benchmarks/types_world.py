"""A click log from a world of discrete user types, whose Bayes limit is exact.

Another world whose form is not `ganrl.data.synthetic`'s (nor `benchmarks/topic_world.py`'s), to
check a user-model default on logs it was not chosen on. Items fall in G groups and have a
quality q_i ~ N(0, 1); each of K user types likes 3 groups. A user of type k, after her clicks
so far, gives item i the utility

  u = q_i + 3 [k likes group_i] - 2.5 [i is among her last 5 clicks]
      + 2 [group_i follows the group of her last click, (g + 1) mod G],

and picks by a softmax over the display set and a no-click option of utility 1: she avoids
what she has just taken and moves on to what comes next (a phone, then its case). Display sets
of 4-15 items are drawn without replacement by weights exp(0.7 q), three times as heavy on the
group after her last click's, or uniformly for 30% of sets; the logging policy never sees the
type, so the display sets say nothing of it. Users see a geometric number of sets (mean 10,
2 to 40).

Since the types are few, the Bayes posterior over a user's type given her earlier choices is
exact (no sampling), and so is the limit. Written in the released format as `NAME.txt`
(convert it with `./process_data.sh --data_folder=DIR --dataset=NAME`), with `NAME-limits.json`:
on the test users' clicked events, the prec@1 of the Bayes posterior predictive that knows the
items (groups and qualities) and infers the type, of an oracle that knows the type too, and of
the items' parts alone (quality; quality and the last clicks; and the next group as well).

  python -m benchmarks.types_world --out=DIR --seed=0
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.world_log import log_softmax, write_log_and_limits
from ganrl.data.synthetic import draw_user_splits
from ganrl.sim2real.true_env import TrueEnvironment

MAX_DISPLAY = 15
RECENT = 5  # clicks an item is avoided for
SESSION = (0.1, 2, 40)  # a user's display sets: geometric(p), clipped to [min, max]
NO_CLICK = 1.0  # the no-click option's utility
TEST = 2  # split code of a test user (`draw_user_splits`)


def item_parts(quality, group, recent, next_group, shown):
    """`[n, D]` the parts of the utilities of `shown [n, D]` every type shares: quality, the
    avoidance of the users' `recent [n, RECENT]` clicks (-1: none) and the pull of the group
    `next_group [n]` (-1: none) after the last click's."""
    avoided = (shown[:, :, None] == recent[:, None, :]).any(axis=2)
    follows = group[shown] == next_group[:, None]
    return quality[shown] - 2.5 * avoided + 2.0 * follows


def draw_world(
    rng: np.random.Generator, items: int, groups: int, types: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items' groups `[I]` and qualities `[I]` and the types' tastes `[K, I]` (3 for an
    item of a liked group, else 0), the first draws of a world's stream."""
    group = rng.integers(0, groups, items)
    quality = rng.normal(0.0, 1.0, items)
    liked = np.zeros((types, groups))
    for k in range(types):
        liked[k, rng.choice(groups, 3, replace=False)] = 1.0
    return group, quality, 3.0 * liked[:, group]


def generate(out: str, name: str, seed: int, users: int, items: int, groups: int, types: int):
    rng = np.random.default_rng(seed)
    group, quality, taste = draw_world(rng, items, groups, types)
    user_type = rng.integers(0, types, users)
    p_end, fewest, most = SESSION
    lengths = np.clip(rng.geometric(p_end, users), fewest, most)
    split = draw_user_splits(rng, users)
    is_test_user = split == TEST
    log_posterior = np.zeros((users, types))  # log P(type | choices so far), unnormalised
    recent = np.full((users, RECENT), -1)
    next_group = np.full(users, -1)
    hits = dict.fromkeys(("bayes", "oracle", "quality", "recent", "next_group", "clicks"), 0)
    rows = []  # per step: (users, display [n, D], mask, clicked)
    for t in range(lengths.max()):
        active = np.nonzero(lengths > t)[0]
        n = len(active)
        follows = group[None, :] == next_group[active, None]
        weights = np.exp(0.7 * quality)[None, :] * np.where(follows, 3.0, 1.0)
        weights = np.where(rng.random(n)[:, None] < 0.3, 1.0, weights)
        # Without replacement: the smallest exponential keys over weights (Gumbel top-k).
        keys = rng.exponential(size=(n, items)) / weights
        display = np.argsort(keys, axis=1)[:, :MAX_DISPLAY]
        mask = np.arange(MAX_DISPLAY)[None, :] < rng.integers(4, MAX_DISPLAY + 1, n)[:, None]
        shared = item_parts(quality, group, recent[active], next_group[active], display)
        by_type = shared[:, None, :] + taste[:, display].transpose(1, 0, 2)  # [n, K, D]
        logits = np.concatenate(
            [np.where(mask[:, None, :], by_type, -np.inf), np.full((n, types, 1), NO_CLICK)], axis=2
        )
        log_p = log_softmax(logits)  # [n, K, D + 1]
        own = logits[np.arange(n), user_type[active]]
        choice = np.argmax(own + rng.gumbel(size=own.shape), axis=1)
        clicked = np.where(choice < MAX_DISPLAY, choice, -1)
        # The limits on the test users' clicked events, before this event updates them.
        posterior = np.exp(log_posterior[active] - log_posterior[active].max(1, keepdims=True))
        posterior /= posterior.sum(axis=1, keepdims=True)
        predictive = np.einsum("nk,nkd->nd", posterior, np.exp(log_p))[:, :MAX_DISPLAY]
        scored = is_test_user[active] & (clicked >= 0)
        recent_only = quality[display] - 2.5 * (
            display[:, :, None] == recent[active][:, None, :]
        ).any(axis=2)
        for key, scores in (
            ("bayes", predictive),
            ("oracle", own[:, :MAX_DISPLAY]),
            ("quality", quality[display]),
            ("recent", recent_only),
            ("next_group", shared),
        ):
            best = np.argmax(np.where(mask, scores, -np.inf), axis=1)
            hits[key] += int(np.sum(best[scored] == clicked[scored]))
        hits["clicks"] += int(scored.sum())
        log_posterior[active] += log_p[np.arange(n), :, choice]
        item = display[np.arange(n), np.maximum(clicked, 0)]
        took = clicked >= 0
        shifted = np.concatenate([item[:, None], recent[active][:, :-1]], axis=1)
        recent[active] = np.where(took[:, None], shifted, recent[active])
        next_group[active] = np.where(took, (group[item] + 1) % groups, next_group[active])
        rows.append((active, display, mask, clicked))
    return write_log_and_limits(out, name, rows, split, hits)


class TypesEnvironment(TrueEnvironment):
    """New users of the world of `seed` (the items and types `generate` drew with it) as a
    true environment for the sim-to-real check (`benchmarks/bench_types_sim_to_real.py`):
    each user's type is drawn uniformly, her utilities are the generator's, a click pays 1,
    and she leaves as the logs' users did, after a geometric number of display sets
    (`SESSION`), whatever she was shown."""

    reward_kind = "click"
    no_click_utility = NO_CLICK

    def __init__(self, seed: int = 0, items: int = 1000, groups: int = 50, types: int = 40):
        self.group, self.quality, self.taste = draw_world(
            np.random.default_rng(seed), items, groups, types
        )
        self.n_items, self.groups, self.types = items, groups, types

    def _start(self, users: int) -> None:
        self.user_type = self.rng.integers(0, self.types, users)
        self.recent = np.full((users, RECENT), -1)
        self.next_group = np.full(users, -1)
        self.shown = 0

    def utilities(self, items: np.ndarray | None = None) -> np.ndarray:
        users = len(self.user_type)
        if items is None:
            items = np.broadcast_to(np.arange(self.n_items), (users, self.n_items))
        shared = item_parts(self.quality, self.group, self.recent, self.next_group, items)
        return shared + np.take_along_axis(self.taste[self.user_type], items, axis=1)

    def leave_probabilities(self, slate: np.ndarray) -> np.ndarray:
        # After the t-th set: 0 before the fewest, then P(L <= fewest) (the clip moves the
        # shorter sessions there), then p, and 1 at the most.
        p_end, fewest, most = SESSION
        t = self.shown + 1
        if t < fewest:
            p = 0.0
        elif t == fewest:
            p = 1.0 - (1.0 - p_end) ** fewest
        else:
            p = 1.0 if t >= most else p_end
        return np.full(len(slate), p)

    def _after(self, slate, choice, leave_draw):
        leaves = leave_draw < self.leave_probabilities(slate)
        k = slate.shape[1]
        took = choice < k
        item = slate[np.arange(len(slate)), np.minimum(choice, k - 1)]
        shifted = np.concatenate([item[:, None], self.recent[:, :-1]], axis=1)
        self.recent = np.where(took[:, None], shifted, self.recent)
        self.next_group = np.where(took, (self.group[item] + 1) % self.groups, self.next_group)
        self.shown += 1
        return leaves


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder of the log")
    parser.add_argument("--name", default="types", help="dataset name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--types", type=int, default=40)
    args = parser.parse_args(argv)
    limits = generate(
        args.out, args.name, args.seed, args.users, args.items, args.groups, args.types
    )
    print(json.dumps(limits))


if __name__ == "__main__":
    main()
