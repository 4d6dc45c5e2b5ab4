"""Per-item context of the user model, as small pure TF functions.

What lets the utility r(s, a) rank items the model never saw clicked:
- statistics of the item among the training users (`statistic_features` of the counts of
  `ganrl.data.item_stats`), with a training batch's own events taken out
  (`own_event_counts`), so a training event sees what a test event sees;
- the user's own history (`history_features`): was the item clicked before, is it the last
  click, was it shown before, was it in the previous display set. These need item ids, so
  the history keeps the ids of the last clicks and display sets (`recent_click_items`,
  `recent_display_items` in the sequence view; `HistoryIds` in the step view);
- optionally the display set itself (`set_ranks`): each item's rank within its set by a
  feature, computed from the set and its mask, so it works in the simulator too.

None of them looks at the order of a display set's rows: permuting a set permutes them.
Shapes: `N` items of a set, `D` the padded display width, `Kc` / `Kd` the remembered clicks /
display sets, `W` the width of a remembered display set.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

EMPTY = -1  # item id of an empty history slot

STATISTIC_FEATURES = ("log_display_sets", "log_clicks", "click_rate_logit", "unseen")
HISTORY_FEATURES = ("clicked_before", "is_last_click", "shown_before", "shown_last_event")


def statistic_features(counts: tf.Tensor, prior_rate: float, prior_strength: float) -> tf.Tensor:
    """Features of items from their training counts.

    The click rate is the posterior mean under a Beta prior with mean `prior_rate` and
    strength `prior_strength` (pseudo display sets): (c + a p) / (d + a). An item seen once
    and clicked is then no certainty, and an unseen item gets the prior.

    Args:
      counts: `[..., 2]` display sets d and clicks c (`ganrl.data.item_stats.COLUMNS`).
      prior_rate: p, the overall clicks per display set, in (0, 1).
      prior_strength: a > 0.

    Returns:
      `[..., 4]`: log(1 + d), log(1 + c), logit of the smoothed rate minus logit(p) (0 for
      an unseen item), and 1 for an unseen item (d = 0).
    """
    shown, clicks = counts[..., 0], counts[..., 1]
    rate = (clicks + prior_strength * prior_rate) / (shown + prior_strength)
    logit = tf.math.log(rate) - tf.math.log1p(-rate)
    prior_logit = tf.math.log(prior_rate) - tf.math.log1p(-prior_rate)
    return tf.stack(
        [
            tf.math.log1p(shown),
            tf.math.log1p(clicks),
            logit - prior_logit,
            tf.cast(shown <= 0, counts.dtype),
        ],
        axis=-1,
    )


def own_event_counts(
    display: tf.Tensor, display_mask: tf.Tensor, clicked_pos: tf.Tensor, event_user: tf.Tensor
) -> tf.Tensor:
    """How often each displayed item was shown to / clicked by the event's own user, over
    that user's events in the batch (what leave-user-out subtracts from the counts).

    Args:
      display: `[N, D]` item ids.
      display_mask: `[N, D]` bool.
      clicked_pos: `[N]` click position, -1 for none.
      event_user: `[N]` the user of each event.

    Returns:
      `[N, D, 2]` float32: display sets and clicks of (user, item); 0 on padding.
    """
    width = tf.shape(display)[1]
    key = tf.cast(event_user, tf.int64)[:, None] * (
        tf.cast(tf.reduce_max(display), tf.int64) + 1
    ) + tf.cast(display, tf.int64)
    key = tf.where(display_mask, key, -1)  # padding: its own key, never counted
    flat = tf.reshape(key, [-1])
    unique, index = tf.unique(flat)
    is_click = tf.equal(tf.range(width)[None, :], clicked_pos[:, None]) & display_mask
    values = tf.stack(
        [
            tf.reshape(tf.cast(display_mask, tf.float32), [-1]),
            tf.reshape(tf.cast(is_click, tf.float32), [-1]),
        ],
        axis=-1,
    )
    per_key = tf.math.unsorted_segment_sum(values, index, tf.shape(unique)[0])
    own = tf.reshape(tf.gather(per_key, index), tf.concat([tf.shape(display), [2]], 0))
    return own * tf.cast(display_mask, tf.float32)[..., None]


def recent_click_items(
    click_items: tf.Tensor, event_user: tf.Tensor, clicks_before: tf.Tensor, width: int
) -> tf.Tensor:
    """Each event's last `width` clicked items, most recent first.

    Args:
      click_items: `[B, C]` each user's clicked items in order.
      event_user: `[N]` the user (row of `click_items`) of each event.
      clicks_before: `[N]` how many of that user's clicks precede the event.

    Returns:
      `[N, width]` int32, `EMPTY` before the user's first click.
    """
    rows = clicks_before[:, None] - 1 - tf.range(width)[None, :]
    users = tf.broadcast_to(event_user[:, None], tf.shape(rows))
    items = tf.gather_nd(click_items, tf.stack([users, tf.maximum(rows, 0)], axis=-1))
    return tf.where(rows >= 0, items, EMPTY)


def recent_display_items(
    display: tf.Tensor, display_mask: tf.Tensor, event_user: tf.Tensor, width: int
) -> tf.Tensor:
    """The display sets of each event's `width` previous events of the same user.

    Events of a flat batch are in order and each user's events are contiguous, so event n's
    previous events are rows n-1, n-2, ... while they belong to the same user.

    Args:
      display: `[N, D]`, display_mask `[N, D]`, event_user `[N]`.

    Returns:
      `[N, width, D]` int32, most recent first; `EMPTY` on padding and missing events.
    """
    n = tf.shape(display)[0]
    rows = tf.range(n)[:, None] - 1 - tf.range(width)[None, :]
    safe = tf.maximum(rows, 0)
    same_user = (rows >= 0) & tf.equal(tf.gather(event_user, safe), event_user[:, None])
    items = tf.where(tf.gather(display_mask, safe), tf.gather(display, safe), EMPTY)
    return tf.where(same_user[..., None], items, EMPTY)


def history_features(
    items: tf.Tensor, recent_clicks: tf.Tensor, recent_displays: tf.Tensor
) -> tf.Tensor:
    """What the user's own history says about each item.

    Args:
      items: `[..., N]` item ids.
      recent_clicks: `[..., Kc]` last clicked items, most recent first, `EMPTY` padded.
      recent_displays: `[..., Kd, W]` last display sets, most recent first, `EMPTY` padded.

    Returns:
      `[..., N, 4]` float32: times clicked among the last Kc clicks, 1 if it is the last
      click, times shown among the last Kd display sets, 1 if it was in the previous one.
    """
    items = tf.cast(items, tf.int32)
    click_hit = tf.equal(items[..., :, None], tf.cast(recent_clicks, tf.int32)[..., None, :])
    shown = tf.cast(recent_displays, tf.int32)
    show_hit = tf.equal(items[..., :, None, None], shown[..., None, :, :])  # [..., N, Kd, W]
    show_per_event = tf.reduce_any(show_hit, axis=-1)
    f = lambda x: tf.cast(x, tf.float32)  # noqa: E731
    return tf.stack(
        [
            tf.reduce_sum(f(click_hit), -1),
            f(click_hit[..., 0]),
            tf.reduce_sum(f(show_per_event), -1),
            f(show_per_event[..., 0]),
        ],
        axis=-1,
    )


def set_ranks(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Each item's rank within its display set by each feature, scaled to [0, 1].

    Ties share the mean of their places (never broken by position); padding is ignored;
    a set of one item gets 0.5. Sorting, not pairwise comparison, so sets as large as the
    catalogue (the simulator's candidates) cost O(N log N).

    Args:
      values: `[..., N, k]` features of the items.
      mask: `[..., N]` bool, True on real items.

    Returns:
      `[..., N, k]`: 0 for the set's smallest value, 1 for its largest.
    """
    x = tf.experimental.numpy.moveaxis(values, -1, -2)  # [..., k, N]
    m = tf.broadcast_to(mask[..., None, :], tf.shape(x))
    big = tf.reduce_max(tf.abs(x)) + 1.0
    keyed = tf.where(m, x, big)  # padding sorts last and is never below a real value
    ordered = tf.sort(keyed, axis=-1)
    below = tf.searchsorted(ordered, keyed, side="left")
    not_above = tf.searchsorted(ordered, keyed, side="right")
    place = tf.cast(below + not_above - 1, values.dtype) / 2.0  # mean 0-based place of ties
    valid = tf.reduce_sum(tf.cast(m, values.dtype), axis=-1, keepdims=True)
    rank = tf.where(valid > 1, place / tf.maximum(valid - 1.0, 1.0), 0.5)
    return tf.experimental.numpy.moveaxis(tf.where(m, rank, 0.0), -2, -1)


