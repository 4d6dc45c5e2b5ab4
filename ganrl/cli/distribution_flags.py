"""The `tf.distribute` flags that the user-model and policy entry points share."""

from __future__ import annotations

import tensorflow as tf
from absl import flags

from ganrl.train.distribute import STRATEGIES, make_strategy

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "distribution",
    "default",
    list(STRATEGIES),
    "tf.distribute strategy: one device, the GPUs of this host, or the hosts of TF_CONFIG.",
)
flags.DEFINE_integer(
    "cpu_replicas",
    0,
    "With --distribution=mirrored on a machine without "
    "GPUs: split the CPU into this many logical devices (for testing).",
)


def strategy_from_flags() -> tf.distribute.Strategy:
    """The strategy of --distribution (call before anything touches a device)."""
    return make_strategy(FLAGS.distribution, FLAGS.cpu_replicas)
