"""Data pipeline: readers on tiny hand-made files, the released files' exact statistics, bad
input (clear errors, non-zero exit, no partial output) and safe unpickling."""

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from ganrl.data import safe_io
from ganrl.data.dataset import DataError, load_dataset, save_dataset
from ganrl.data.movielens import read_ml100k
from ganrl.data.csv_logs import parse_column_mapping, read_csv_logs
from ganrl.data.released import read_released
from ganrl.data.retailrocket import read_retailrocket
from ganrl.data.synthetic import SyntheticConfig, make_synthetic
from tests.tiny_data import tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASED = os.path.join(os.path.dirname(ROOT), "shared", "data", "released")
HEADER = "SessionId\tTime\tItemId\tis_click\traw_index\tsession_new_index\titem_new_index\ttr_val_tst\n"


def write_released(path, rows):
    with open(path, "w") as f:
        f.write(HEADER)
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")


# user, time, item, click, split -> a released-format row
def row(user, time, item, click, split=0):
    return ("s", time, "i", click, 0, user, item, split)


TINY_ROWS = [row(0, 0, 0, 0), row(0, 0, 1, 1), row(0, 0, 1, 1),  # duplicate row
             row(0, 1, 2, 0), row(0, 1, 2, 1), row(0, 1, 3, 0),  # item 2 twice: keep click
             row(1, 2, 3, 0, 2), row(1, 2, 4, 0, 2)]             # no click


def test_released_reader_by_hand(tmp_path):
    write_released(tmp_path / "t.txt", TINY_ROWS)
    c = read_released(str(tmp_path / "t.txt"), "t", seed=0)
    s = c.stats
    assert (s["rows"], s["rows_kept"], s["users"], s["items"], s["events"]) == (8, 6, 2, 5, 3)
    assert (s["clicks"], s["no_clicks"]) == (2, 1)
    assert s["display_size"] == {"mean": 2.0, "min": 2, "max": 2}
    assert s["split"] == {"train": 1, "vali": 0, "test": 1}
    user0, user1 = c.dataset.behavior
    assert [sorted(d) for d in user0[1]] == [[0, 1], [2, 3]] and user0[2] == [1, 2]
    assert sorted(user1[1][0]) == [3, 4] and user1[2] == [-1]


def test_display_sets_are_shuffled_with_the_seed(tmp_path):
    # The click is always the last row; after shuffling it is not always last.
    rows = [row(u, u, i, int(i == 5)) for u in range(40) for i in range(6)]
    write_released(tmp_path / "t.txt", rows)
    a = read_released(str(tmp_path / "t.txt"), "t", seed=0)
    b = read_released(str(tmp_path / "t.txt"), "t", seed=0)
    assert a.dataset.behavior == b.dataset.behavior
    last = [d[-1] == c for _, ds, cs in a.dataset.behavior for d, c in zip(ds, cs)]
    assert 0 < sum(last) < len(last)
    positions = a.events.clicked_pos
    assert len(set(positions.tolist())) > 3


@pytest.mark.skipif(not os.path.isdir(RELEASED), reason="released files not at hand")
@pytest.mark.parametrize("name,expected", [
    ("yelp", (6756, 6676, 1406, 804, 1725, 3.87, 1, 10, 293, (703, 351, 352))),
    ("tb", (12824, 10869, 1369, 4042, 2042, 5.32, 1, 10, 226, (685, 341, 343))),
    ("rsc", (14624, 6624, 1082, 890, 2063, 3.21, 1, 10, 505, (541, 270, 271))),
])
def test_released_files_match_the_published_statistics(name, expected):
    s = read_released(os.path.join(RELEASED, name + ".txt"), name, seed=0).stats
    got = (s["rows"], s["rows_kept"], s["users"], s["items"], s["events"],
           round(s["display_size"]["mean"], 2), s["display_size"]["min"],
           s["display_size"]["max"], s["single_item_sets"],
           (s["split"]["train"], s["split"]["vali"], s["split"]["test"]))
    assert got == expected
    assert s["clicks"] == s["events"] and s["no_clicks"] == 0


def test_generic_csv_reader_with_column_mapping(tmp_path):
    (tmp_path / "logs.csv").write_text(
        "who,when,what,clicked\nann,5,x,0\nann,5,y,1\nbob,1,y,0\nbob,1,z,0\nann,9,z,1\n")
    c = read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0,
                      parse_column_mapping("user=who,time=when,item=what,click=clicked"))
    assert c.stats["users"] == 2 and c.stats["items"] == 3 and c.stats["events"] == 3
    ann = c.dataset.behavior[0]  # 'ann' sorts first; items x=0, y=1, z=2
    assert ann[2] == [1, 2] and sorted(ann[1][0]) == [0, 1]


