"""Bad input: one test per case. Each error names the file and the line or field, the command
exits non-zero with one line on stderr, and no output (nor temporary file) is left."""

import os
import pickle

import pytest

from ganrl.data import safe_io
from ganrl.data.csv_logs import parse_column_mapping, read_csv_logs
from ganrl.data.dataset import DataError, load_dataset, save_dataset
from ganrl.data.movielens import find_ml100k, read_ml100k
from ganrl.data.retailrocket import read_retailrocket
from tests.data_helpers import RELEASED_HEADER, outputs, process_data
from tests.tiny_data import tiny_dataset


def _fails_cleanly(tmp_path, content, *message_parts):
    (tmp_path / "bad.txt").write_text(content)
    proc = process_data(tmp_path, "--dataset=bad")
    assert proc.returncode == 1
    error = proc.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    for part in (str(tmp_path / "bad.txt"),) + message_parts:
        assert part in error
    assert outputs(tmp_path, "bad") == []
    assert "bad: {" not in proc.stdout  # no statistics line


def test_missing_column(tmp_path):
    header = RELEASED_HEADER.replace("\tis_click", "")
    _fails_cleanly(tmp_path, header + "s\t0\ti\t0\t0\t0\t0\n", "missing column 'is_click'")


def test_non_integer_id(tmp_path):
    rows = "s\t0\ti\t1\t0\t0\t0\t0\ns\t1\ti\t1\t0\tabc\t0\t0\n"  # line 3, the user field
    _fails_cleanly(tmp_path, RELEASED_HEADER + rows,
                   "line 3, field 'session_new_index': expected an integer, got 'abc'")


def test_two_clicks_in_one_display_set(tmp_path):
    # Time 0 of user 0 shows items 0 and 1, both clicked: lines 2 and 3.
    rows = "s\t0\ti\t1\t0\t0\t0\t0\ns\t0\ti\t1\t1\t0\t1\t0\n"
    _fails_cleanly(tmp_path, RELEASED_HEADER + rows, "lines [2, 3]", "2 clicked rows")


def test_empty_file(tmp_path):
    _fails_cleanly(tmp_path, "", "empty file")


def test_missing_path(tmp_path):
    proc = process_data(tmp_path, "--dataset=ghost")
    assert proc.returncode == 1
    assert f"{tmp_path / 'ghost.txt'}: no such file" in proc.stderr
    assert outputs(tmp_path, "ghost") == []


def test_missing_ml100k_path_and_no_download(tmp_path):
    with pytest.raises(DataError, match=r"nowhere/u.data: no such file \(--ml100k_path\)"):
        find_ml100k(str(tmp_path), str(tmp_path / "nowhere" / "u.data"))
    with pytest.raises(DataError, match=r"no MovieLens 100k ratings"):
        find_ml100k(str(tmp_path), None, download=False)


def test_bad_movielens_rating_names_line_and_field(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n1\t20\tfive\t101\n")
    with pytest.raises(DataError, match=r"u.data: line 2, field 'rating': expected an integer"):
        read_ml100k(str(tmp_path / "u.data"), "ml", seed=0)


def test_bad_retailrocket_event_names_line_and_field(tmp_path):
    (tmp_path / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n"
                                         "1000,7,view,100,\n2000,7,purchase,100,\n")
    with pytest.raises(DataError, match=r"events.csv: line 3, field 'event': expected one of"):
        read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0)


def test_generic_csv_missing_mapped_column(tmp_path):
    (tmp_path / "logs.csv").write_text("who,when,what\nann,5,x\n")
    mapping = parse_column_mapping("user=who,time=when,item=what,click=clicked")
    with pytest.raises(DataError, match=r"logs.csv: missing column 'clicked'"):
        read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0, mapping)
    with pytest.raises(DataError, match=r"--columns: no column given for \['click'\]"):
        parse_column_mapping("user=who,time=when,item=what")


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    save_dataset(str(tmp_path), tiny_dataset())
    with open(tmp_path / "tiny.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(safe_io.UnsafePickleError,
                       match=r"tiny.pkl: refused to load global '(posix|os)\.system'"):
        load_dataset(str(tmp_path), "tiny")
    assert not (tmp_path / "pwned").exists()


def test_truncated_pickle(tmp_path):
    save_dataset(str(tmp_path), tiny_dataset())
    data = (tmp_path / "tiny.pkl").read_bytes()
    (tmp_path / "tiny.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"tiny.pkl: (truncated pickle|object 1 of 2)"):
        load_dataset(str(tmp_path), "tiny")


def test_split_naming_an_unknown_user(tmp_path):
    dataset = tiny_dataset()  # users 0..23; train holds users 0..11
    dataset.split = (dataset.split[0] + [999], dataset.split[1], dataset.split[2])
    save_dataset(str(tmp_path), dataset)
    with pytest.raises(DataError, match=r"tiny-split.pkl: train list, entry 12: user 999"):
        load_dataset(str(tmp_path), "tiny")


def test_curve_row_cut_short_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "curves.csv"
    path.write_text("iteration,phase,train_loss\n0,mle,nan\n2,mle,0.5\n4,ml")
    assert safe_io.read_csv_rows(path) == [{"iteration": "0", "phase": "mle", "train_loss": "nan"},
                                           {"iteration": "2", "phase": "mle", "train_loss": "0.5"}]
    assert safe_io.read_csv_rows(tmp_path / "missing.csv") == []
