"""EventArrays: padding, flat batches and the memory-mapped form."""

import os

import numpy as np
import pytest
import tensorflow as tf

from ganrl.data.dataset import (
    DataError,
    EventArrays,
    SplitData,
    load_run_data,
    load_split_data,
    save_dataset,
    save_event_splits,
)
from tests.tiny_data import tiny_dataset

BEHAVIOR = [[0, [[1, 2], [3, 4, 5], [1, 3]], [2, -1, 3]], [1, [[0], [4, 5]], [0, 5]]]


def test_flat_batch_by_hand():
    events = EventArrays.from_behavior(BEHAVIOR, None, 4, 6)
    batch = events.flat_batch(np.array([1, 0]))
    # User 1 first (2 events), then user 0 (3 events).
    assert batch["event_user"].tolist() == [0, 0, 1, 1, 1]
    assert batch["clicked_pos"].tolist() == [0, 1, 1, -1, 1]
    # Clicks before each event, counted within its user; user 0's no-click adds none.
    assert batch["clicks_before"].tolist() == [0, 1, 0, 1, 1]
    assert batch["click_items"].tolist() == [[0, 5], [2, 3]]
    assert batch["display_mask"].sum(axis=1).tolist() == [1, 2, 2, 3, 2]
    # Keeping only each user's last event restarts the click count there.
    assert events.flat_batch(np.array([1, 0]), max_events=1)["clicks_before"].tolist() == [0, 0]


def test_memory_mapped_round_trip_and_preferred_by_the_loader(tmp_path):
    dataset = tiny_dataset()
    save_dataset(str(tmp_path), dataset)
    data = SplitData.from_dataset(dataset)
    save_event_splits(str(tmp_path), data)
    loaded = load_split_data(str(tmp_path), "tiny")
    assert isinstance(loaded.splits["train"].display, np.memmap)
    for split in ("train", "vali", "test"):
        for field in EventArrays.ARRAY_FIELDS:
            np.testing.assert_array_equal(
                getattr(loaded.splits[split], field), getattr(data.splits[split], field)
            )
    rows = np.array([2, 0])
    for key, value in data.splits["train"].flat_batch(rows).items():
        np.testing.assert_array_equal(loaded.splits["train"].flat_batch(rows)[key], value)


def _write_prepared(folder, dataset) -> None:
    """The pickles, then the events folder built from them (as `prepare` writes them)."""
    save_dataset(str(folder), dataset)
    save_event_splits(str(folder), SplitData.from_dataset(dataset))


def _train_users(folder) -> list:
    return load_split_data(str(folder), "tiny").splits["train"].user_ids.tolist()


def test_events_folder_built_from_other_pickles_is_rebuilt(tmp_path):
    # Dataset A (24 users: train 0..11) prepared in `data`; dataset B of the same name (40
    # users: train 0..19) elsewhere, whose pickles then overwrite A's.
    data, other = tmp_path / "data", tmp_path / "other"
    _write_prepared(data, tiny_dataset(n_users=24))
    _write_prepared(other, tiny_dataset(n_users=40, seed=1))
    assert _train_users(data) == list(range(12))
    for file_name in ("tiny.pkl", "tiny-split.pkl"):
        (data / file_name).write_bytes((other / file_name).read_bytes())
    # B's events, not A's stale ones; rebuilt once, with nothing left beside it.
    assert _train_users(data) == list(range(20))
    before = (data / "tiny-events" / "sources.json").stat().st_mtime_ns
    assert _train_users(data) == list(range(20))
    assert (data / "tiny-events" / "sources.json").stat().st_mtime_ns == before
    assert sorted(os.listdir(data)) == ["tiny-events", "tiny-split.pkl", "tiny.pkl"]


def test_events_folder_of_a_truncated_pickle_is_not_read(tmp_path):
    _write_prepared(tmp_path, tiny_dataset())
    events = sorted(os.listdir(tmp_path / "tiny-events"))
    with open(tmp_path / "tiny.pkl", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DataError, match=r"tiny.pkl: .*not a valid pickle"):
        load_split_data(str(tmp_path), "tiny")
    # The old folder stays as it was, and no temporary folder is left.
    assert sorted(os.listdir(tmp_path / "tiny-events")) == events
    assert sorted(os.listdir(tmp_path)) == ["tiny-events", "tiny-split.pkl", "tiny.pkl"]


def test_truncated_event_array_is_reported(tmp_path):
    data = SplitData.from_dataset(tiny_dataset())
    save_event_splits(str(tmp_path), data)
    np.save(tmp_path / "tiny-events" / "train" / "clicked_pos.npy", np.zeros(3, np.int32))
    with pytest.raises(DataError, match="clicked_pos.npy: 3 rows, expected"):
        load_split_data(str(tmp_path), "tiny")