def test_movielens_conversion_from_a_tiny_u_data(tmp_path):
    lines = []
    for user in range(1, 7):
        for t, item in enumerate(range(1, 5)):
            lines.append(f"{user}\t{item + user % 3}\t{5 if t % 2 == 0 else 2}\t{1000 + t}")
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    c = read_ml100k(str(tmp_path / "u.data"), "ml", seed=1, max_display=3)
    s = c.stats
    assert s["rows"] == 24 and s["events"] == 24 and s["display_size"]["min"] == 3
    assert s["clicks"] == 12 and s["no_clicks"] == 12  # ratings 5 click, ratings 2 do not
    assert s["split"] == {"train": 3, "vali": 1, "test": 2}
    for _, displays, clicks in c.dataset.behavior:
        for d in displays:
            assert len(set(d)) == 3  # distinct items


def test_retailrocket_sessions_clicks_and_no_clicks(tmp_path):
    (tmp_path / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1000,7,view,100,\n2000,7,view,101,\n3000,7,addtocart,101,\n4000,7,transaction,101,5\n"
        "5000,7,view,102,\n9000000,7,view,103,\n1000,8,view,100,\n1500,8,view,100,\n")
    c = read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0)
    # Visitor 7: {100, 101} then click 101 (the transaction repeats it); {102} no click;
    # a new session after the gap: {103} no click. Visitor 8: {100} no click.
    assert c.stats["events"] == 4 and c.stats["clicks"] == 1
    visitor7 = c.dataset.behavior[0]
    assert [sorted(d) for d in visitor7[1]] == [[0, 1], [2], [3]]
    assert visitor7[2] == [1, -1, -1]


def test_synthetic_truth_lies_between_chance_and_oracle(tmp_path):
    c, truth = make_synthetic(str(tmp_path), "synthetic", seed=0, config=SyntheticConfig(
        users=120, items=50, events_per_user=6, posterior_samples=500))
    for split in ("train", "test"):
        chance = truth[f"{split}_chance_prec1"]
        bayes = truth[f"{split}_bayes_prec1"]
        oracle = truth[f"{split}_oracle_prec1"]
        assert chance < bayes <= oracle + 0.05
    assert truth["true_prob"].shape == c.events.display.shape
    np.testing.assert_allclose(truth["true_prob"].sum(axis=1) <= 1 + 1e-9, True)


# -- bad input ------------------------------------------------------------------------------

def _process(tmp_path, *args):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run([os.path.join(ROOT, "process_data.sh"), "--data_folder",
                           str(tmp_path), *args], capture_output=True, text=True, env=env)


def _outputs(tmp_path, name):
    return [f for f in os.listdir(tmp_path) if f.startswith(name) and not f.endswith(".txt")]


@pytest.mark.parametrize("content,message", [
    (HEADER.replace("\tis_click", "") + "s\t0\ti\t0\t0\t0\t0\n", "missing column 'is_click'"),
    (HEADER + "s\t0\ti\t1\t0\tabc\t0\t0\n", "line 2, field 'session_new_index': expected an integer"),
    (HEADER + "s\t0\ti\t1\t0\t0\t0\t0\ns\t0\ti\t1\t1\t0\t1\t0\n", "lines [2, 3]"),
    ("", "empty file"),
])
def test_bad_released_file_exits_non_zero_and_writes_nothing(tmp_path, content, message):
    (tmp_path / "bad.txt").write_text(content)
    proc = _process(tmp_path, "--dataset", "bad")
    assert proc.returncode != 0
    assert "bad.txt" in proc.stderr and message in proc.stderr
    assert _outputs(tmp_path, "bad") == []
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_missing_path_is_named(tmp_path):
    proc = _process(tmp_path, "--dataset", "ghost")
    assert proc.returncode != 0 and "ghost.txt: no such file" in proc.stderr


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    dataset = tiny_dataset()
    save_dataset(str(tmp_path), dataset)
    with open(tmp_path / "tiny.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(safe_io.UnsafePickleError, match=r"tiny.pkl: refused to load global"):
        load_dataset(str(tmp_path), "tiny")


def test_truncated_pickle_is_reported(tmp_path):
    save_dataset(str(tmp_path), tiny_dataset())
    data = (tmp_path / "tiny.pkl").read_bytes()
    (tmp_path / "tiny.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"tiny.pkl: (truncated pickle|object 1 of 2)"):
        load_dataset(str(tmp_path), "tiny")


def test_split_naming_an_unknown_user_is_reported(tmp_path):
    dataset = tiny_dataset()
    dataset.split = (dataset.split[0] + [999], dataset.split[1], dataset.split[2])
    save_dataset(str(tmp_path), dataset)
    with pytest.raises(DataError, match=r"tiny-split.pkl: train list, entry \d+: user 999"):
        load_dataset(str(tmp_path), "tiny")


def test_dataset_round_trip_with_compact_features(tmp_path):
    dataset = tiny_dataset(n_items=1500)
    save_dataset(str(tmp_path), dataset)
    with open(tmp_path / "tiny.pkl", "rb") as f:
        behavior, features = safe_io.SafeUnpickler(f).load(), safe_io.SafeUnpickler(f).load()
    assert isinstance(features, dict) and features["n_items"] == 1500  # no dense one-hot
    loaded = load_dataset(str(tmp_path), "tiny")
    assert loaded.behavior == dataset.behavior and loaded.split == dataset.split
