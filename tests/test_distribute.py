"""The user-model trainer under tf.distribute strategies (each job in its own process)."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.tiny_data import write_tiny_dataset

JOB = os.path.join(os.path.dirname(__file__), "distributed_job.py")
TIMEOUT = 300


def _run(args, env=None):
    return subprocess.run(
        [sys.executable, JOB, *map(str, args)],
        env=env,
        timeout=TIMEOUT,
        capture_output=True,
        text=True,
    )


def _losses(run_dir):
    with open(os.path.join(run_dir, "curves.csv")) as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)][1:]


def _weights(path):
    with np.load(path) as z:
        return [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
    write_tiny_dataset(tmp_path / "data", n_users=32)
    one = _run(["default", 0, tmp_path / "data", tmp_path / "one", tmp_path / "one.npz"])
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(["mirrored", 2, tmp_path / "data", tmp_path / "two", tmp_path / "two.npz"])
    assert two.returncode == 0, two.stderr[-3000:]
    # The same global batches, split over two replicas: the same losses and weights.
    np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-4)
    for a, b in zip(_weights(tmp_path / "one.npz"), _weights(tmp_path / "two.npz")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _worker_env(workers, index):
    return dict(
        os.environ,
        TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        ),
    )


@pytest.mark.slow
def test_two_workers_on_localhost_end_with_the_same_weights(tmp_path):
    write_tiny_dataset(tmp_path / "data", n_users=32)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    _finish(
        [
            subprocess.Popen(
                [
                    sys.executable,
                    JOB,
                    "multi_worker",
                    "0",
                    str(tmp_path / "data"),
                    str(tmp_path / "run"),
                    str(tmp_path / f"w{index}.npz"),
                ],
                env=_worker_env(workers, index),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for index in range(2)
        ]
    )
    for a, b in zip(_weights(tmp_path / "w0.npz"), _weights(tmp_path / "w1.npz")):
        np.testing.assert_array_equal(a, b)
    # Only the chief (worker 0) wrote the run folder; it is complete.
    assert (tmp_path / "run" / "results.json").exists()
    assert len(_losses(tmp_path / "run")) == 2


CDQN_JOB = os.path.join(os.path.dirname(__file__), "distributed_cdqn_job.py")


def _cdqn(strategy, cpu_replicas, out, env=None):
    return subprocess.Popen(
        [sys.executable, CDQN_JOB, strategy, str(cpu_replicas), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs):
    try:
        outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]


def _arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_cdqn_mirrored_over_two_cpus_matches_one_device(tmp_path):
    _finish([_cdqn("default", 0, tmp_path / "one.npz"), _cdqn("mirrored", 2, tmp_path / "two.npz")])
    one, two = _arrays(tmp_path / "one.npz"), _arrays(tmp_path / "two.npz")
    assert one.keys() == two.keys() and len(one) > 1
    for key in one:  # the losses, then every weight of the Q-network
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_cdqn_two_workers_on_localhost_end_with_the_same_weights(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = [
        _cdqn("multi_worker", 0, tmp_path / f"w{index}.npz", _worker_env(workers, index))
        for index in range(2)
    ]
    _finish(procs + [_cdqn("default", 0, tmp_path / "one.npz")])
    w0, w1 = _arrays(tmp_path / "w0.npz"), _arrays(tmp_path / "w1.npz")
    one = _arrays(tmp_path / "one.npz")
    for key in w0:
        np.testing.assert_array_equal(w0[key], w1[key])
        # Gradients were summed across the workers: the updates of one device on the whole
        # minibatch (a worker alone would have seen half of it).
        np.testing.assert_allclose(w0[key], one[key], rtol=1e-4, atol=1e-6)