class HistoryIds(NamedTuple):
    """The step view's memory of item ids: `clicks [B, Kc]` and `displays [B, Kd, W]`, most
    recent first, `EMPTY` padded."""

    clicks: tf.Tensor
    displays: tf.Tensor


def empty_history_ids(batch_size: int, clicks: int, events: int, width: int) -> HistoryIds:
    return HistoryIds(
        tf.fill([batch_size, clicks], EMPTY), tf.fill([batch_size, events, width], EMPTY)
    )


def update_history_ids(
    ids: HistoryIds,
    clicked_item: tf.Tensor,
    clicked: tf.Tensor,
    display: tf.Tensor | None,
    display_mask: tf.Tensor | None,
) -> HistoryIds:
    """Adds one event: the click where `clicked [B]`, and the display set `display [B, D']`
    (`display_mask [B, D']`, all real when None) when one is given. D' <= W."""
    shifted = tf.concat([tf.cast(clicked_item, tf.int32)[:, None], ids.clicks[:, :-1]], axis=1)
    clicks = tf.where(tf.cast(clicked, tf.bool)[:, None], shifted, ids.clicks)
    displays = ids.displays
    if display is not None:
        width = ids.displays.shape[-1]
        if display.shape[-1] is not None and display.shape[-1] > width:
            raise ValueError(
                f"display set of {display.shape[-1]} items: this model remembers "
                f"display sets of at most {width} (history_display_width)"
            )
        display = tf.cast(display, tf.int32)
        if display_mask is not None:
            display = tf.where(display_mask, display, EMPTY)
        pad = width - tf.shape(display)[-1]
        display = tf.pad(display, [[0, 0], [0, pad]], constant_values=EMPTY)
        displays = tf.concat([display[:, None, :], ids.displays[:, :-1]], axis=1)
    return HistoryIds(clicks, displays)
