"""A tiny user-model training job for the distribution tests (run as a subprocess, since
logical devices and TF_CONFIG must be set before TensorFlow starts).

usage: distributed_job.py STRATEGY CPU_REPLICAS DATA_FOLDER SAVE_DIR WEIGHTS_OUT
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ganrl.data.dataset import load_split_data  # noqa: E402
from ganrl.train.distribute import make_strategy  # noqa: E402
from ganrl.train.user_model import TrainConfig, UserModelRunner  # noqa: E402
from ganrl.user_model.model import ModelConfig  # noqa: E402


def main(strategy_name, cpu_replicas, data_folder, save_dir, weights_out):
    strategy = make_strategy(strategy_name, int(cpu_replicas))
    config = TrainConfig(
        dataset="tiny",
        data_folder=data_folder,
        save_dir=save_dir,
        learning_rate=0.05,
        batch_size=8,
        num_itrs=6,
        eval_every=3,
        seed=5,
        checkpoint_secs=0,
        model=ModelConfig(user_model="LSTM", dims="16-8", item_dim=8, rnn_hidden_dim=8),
    )
    runner = UserModelRunner(
        config, load_split_data(data_folder, "tiny"), strategy=strategy, progress=lambda line: None
    )
    runner.run()
    np.savez(weights_out, *[w.numpy() for w in runner.reward.weights])


if __name__ == "__main__":
    main(*sys.argv[1:])
