"""The runs of the paper's user-model table (`experiment_user_model/main_table.py`).

Methods: chance (the expected figures of a random ranking), the baselines of
`ganrl.user_model_baselines` and GAN-PW / GAN-LSTM after the Shannon-entropy pre-training
(`gan_pw`, `gan_lstm`) and after adversarial fine-tuning from that run (`gan_pw_l2`,
`gan_lstm_l2`; its entropy run is trained and recorded first when missing). Every GAN run
takes the settings of one base `TrainConfig` but those of `PER_RUN_SETTINGS`. Its
`train_share` and `max_events` cut the logs of every method alike (`TableRuns.table_data`,
`TableRuns.run_one`): each method of a seed sees the same training, validation and test events.

Output folder `out`:
  settings.json  the settings every run shares (the base config but its per-run settings, the
                 adversarial runs' length and learning rate): a rerun with others is refused,
                 so records made with other flags are never reused
  records.csv    one row per (method, dataset, seed): test prec@1 and prec@2; written after
                 each run, so a rerun reuses every finished record
  seconds.csv    the wall seconds of each run
  runs/          the GAN run folders `{dataset}__{PW|LSTM}__{entropy|L2}__{seed}` (a finished
                 one, with results.json, is read, never retrained)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from typing import Callable

import tensorflow as tf

from ganrl.data import safe_io
from ganrl.data.dataset import SplitData, load_split_data
from ganrl.reporting import tables as table
from ganrl.train.flat_settings import run_dir_name
from ganrl.train.run_folder import require_same_settings
from ganrl.train.user_model import RERUN_MAY_CHANGE, TrainConfig, UserModelRunner
from ganrl.user_model_baselines import PAPER_BASELINES, chance_summary, evaluate_scorer

# GAN method -> (encoder, regularizer).
GAN_METHODS = {
    "gan_pw": ("PW", "entropy"),
    "gan_lstm": ("LSTM", "entropy"),
    "gan_pw_l2": ("PW", "L2"),
    "gan_lstm_l2": ("LSTM", "L2"),
}
METHODS = ("chance", *PAPER_BASELINES, *GAN_METHODS)
LABELS = {
    "chance": "chance",
    "most_popular": "most popular",
    "iknn": "IKNN",
    "srnn": "S-RNN",
    "scknnc": "SCKNNC",
    "xgboost": "XGBOOST",
    "dfm": "DFM",
    "wd_lr": "W&D-LR",
    "wd_ccf": "W&D-CCF",
    **{m: f"GAN-{encoder} ({regularizer})" for m, (encoder, regularizer) in GAN_METHODS.items()},
}
# Settings of the base config that the table sets per run.
PER_RUN_SETTINGS = ("dataset", "seed", "user_model", "regularizer", "save_dir", "pretrain_dir")

Key = tuple[str, str, int]  # (method, dataset, seed)


def entropy_method(method: str) -> str:
    """The entropy pre-training an L2 GAN method starts from (`gan_pw_l2` -> `gan_pw`)."""
    return method.removesuffix("_l2")


def methods_to_run(methods: list[str]) -> list[str]:
    """`methods` plus the entropy runs their L2 methods start from, in `METHODS` order (so an
    entropy run precedes its fine-tuning)."""
    needed = set(methods) | {entropy_method(m) for m in methods if m in GAN_METHODS}
    return [m for m in METHODS if m in needed]


def load_seconds(path: str) -> dict[Key, float]:
    """`{(method, dataset, seed): wall seconds}` from `seconds.csv` (none when absent)."""
    if not os.path.exists(path):
        return {}
    rows = table.read_typed_csv(
        path, {"method": str, "dataset": str, "seed": int, "seconds": float}
    )
    return {(r["method"], r["dataset"], r["seed"]): r["seconds"] for r in rows}


def save_seconds(path: str, seconds: dict[Key, float]) -> None:
    with safe_io.atomic_open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("method", "dataset", "seed", "seconds"))
        writer.writerows((*key, value) for key, value in seconds.items())


@dataclasses.dataclass(frozen=True)
class TableRuns:
    """The table's runs into folder `out`.

    Attributes:
      out: the output folder (see the module docstring).
      base: the GAN runs' config (data_folder, resplit, train_share and max_events apply
        to every method).
      adv_itrs: iterations of the adversarial (L2) runs; the entropy runs take `base`'s.
      adv_learning_rate: learning rate of the adversarial runs.
    """

    out: str
    base: TrainConfig
    adv_itrs: int = 5000
    adv_learning_rate: float = 0.0001

    @property
    def records_path(self) -> str:
        return os.path.join(self.out, "records.csv")

    @property
    def seconds_path(self) -> str:
        return os.path.join(self.out, "seconds.csv")

    def shared_settings(self) -> dict:
        """What every run of the table shares (`settings.json`)."""
        base = {k: v for k, v in self.base.to_dict().items() if k not in PER_RUN_SETTINGS}
        base["model"] = {k: v for k, v in base["model"].items() if k not in PER_RUN_SETTINGS}
        settings = {
            "base": base,
            "adv_itrs": self.adv_itrs,
            "adv_learning_rate": self.adv_learning_rate,
        }
        if self.base.train_share < 1.0 or self.base.max_events:
            # Before it, the baselines of such a table had every event: its records are not
            # to be mixed with today's.
            settings["every_method_cut_alike"] = True
        return settings

    def claim_settings(self) -> None:
        """Writes `settings.json` in a new output folder; in one that has it, refuses other
        settings (`run_folder.RunFolderError`, naming them). A folder written before settings.json
        existed gets today's."""
        path = os.path.join(self.out, "settings.json")
        settings = self.shared_settings()
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            holder = f"{self.out}: holds a table made"
            require_same_settings(saved, settings, RERUN_MAY_CHANGE, holder, "--out")
            return
        safe_io.dump_json(path, settings)

    def run_dir(self, method: str, dataset: str, seed: int) -> str:
        encoder, regularizer = GAN_METHODS[method]
        return os.path.join(self.out, "runs", run_dir_name(dataset, encoder, regularizer, seed))

    def gan_config(self, method: str, dataset: str, seed: int) -> TrainConfig:
        """`base` for one GAN run; an L2 run starts from the entropy run of the same encoder
        and seed (as `run_gan_L2_regularized.sh`)."""
        encoder, regularizer = GAN_METHODS[method]
        adversarial = regularizer == "L2"
        base = self.base
        return dataclasses.replace(
            base,
            dataset=dataset,
            seed=seed,
            regularizer=regularizer,
            save_dir=self.run_dir(method, dataset, seed),
            pretrain_dir=(
                self.run_dir(entropy_method(method), dataset, seed) if adversarial else ""
            ),
            learning_rate=self.adv_learning_rate if adversarial else base.learning_rate,
            num_itrs=self.adv_itrs if adversarial else base.num_itrs,
            model=dataclasses.replace(base.model, user_model=encoder),
        )

    def table_data(self, dataset: str, resplit_seed: int | None) -> SplitData:
        """The logs every method of the table is given: the dataset's split (or the one
        drawn with `resplit_seed`), each user cut to her last `base.max_events` events. A GAN
        run with `max_events` trains and is tested on these events alone, so the other
        methods are fitted and tested on them too (and the GAN's item statistics are those
        of the same training events)."""
        data = load_split_data(self.base.data_folder, dataset, resplit_seed=resplit_seed)
        return data.with_recent_events(self.base.max_events)

    def run_one(
        self,
        method: str,
        dataset: str,
        seed: int,
        data: SplitData,
        strategy: tf.distribute.Strategy | None = None,
        progress: Callable[[str], None] = print,
    ) -> dict:
        """Test `{"prec1", "prec2"}` of one method on one dataset and seed.

        `data` is the dataset's split cut to `base.max_events` (`table_data`); a GAN run
        draws `base.train_share` of its training users itself, the other methods are given
        the same draw (same share, same seed), so every method sees the same events.
        """
        if method not in GAN_METHODS:
            data = data.with_training_share(self.base.train_share, seed)
        if method == "chance":
            return chance_summary(data.splits["test"])
        if method not in GAN_METHODS:
            return evaluate_scorer(method, data, seed)["test"]
        results_path = os.path.join(self.run_dir(method, dataset, seed), "results.json")
        if os.path.exists(results_path):
            progress(f"reusing the finished run {os.path.dirname(results_path)}")
            with open(results_path) as f:
                return json.load(f)["test"]
        config = self.gan_config(method, dataset, seed)
        return UserModelRunner(config, data, progress=lambda _: None, strategy=strategy).run()[
            "test"
        ]

    def run(
        self,
        datasets: list[str],
        seeds: list[int],
        methods: list[str],
        strategy: tf.distribute.Strategy | None = None,
        progress: Callable[[str], None] = print,
    ) -> tuple[list[table.Record], dict[Key, float], int]:
        """Runs every (dataset, seed, method) that has no record yet, saving the records and
        seconds after each; returns (every record, every run's seconds, runs reused)."""
        safe_io.make_folder(self.out, "--out")
        self.claim_settings()
        records = table.load_records(self.records_path)
        seconds = load_seconds(self.seconds_path)
        done = {(r.method, r.dataset, r.seed) for r in records}
        reused, data_cache = 0, {}
        for dataset in datasets:
            for seed in seeds:
                for method in methods:
                    if (method, dataset, seed) in done:
                        reused += 1
                        continue
                    key = (dataset, seed if self.base.resplit else None)
                    if key not in data_cache:  # loaded once, and only if something runs
                        data_cache = {key: self.table_data(dataset, key[1])}
                    start = time.perf_counter()
                    test = self.run_one(method, dataset, seed, data_cache[key], strategy, progress)
                    # A run folder finished earlier keeps the seconds it took then.
                    seconds.setdefault((method, dataset, seed), time.perf_counter() - start)
                    records.append(
                        table.Record(
                            method, dataset, seed, float(test["prec1"]), float(test["prec2"])
                        )
                    )
                    table.save_records(self.records_path, records)
                    save_seconds(self.seconds_path, seconds)
                    progress(
                        f"{dataset} seed {seed} {LABELS[method]}: test prec@1 "
                        f"{test['prec1']:.3f} prec@2 {test['prec2']:.3f} "
                        f"({seconds[(method, dataset, seed)]:.1f} s)"
                    )
        return records, seconds, reused