def test_training_windows_by_hand_and_through_tf_data():
    from ganrl.train.user_model import (
        batch_rows,
        evaluation_schedule,
        replica_windows,
        window_bounds,
        window_dataset,
    )

    # Evaluations every 3 iterations, at most 2 iterations a call, 7 iterations from 0.
    assert window_bounds(0, 7, 3, 2) == [(0, 2), (2, 3), (3, 5), (5, 6), (6, 7)]
    assert window_bounds(4, 7, 3, 2) == [(4, 6), (6, 7)]  # resuming at 4
    # The same calls, grouped by the evaluation after them (at 3, 6 and the end, 7).
    assert evaluation_schedule(0, 7, 3, 2) == [[(0, 2), (2, 3)], [(3, 5), (5, 6)], [(6, 7)]]
    assert evaluation_schedule(4, 7, 3, 2) == [[(4, 6)], [(6, 7)]]
    train = SplitData.from_dataset(tiny_dataset()).splits["train"]
    bounds = window_bounds(0, 4, 2, 2)
    windows = list(window_dataset(train, bounds, 3, 7, 2, None))
    assert len(windows) == len(bounds)
    for (first, last), (stacked, counts) in zip(bounds, windows):
        rows = [batch_rows(train.n_users, 3, 7, i) for i in range(first, last)]
        expected, expected_counts = replica_windows(train, rows, 2, None)
        np.testing.assert_array_equal(counts.numpy(), expected_counts)
        for key, value in expected.items():
            np.testing.assert_array_equal(stacked[key].numpy(), value)


def test_trim_padding_recovers_each_batch_of_a_window():
    from ganrl.train.user_model import stack_batches, trim_padding

    train = SplitData.from_dataset(tiny_dataset()).splits["train"]
    # Batches of different sizes: stacking pads the smaller ones with masked events and
    # empty click columns, which trimming must drop again, exactly.
    batches = [
        train.flat_batch(np.array([0]), max_events=2),
        train.flat_batch(np.arange(train.n_users)),
    ]
    assert len(batches[0]["clicked_pos"]) < len(batches[1]["clicked_pos"])
    assert batches[0]["click_items"].shape[1] < batches[1]["click_items"].shape[1]
    stacked = stack_batches(batches)
    for i, batch in enumerate(batches):
        trimmed = trim_padding({k: tf.constant(v[i]) for k, v in stacked.items()})
        for key in (
            "display",
            "display_mask",
            "clicked_pos",
            "event_mask",
            "event_user",
            "clicks_before",
        ):
            np.testing.assert_array_equal(trimmed[key].numpy(), batch[key], err_msg=key)
        # Rows stay padded to the window's users (empty), columns are the batch's own.
        users = len(batch["click_items"])
        for key in ("click_items", "click_mask"):
            np.testing.assert_array_equal(trimmed[key].numpy()[:users], batch[key], err_msg=key)
            assert not trimmed["click_mask"].numpy()[users:].any()


def test_training_share_keeps_a_seeded_subset_of_the_training_users_only(tmp_path):
    data = SplitData.from_dataset(tiny_dataset(n_users=40))
    train = data.splits["train"]
    half = data.with_training_share(0.5, seed=3)
    kept = half.splits["train"]
    assert kept.n_users == round(0.5 * train.n_users)
    ids = kept.user_ids.tolist()
    assert len(set(ids)) == len(ids) and set(ids) <= set(train.user_ids.tolist())
    assert ids == [u for u in train.user_ids.tolist() if u in set(ids)]  # their order kept
    # Each kept user keeps every one of her events.
    for u in ids[:3]:
        row, old = ids.index(u), train.user_ids.tolist().index(u)
        got = kept.clicked_pos[kept.event_offsets[row] : kept.event_offsets[row + 1]]
        want = train.clicked_pos[train.event_offsets[old] : train.event_offsets[old + 1]]
        np.testing.assert_array_equal(got, want)
    for split in ("vali", "test"):
        assert half.splits[split] is data.splits[split]
    assert data.with_training_share(0.5, seed=3).splits["train"].user_ids.tolist() == ids
    assert data.with_training_share(0.5, seed=4).splits["train"].user_ids.tolist() != ids
    assert data.with_training_share(1.0, seed=3) is data
    assert data.with_training_share(1e-6, seed=3).splits["train"].n_users == 1
    with pytest.raises(ValueError, match="train_share=0"):
        data.with_training_share(0.0, seed=3)


def test_load_run_data_reads_a_runs_training_share(tmp_path):
    save_dataset(str(tmp_path), tiny_dataset(n_users=40))
    config = {"data_folder": str(tmp_path), "dataset": "tiny", "seed": 5}
    full = load_run_data(config)
    share = load_run_data({**config, "train_share": 0.25})
    assert share.splits["train"].user_ids.tolist() == (
        full.with_training_share(0.25, 5).splits["train"].user_ids.tolist()
    )
    assert share.splits["vali"].user_ids.tolist() == full.splits["vali"].user_ids.tolist()
    resplit = load_run_data({**config, "resplit": True, "train_share": 0.5})
    assert resplit.splits["train"].n_users == round(
        0.5 * load_run_data({**config, "resplit": True}).splits["train"].n_users
    )
