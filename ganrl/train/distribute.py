"""Choosing a `tf.distribute` strategy by name (the `--distribution` flag of the trainers).

- `default`: one device (TensorFlow's default strategy).
- `mirrored`: `MirroredStrategy`, synchronous data parallelism over the GPUs of one host (or,
  with `cpu_replicas` > 1, over that many logical CPU devices: for tests on CPU-only machines).
- `multi_worker`: `MultiWorkerMirroredStrategy` over the hosts named in the `TF_CONFIG`
  environment variable, one process per host (see docs/scale.md for a two-worker launch).
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str, cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """Builds strategy `name`; must run before TensorFlow touches any device."""
    if name not in STRATEGIES:
        raise ValueError(f"distribution={name!r}: expected one of {STRATEGIES}")
    if cpu_replicas > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if cpu_replicas > 1:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.MultiWorkerMirroredStrategy()
