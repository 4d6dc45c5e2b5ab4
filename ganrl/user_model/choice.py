"""The choice model and the two training objectives, as small pure functions.

A user facing display set A_t picks item a with probability given by a softmax over the
utilities r(s_t, a) of the displayed items plus, where the data has no-click events, a learned
no-click utility. On data where every display set has a click (the released files) a fixed
no-click utility would let every utility drift upward without bound (each step raises the
clicked item's probability *and* lowers the no-click one); there the model conditions on a
click: the softmax runs over the displayed items alone.

Shapes use `D` for the padded display size; leading dimensions `...` are any batch shape.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

# Logit given to padded slots and to an absent no-click option. Finite, so that masked
# softmaxes and their gradients never produce NaN, and low enough that exp() underflows to 0.
MASKED_LOGIT = -1e9


def choice_logits(
    utilities: tf.Tensor, display_mask: tf.Tensor, no_click_logit: tf.Tensor | None
) -> tf.Tensor:
    """Logits of the choice over a display set plus the no-click option.

    Args:
      utilities: `[..., D]` utilities of the displayed items.
      display_mask: `[..., D]` bool, True on real items.
      no_click_logit: scalar (or broadcastable to `[...]`) utility of clicking nothing, or None
        when the model conditions on a click.

    Returns:
      `[..., D + 1]` logits; column D is the no-click option (MASKED_LOGIT when None).
    """
    item_logits = tf.where(display_mask, utilities, tf.cast(MASKED_LOGIT, utilities.dtype))
    if no_click_logit is None:
        no_click = tf.fill(tf.shape(utilities)[:-1], tf.cast(MASKED_LOGIT, utilities.dtype))
    else:
        no_click = tf.broadcast_to(
            tf.cast(no_click_logit, utilities.dtype), tf.shape(utilities)[:-1]
        )
    return tf.concat([item_logits, no_click[..., None]], axis=-1)


def choice_target(clicked_pos: tf.Tensor, display_size: int | tf.Tensor) -> tf.Tensor:
    """Index of the chosen option in `choice_logits`: the click position, or D for no click.

    Args:
      clicked_pos: `[...]` int, -1 for no click.
      display_size: D.
    """
    return tf.where(clicked_pos >= 0, clicked_pos, display_size)


class LossInfo(NamedTuple):
    """Summed loss and the number of events it covers (mean = loss / events)."""

    loss: tf.Tensor
    events: tf.Tensor


def entropy_regularised_loss(
    logits: tf.Tensor, clicked_pos: tf.Tensor, event_mask: tf.Tensor
) -> LossInfo:
    """Negative log-likelihood of the observed choices, summed over real events.

    With a Shannon-entropy regulariser the user's optimal policy is the softmax of the
    utilities, so the min-max problem of the paper (Section 4, its closed form) reduces to
    maximum likelihood of the observed clicks under that softmax.

    Args:
      logits: `[..., D + 1]` from `choice_logits`.
      clicked_pos: `[...]` int click positions, -1 for no click.
      event_mask: `[...]` bool, True on real events.
    """
    target = choice_target(clicked_pos, tf.shape(logits)[-1] - 1)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    mask = tf.cast(event_mask, logits.dtype)
    return LossInfo(tf.reduce_sum(nll * mask), tf.reduce_sum(mask))


def option_mask(display_mask: tf.Tensor, has_no_click: bool) -> tf.Tensor:
    """`[..., D + 1]` bool: which options of `choice_logits` exist."""
    no_click = tf.fill(tf.shape(display_mask)[:-1], has_no_click)
    return tf.concat([display_mask, no_click[..., None]], axis=-1)


def l2_behaviour_objective(
    phi: tf.Tensor, rewards: tf.Tensor, options: tf.Tensor, event_mask: tf.Tensor
) -> tf.Tensor:
    """The user's side of the L2-regularised min-max, to be maximised over phi.

    sum_t [ sum_a phi_t(a) r_t(a) - 1/2 sum_a phi_t(a)^2 ]: the expected reward of the
    behaviour distribution minus half its squared L2 norm (a regulariser on the distribution,
    not weight decay). Its maximiser over the simplex is sparsemax(r).

    Args:
      phi: `[..., D + 1]` choice probabilities of the behaviour network (0 on absent options).
      rewards: `[..., D + 1]` rewards of each option (no-click reward 0), treated as constants.
      options: `[..., D + 1]` bool, which options exist.
      event_mask: `[...]` bool.
    """
    phi = tf.where(options, phi, 0.0)
    rewards = tf.where(options, rewards, 0.0)
    per_event = tf.reduce_sum(phi * rewards, -1) - 0.5 * tf.reduce_sum(tf.square(phi), -1)
    return tf.reduce_sum(per_event * tf.cast(event_mask, phi.dtype))


def l2_reward_objective(
    phi: tf.Tensor,
    rewards: tf.Tensor,
    options: tf.Tensor,
    clicked_pos: tf.Tensor,
    event_mask: tf.Tensor,
) -> tf.Tensor:
    """The reward's side of the min-max, to be minimised over r with phi held fixed.

    sum_t [ sum_a phi_t(a) r_t(a) - r_t(a_t^true) ]: the reward of the user model's behaviour
    minus the reward of the real clicks (the regulariser term does not depend on r).

    Args:
      phi: `[..., D + 1]` behaviour probabilities, treated as constants.
      rewards: `[..., D + 1]` rewards of each option (no-click reward 0).
      options: `[..., D + 1]` bool.
      clicked_pos: `[...]` click positions, -1 for no click.
      event_mask: `[...]` bool.
    """
    rewards = tf.where(options, rewards, 0.0)
    expected = tf.reduce_sum(tf.where(options, phi, 0.0) * rewards, -1)
    target = choice_target(clicked_pos, tf.shape(rewards)[-1] - 1)
    real = tf.gather(rewards, target, batch_dims=len(target.shape))
    return tf.reduce_sum((expected - real) * tf.cast(event_mask, rewards.dtype))


def sparsemax(logits: tf.Tensor, options: tf.Tensor) -> tf.Tensor:
    """Euclidean projection of `logits` onto the simplex over the existing `options`.

    The exact maximiser of the L2-regularised user objective; used to check the behaviour
    network, not for training.

    Args:
      logits: `[..., K]`.
      options: `[..., K]` bool.
    """
    z = tf.where(options, logits, tf.cast(MASKED_LOGIT, logits.dtype))
    z_sorted = tf.sort(z, direction="DESCENDING", axis=-1)
    k = tf.range(1, tf.shape(z)[-1] + 1, dtype=z.dtype)
    cumsum = tf.cumsum(z_sorted, axis=-1)
    support = (1.0 + k * z_sorted > cumsum) & (z_sorted > MASKED_LOGIT / 2)
    k_z = tf.reduce_sum(tf.cast(support, z.dtype), axis=-1, keepdims=True)
    tau = (tf.gather(cumsum, tf.cast(k_z, tf.int32) - 1, batch_dims=len(z.shape) - 1) - 1.0) / k_z
    return tf.where(options, tf.maximum(z - tau, 0.0), 0.0)
