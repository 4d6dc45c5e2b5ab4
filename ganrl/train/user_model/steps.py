"""The training steps: entropy-regularised MLE, the L2 adversarial min-max, and the window
function that runs many steps in one `tf.function` call under any distribution strategy."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from ganrl.train.user_model.batching import BATCH_KEYS, batch_signature, trim_padding
from ganrl.user_model import choice
from ganrl.user_model.model import UserModel

keras = tf.keras


def _apply(
    tape: tf.GradientTape,
    loss: tf.Tensor,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
) -> None:
    grads = tape.gradient(loss, model.trainable_variables)
    # A variable the loss does not reach (the reward's taste-mixture layers in the adversarial
    # step, which reads its utilities alone) is left out rather than warned about.
    # Under a tf.distribute strategy the optimiser sums the replicas' gradients.
    optimizer.apply_gradients(
        [(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None]
    )


def make_entropy_step(
    model: UserModel, optimizer: keras.optimizers.Optimizer, num_replicas: int = 1
) -> Callable:
    """An MLE step (to be traced in a replica context).

    `step(batch, global_events)` returns this replica's share of the global batch's mean NLL:
    its summed NLL divided by the events of the whole global batch, so that the gradients
    the strategy sums over replicas are those of the global mean.
    """

    def step(batch, global_events):
        with tf.GradientTape() as tape:
            logits = model(batch, training=True)
            info = choice.entropy_regularised_loss(
                logits, batch["clicked_pos"], batch["event_mask"]
            )
            loss = info.loss / global_events
            objective = loss + model.regularization_loss() / num_replicas
        _apply(tape, objective, model, optimizer)
        return loss

    return step


def make_l2_step(
    reward: UserModel,
    behavior: UserModel,
    reward_opt: keras.optimizers.Optimizer,
    behavior_opt: keras.optimizers.Optimizer,
    num_replicas: int = 1,
) -> Callable:
    """An adversarial step (to be traced in a replica context): one update of phi (max), then
    one of r (min). Returns this replica's share of the behaviour network's mean NLL (the loss
    the run reports); objectives are normalised by the global batch's events."""

    def option_rewards(batch, training):
        # Training users: their own events leave the item statistics, with or without dropout.
        u = reward.event_utilities(batch, training=training, leave_user_out=True)
        # Measured from the reward's no-click utility, which this step trains, as the MLE
        # path's choice does and the simulator's learned reward pays; the no-click reward is 0.
        r = reward.relative_to_no_click(u)
        return tf.concat([r, tf.zeros_like(r[..., :1])], axis=-1)

    def step(batch, global_events):
        options = choice.option_mask(batch["display_mask"], behavior.has_no_click)
        rewards = tf.stop_gradient(option_rewards(batch, False))
        with tf.GradientTape() as tape:
            logits = behavior(batch, training=True)
            phi = tf.nn.softmax(logits)
            gain = choice.l2_behaviour_objective(phi, rewards, options, batch["event_mask"])
            behavior_loss = -gain / global_events + behavior.regularization_loss() / num_replicas
        _apply(tape, behavior_loss, behavior, behavior_opt)

        phi = tf.stop_gradient(tf.nn.softmax(behavior(batch, training=False, leave_user_out=True)))
        with tf.GradientTape() as tape:
            gap = choice.l2_reward_objective(
                phi, option_rewards(batch, True), options, batch["clicked_pos"], batch["event_mask"]
            )
            reward_loss = gap / global_events + reward.regularization_loss() / num_replicas
        _apply(tape, reward_loss, reward, reward_opt)
        nll = choice.entropy_regularised_loss(logits, batch["clicked_pos"], batch["event_mask"])
        return nll.loss / global_events

    return step


def make_window_fn(
    step: Callable, strategy: tf.distribute.Strategy, max_display: int | None = None
) -> Callable:
    """Runs K training steps in one `tf.function` call.

    One call per evaluation window instead of one per iteration: on small batches the
    per-call overhead, not the maths, bounds the speed. `run_window(batches, global_events)`
    takes per-replica `[K, ...]` stacked batches (from
    `strategy.experimental_distribute_values_from_function`) and the `[K]` event counts of
    the global batches, and returns the `[K]` global batch losses.

    Without a distribution strategy (and given `max_display`) it is traced once, for windows
    of any K, N, B and C; otherwise the second window shape retraces it with relaxed shapes
    (`reduce_retracing`), a second trace of about a second.
    """
    signature = None
    if (
        max_display is not None
        and strategy is tf.distribute.get_strategy()
        and not tf.distribute.has_strategy()
    ):
        spec = batch_signature(max_display)
        signature = [
            {k: tf.TensorSpec([None, *spec[k].shape], spec[k].dtype) for k in BATCH_KEYS},
            tf.TensorSpec([None], tf.float32),
        ]

    @tf.function(reduce_retracing=True, input_signature=signature)
    def run_window(batches, global_events):
        k = tf.shape(global_events)[0]
        losses = tf.TensorArray(tf.float32, size=k)
        for i in tf.range(k):
            per_replica = strategy.run(
                lambda b, e: step(trim_padding({key: v[i] for key, v in b.items()}), e),
                args=(batches, global_events[i]),
            )
            losses = losses.write(i, strategy.reduce("SUM", per_replica, axis=None))
        return losses.stack()

    return run_window
