"""Bad input: one test per case. Each error names the file and the line or field, the command
exits non-zero with one line on stderr, and no output (nor temporary file, nor run folder) is
left."""

import json
import os
import pickle
import re
import sys
import warnings

import numpy as np
import pytest

from ganrl.data import safe_io
from ganrl.data.csv_logs import parse_column_mapping, read_csv_logs
from ganrl.data.dataset import (
    FEATURES_FORMAT,
    DataError,
    SplitData,
    load_dataset,
    load_split_data,
    save_dataset,
    save_event_splits,
)
from ganrl.data.movielens import find_ml100k, read_ml100k
from ganrl.data.pipeline import PrepareConfig, prepare
from ganrl.data.retailrocket import read_retailrocket
from tests.data_helpers import RELEASED_HEADER, ROOT, outputs, process_data, released_row
from tests.script_helpers import run_script
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
    _fails_cleanly(
        tmp_path,
        RELEASED_HEADER + rows,
        "line 3, field 'session_new_index': expected an integer, got 'abc'",
    )


def test_two_clicks_in_one_display_set(tmp_path):
    # Time 0 of user 0 shows items 0 and 1, both clicked: lines 2 and 3.
    rows = "s\t0\ti\t1\t0\t0\t0\t0\ns\t0\ti\t1\t1\t0\t1\t0\n"
    _fails_cleanly(tmp_path, RELEASED_HEADER + rows, "lines [2, 3]", "2 clicked rows")


CSV_COLUMNS = "user=visitor,time=ts,item=product,click=clicked"


def _read_csv(path, columns=CSV_COLUMNS, sep=","):
    return read_csv_logs(str(path), "shop", 0, parse_column_mapping(columns), sep)


def test_two_clicks_in_one_csv_display_set_name_the_csvs_own_user(tmp_path):
    # bob (dense user 1 after ann) clicks x and y at time 100: lines 3 and 4.
    (tmp_path / "shop.csv").write_text(
        "visitor,ts,product,clicked\nann,100,x,1\nbob,100,x,1\nbob,100,y,1\n"
    )
    with pytest.raises(DataError) as error:
        _read_csv(tmp_path / "shop.csv")
    assert str(error.value) == (
        f"{tmp_path / 'shop.csv'}: lines [3, 4]: a display set (user 'bob', time 100) has 2 "
        "clicked rows; expected at most one"
    )


def test_a_csv_user_in_two_splits_is_named_by_the_csvs_own_id(tmp_path):
    (tmp_path / "shop.csv").write_text(
        "visitor,ts,product,clicked,part\nann,1,x,1,0\nbob,1,x,1,0\nbob,2,y,1,2\n"
    )
    with pytest.raises(DataError) as error:
        _read_csv(tmp_path / "shop.csv", CSV_COLUMNS + ",split=part")
    assert str(error.value).endswith(
        "user 'bob' has rows in more than one split (split 0 at line 3, split 2 at line 4); "
        "expected one split per user"
    )


def test_a_split_value_out_of_range_on_one_row_is_named_before_the_user_in_two_splits(tmp_path):
    # The fifth row (line 6) is user 0's, with split 3: that line and value are the error,
    # not "user 0 has rows in more than one split".
    rows = _with_field(GOOD_ROWS, 4, 7, 3)
    _fails_cleanly(tmp_path, _released_text(rows), "line 6, split field: expected 0, 1 or 2, got 3")


@pytest.mark.parametrize(
    "text, sep, hint",
    [
        ("visitor;ts;product;clicked\na;1;x;1\n", ",", "give --csv_sep=';'"),
        ("visitor\tts\tproduct\tclicked\na\t1\tx\t1\n", ",", "give --csv_sep='\\t'"),
        ("visitor,ts,product,clicked\na,1,x,1\n", ";", "give --csv_sep=','"),
        ("visitor ts product clicked\na 1 x 1\n", ",", "give the file's field separator"),
    ],
)
def test_a_csv_read_with_the_wrong_separator_suggests_csv_sep(tmp_path, text, sep, hint):
    (tmp_path / "shop.csv").write_text(text)
    with pytest.raises(DataError) as error:
        _read_csv(tmp_path / "shop.csv", sep=sep)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'shop.csv'}: line 1: the header is one field ")
    assert hint in message


def test_csv_sep_backslash_t_is_a_tab(tmp_path):
    # What the hint above asks for, typed in a shell: a backslash and t, read as a tab (not as
    # a two-character regular expression, which pandas parses slowly, with a warning).
    (tmp_path / "shop.csv").write_text("visitor\tts\tproduct\tclicked\na\t1\tx\t1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _read_csv(tmp_path / "shop.csv", sep="\\t").stats["events"] == 1


def test_empty_file(tmp_path):
    _fails_cleanly(tmp_path, "", "empty file")


def test_missing_path(tmp_path):
    proc = process_data(tmp_path, "--dataset=ghost")
    assert proc.returncode == 1
    assert f"{tmp_path / 'ghost.txt'}: no such file" in proc.stderr
    assert outputs(tmp_path, "ghost") == []


@pytest.mark.parametrize(
    "args,named",
    [
        # A built-in name reads its own files: the CSV would be ignored.
        (["--dataset=synthetic", "--csv_path=x.csv", "--columns=user=u"], "--csv_path/--columns"),
        # No --dataset prepares ml100k and the released files.
        (["--csv_path=x.csv", "--csv_sep=;"], "--csv_path/--csv_sep"),
        # Another name without --columns reads NAME.txt in the released format.
        (["--dataset=shop", "--csv_path=x.csv"], "--csv_path needs --columns"),
        # Every other reader's flags are refused where they would be ignored too.
        (
            ["--dataset=shop", "--columns=user=u,time=t,item=i,click=c", "--max_display=5"],
            "--max_display is not read when preparing a CSV of click logs",
        ),
        (["--users=50"], "--users is not read when preparing MovieLens 100k and released"),
        (
            ["--dataset=synthetic", "--world=satiation", "--history_lags=2"],
            "--history_lags is not read when preparing the satiation world",
        ),
        (["--dataset=yelp", "--session_gap_minutes=5"], "is for Retailrocket's events.csv"),
    ],
)
def test_csv_flags_that_would_be_unused_are_refused(tmp_path, args, named):
    # Without --dataset ml100k is prepared: never downloaded here, whatever the check does.
    no_download = [] if any(a.startswith("--dataset=") for a in args) else ["--noml100k_download"]
    proc = process_data(tmp_path, *no_download, *args)
    assert proc.returncode == 1
    error = proc.stderr.strip()
    assert error.startswith("error: ") and len(error.splitlines()) == 1, error
    assert named in error and "would be unused" in error
    assert os.listdir(tmp_path) == []  # nothing generated, nothing downloaded


def test_too_few_users_for_every_split_part(tmp_path):
    # 3 users drawn 50/25/25: 3 // 2 = 1 train, 3 // 4 = 0 validation, 2 test users.
    (tmp_path / "few.csv").write_text(
        "visitor,ts,product,clicked\na,1,x,1\na,1,y,0\nb,1,x,0\nc,2,y,1\n"
    )
    proc = process_data(
        tmp_path, "--dataset=few", "--columns=user=visitor,time=ts,item=product,click=clicked"
    )
    assert proc.returncode == 1
    error = proc.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert f"{tmp_path / 'few.csv'}: the user split has 1 train, 0 validation and 2 test" in error
    assert "no validation user" in error
    assert outputs(tmp_path, "few") == [] and "few: {" not in proc.stdout
    # The configuration printed first holds what a CSV is read with, not the generators'.
    config = json.loads(proc.stdout.splitlines()[0].split(": ", 1)[1])
    assert config == {
        "data_folder": str(tmp_path),
        "seed": 0,
        "csv_path": "",
        "columns": "user=visitor,time=ts,item=product,click=clicked",
        "csv_sep": ",",
    }


def test_refused_synthetic_run_removes_the_log_it_generated(tmp_path):
    from ganrl.data.pipeline import PrepareConfig, prepare
    from ganrl.data.synthetic import SyntheticConfig

    config = PrepareConfig(
        data_folder=str(tmp_path), synthetic=SyntheticConfig(users=3, posterior_samples=5)
    )
    # The error names the setting to change, not the log it removed.
    with pytest.raises(safe_io.DataError, match=r"^the generated world \(--users=3\): the user"):
        prepare("synthetic", config)
    assert os.listdir(tmp_path) == []
    # A log that was there before the call stays (regenerated, as the call asked).
    (tmp_path / "synthetic.txt").write_text("kept")
    with pytest.raises(safe_io.DataError, match="no validation user"):
        prepare("synthetic", config)
    assert os.listdir(tmp_path) == ["synthetic.txt"]


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
    (tmp_path / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n1000,7,view,100,\n2000,7,purchase,100,\n"
    )
    with pytest.raises(DataError, match=r"events.csv: line 3, field 'event': expected one of"):
        read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0)


def test_retailrocket_timestamps_in_seconds_are_refused(tmp_path):
    # The same log with its times in Unix seconds: 30 idle minutes would read as 30,000.
    header = "timestamp,visitorid,event,itemid,transactionid\n"
    (tmp_path / "events.csv").write_text(
        header + "1433221332,7,view,100,\n1433221400,7,addtocart,100,\n"
    )
    with pytest.raises(
        DataError, match=r"events.csv: line 3, field 'timestamp': expected Unix milliseconds"
    ):
        read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0)
    (tmp_path / "events.csv").write_text(
        header + "1433221332000,7,view,100,\n1433221400000,7,addtocart,100,\n"
    )
    assert read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0).stats["events"] == 1


def test_csv_row_with_too_few_fields_is_named_as_short(tmp_path):
    # pandas pads a short row with empty fields; the error says the row is short, not that
    # a field is empty, whichever column the reader checks first.
    mapping = parse_column_mapping("user=u,time=t,item=i,click=c")
    for body in ("a,1,x,1\na,1\n", "a,1,x,1\na\n"):
        (tmp_path / "logs.csv").write_text("u,t,i,c\n" + body)
        with pytest.raises(DataError, match=r"logs.csv: line 3 has \d fields, expected 4: u, t"):
            read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0, mapping)
    # A row of four fields with one empty is an empty field.
    (tmp_path / "logs.csv").write_text("u,t,i,c\na,1,x,1\na,1,,0\n")
    with pytest.raises(DataError, match=r"line 3, field 'i': expected an id, got an empty"):
        read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0, mapping)


def test_csv_header_naming_a_column_twice_is_refused(tmp_path):
    (tmp_path / "logs.csv").write_text("u,t,u,c\na,1,x,1\n")
    mapping = parse_column_mapping("user=u,time=t,item=i,click=c")
    with pytest.raises(DataError, match=r"logs.csv: line 1: column 'u' is named twice"):
        read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0, mapping)


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
    with pytest.raises(
        safe_io.UnsafePickleError, match=r"tiny.pkl: refused to load global '(posix|os)\.system'"
    ):
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


# Rows of a small valid released file: 6 users (split 0, 1, 2 by user % 3), 2 display sets of
# 3 items each, the first item of a set clicked; items 0..7.
GOOD_ROWS = [
    released_row(user, 10 * user + t, (user + t + j) % 8, int(j == 0), user % 3)
    for user in range(6)
    for t in range(2)
    for j in range(3)
]


def _released_text(rows) -> str:
    return RELEASED_HEADER + "".join("\t".join(map(str, r)) + "\n" for r in rows)


def _with_field(rows, row_index, column, value):
    """`rows` with `value` in `column` (an index of `released_row`'s tuple) of one row."""
    changed = [list(r) for r in rows]
    changed[row_index][column] = value
    return changed


def test_one_huge_item_id_is_refused_not_a_catalogue_of_its_size(tmp_path):
    # Line 5 (row 3) holds item 99999999999 among 8 distinct ids: the catalogue would be
    # 1e11 items; the bound is max(1000, 10 x 9 distinct ids) = 1000.
    rows = _with_field(GOOD_ROWS, 3, 6, 99999999999)
    _fails_cleanly(
        tmp_path, _released_text(rows), "line 5, field 'item_new_index'", "99999999999", "= 1000"
    )


@pytest.mark.parametrize("time", ["inf", "1e30", "-inf"])
def test_time_that_is_not_a_finite_exact_integer_is_refused(tmp_path, time):
    rows = _with_field(GOOD_ROWS, 4, 1, time)  # line 6, the Time field
    _fails_cleanly(tmp_path, _released_text(rows), "line 6, field 'Time'", f"got '{time}'")


def test_negative_user_id_is_refused(tmp_path):
    rows = [list(r) for r in GOOD_ROWS]
    for r in rows[6:12]:  # every row of user 1: lines 8 to 13
        r[5] = -7
    _fails_cleanly(
        tmp_path,
        _released_text(rows),
        "line 8, field 'session_new_index': expected a non-negative integer, got '-7'",
    )


@pytest.mark.parametrize("where", ["SessionId", "end"])
def test_nul_byte_inside_a_line_is_refused(tmp_path, where):
    lines = _released_text(GOOD_ROWS).split("\n")
    # Line 4: a NUL in the unused SessionId field (which nothing converts) or at the end.
    lines[3] = "s\0x" + lines[3][1:] if where == "SessionId" else lines[3] + "\0"
    _fails_cleanly(tmp_path, "\n".join(lines), "line 4: holds a NUL byte")


def test_dataset_names_that_are_paths_are_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "evil.txt").write_text(_released_text(GOOD_ROWS))  # DATA_FOLDER/../evil.txt
    for name in ("../evil", "sub/evil", "..", "."):
        with pytest.raises(DataError, match=rf"--dataset='{re.escape(name)}': expected a data"):
            prepare(name, PrepareConfig(data_folder=str(data)))
    assert sorted(os.listdir(tmp_path)) == ["data", "evil.txt"] and not os.listdir(data)


def test_csv_separator_of_other_than_one_character_is_refused(tmp_path):
    (tmp_path / "logs.csv").write_text("u,t,i,c\n1,1,1,1\n")
    mapping = parse_column_mapping("user=u,time=t,item=i,click=c")
    for sep in ("", ",,"):
        with pytest.raises(DataError, match=rf"--csv_sep='{sep}': expected one character"):
            read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0, mapping, sep=sep)


def test_a_file_that_is_not_utf8_names_its_line(tmp_path):
    (tmp_path / "logs.csv").write_bytes(b"u,t,i,c\n1,1,1,1\n2,1,caf\xe9,1\n")
    mapping = parse_column_mapping("user=u,time=t,item=i,click=c")
    with pytest.raises(DataError, match=r"logs.csv: line 3, byte 8: 0xe9 is not UTF-8"):
        read_csv_logs(str(tmp_path / "logs.csv"), "logs", 0, mapping)


def test_crlf_line_ends_give_the_same_dataset(tmp_path):
    text = _released_text(GOOD_ROWS)
    (tmp_path / "lf.txt").write_bytes(text.encode())
    (tmp_path / "crlf.txt").write_bytes(text.replace("\n", "\r\n").encode())
    for name in ("lf", "crlf"):
        assert process_data(tmp_path, f"--dataset={name}").returncode == 0
    lf, crlf = (load_dataset(str(tmp_path), name) for name in ("lf", "crlf"))
    assert crlf.behavior == lf.behavior and crlf.split == lf.split
    assert crlf.n_items == lf.n_items == 8


def test_split_with_a_user_in_two_lists(tmp_path):
    dataset = tiny_dataset()  # train holds users 0..11, test users 18..23
    dataset.split = (dataset.split[0], dataset.split[1], dataset.split[2] + [5])
    save_dataset(str(tmp_path), dataset)
    with pytest.raises(
        DataError,
        match=r"tiny-split.pkl: test list, entry 6: user 5 is "
        r"already in the train list \(entry 5\)",
    ):
        load_dataset(str(tmp_path), "tiny")


def test_event_folders_with_a_user_in_two_splits(tmp_path):
    data = SplitData.from_dataset(tiny_dataset())
    data.splits["vali"] = data.splits["train"]
    save_event_splits(str(tmp_path), data)
    with pytest.raises(
        DataError,
        match=r"tiny-events: vali list, entry 0: user 0 is already "
        r"in the train list",
    ):
        load_split_data(str(tmp_path), "tiny")


def _save_with_features(folder, features_object):
    """Saves the tiny dataset (12 items) with `features_object` as NAME.pkl's features."""
    dataset = tiny_dataset()
    save_dataset(str(folder), dataset)
    safe_io.dump_pickles(folder / "tiny.pkl", dataset.behavior, features_object)


def _compact(dense, n_items=12):
    return {
        "format": FEATURES_FORMAT,
        "n_items": n_items,
        "identity": True,
        "dense": dense,
        "columns": ["a", "b"],
    }


@pytest.mark.parametrize("form", ["compact", "matrix"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])  # 1e300 is inf in float32
def test_non_finite_dense_features_are_refused(tmp_path, form, bad):
    dense = np.ones((12, 2))
    dense[7, 1] = bad
    _save_with_features(tmp_path, _compact(dense) if form == "compact" else dense)
    field = ", field 'dense'" if form == "compact" else r" \(2-D array\)"
    with pytest.raises(
        DataError,
        match=rf"tiny.pkl: item features{field}: expected finite "
        rf"numbers, got .* at row 7, column 1",
    ):
        load_dataset(str(tmp_path), "tiny")


@pytest.mark.parametrize("form", ["compact", "matrix"])
def test_string_dense_features_are_refused(tmp_path, form):
    dense = np.full((12, 2), "0.5")  # numbers as text: numpy would convert them silently
    _save_with_features(tmp_path, _compact(dense) if form == "compact" else dense)
    with pytest.raises(
        DataError,
        match=r"tiny.pkl: item features.*expected an array of "
        r"numbers, got dtype <U3",
    ):
        load_dataset(str(tmp_path), "tiny")


@pytest.mark.parametrize(
    "entry,message",
    [
        ([3, 5, [1]], r"data_behavior\[3\] \(user 3\): displays: expected a list, got int"),
        (
            [3, [["a", "b"]], [-1]],
            r"data_behavior\[3\] \(user 3\), step 0: display set: "
            r"expected item ids in 0..11, got 'a'",
        ),
        (
            [3, [[1, 2]], [1.0]],
            r"data_behavior\[3\] \(user 3\), step 0: click: expected an item "
            r"of the display set \[1, 2\] or -1, got 1.0",
        ),
        (
            ["3", [[1, 2]], [1]],
            r"data_behavior\[3\]: user id: expected a non-negative integer, "
            r"got '3'",
        ),
        ([2, [[1, 2]], [1]], r"data_behavior\[3\]: user 2 already has entry 2"),
    ],
    ids=[
        "displays_not_a_list",
        "item_ids_as_text",
        "click_as_float",
        "user_id_as_text",
        "user_twice",
    ],
)
def test_behavior_entries_of_the_wrong_type_are_refused(tmp_path, entry, message):
    dataset = tiny_dataset()
    dataset.behavior[3] = entry
    save_dataset(str(tmp_path), dataset)
    with pytest.raises(DataError, match=r"tiny.pkl: " + message):
        load_dataset(str(tmp_path), "tiny")


def test_event_folder_whose_item_features_disagree_with_the_events(tmp_path):
    data = SplitData.from_dataset(tiny_dataset())  # 12 items
    save_event_splits(str(tmp_path), data)
    safe_io.dump_pickles(tmp_path / "tiny-events" / "item_features.pkl", np.eye(5))
    with pytest.raises(
        DataError,
        match=r"item_features.pkl: item features of 5 items, "
        r"expected 12 \(n_items of .*train/meta.json\)",
    ):
        load_split_data(str(tmp_path), "tiny")


def test_event_folder_with_an_item_id_beyond_the_catalogue(tmp_path):
    data = SplitData.from_dataset(tiny_dataset())
    save_event_splits(str(tmp_path), data)
    display = data.splits["test"].display.copy()
    display[2, 0] = 12
    np.save(tmp_path / "tiny-events" / "test" / "display.npy", display)
    with pytest.raises(
        DataError,
        match=r"test/display.npy: row 2: item id 12, expected "
        r"0..11",
    ):
        load_split_data(str(tmp_path), "tiny")


def _fake_user_model_dir(folder, features_object, n_items=12):
    """The files `load_user_model` reads before any checkpoint, with these item features."""
    folder.mkdir()
    safe_io.dump_json(
        folder / "model.json",
        {"n_items": n_items, "model": {}, "has_no_click": False, "regularizer": "entropy"},
    )
    safe_io.dump_json(folder / "config.json", {"data_folder": str(folder), "dataset": "tiny"})
    safe_io.dump_pickles(folder / "item_features.pkl", features_object)
    return str(folder)


def test_run_folder_item_features_of_the_wrong_item_count(tmp_path):
    from ganrl.user_model import load_user_model

    run = _fake_user_model_dir(tmp_path / "run", np.eye(10))
    with pytest.raises(
        DataError,
        match=r"run/item_features.pkl: item features of 10 items, "
        r"expected 12 \(n_items of .*run/model.json\)",
    ):
        load_user_model(run)


def _refused_by_entry_point(args, cwd, *message_parts):
    """Runs an entry point that must refuse its input: exit 1, one error line, no traceback,
    no `runs/` folder."""
    proc = run_script([sys.executable, *args], cwd=str(cwd), check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for part in message_parts:
        assert part in errors[0]
    assert not (cwd / "runs").exists()


@pytest.mark.parametrize("case", ["split_overlap", "nan_features", "events_features"])
def test_user_model_entry_point_refuses_bad_data_before_its_run_folder(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    dataset = tiny_dataset()
    if case == "split_overlap":
        dataset.split = (dataset.split[0], dataset.split[1], dataset.split[2] + [5])
    save_dataset(str(data), dataset)
    if case == "nan_features":
        dense = np.ones((12, 2))
        dense[0, 0] = np.nan
        safe_io.dump_pickles(data / "tiny.pkl", dataset.behavior, _compact(dense))
    if case == "events_features":
        save_event_splits(str(data), SplitData.from_dataset(dataset))
        safe_io.dump_pickles(data / "tiny-events" / "item_features.pkl", np.eye(5))
    expected = {
        "split_overlap": "tiny-split.pkl: test list",
        "nan_features": "tiny.pkl: item features, field 'dense'",
        "events_features": "item_features.pkl: item features of 5 items, expected 12",
    }[case]
    _refused_by_entry_point(
        [
            os.path.join(ROOT, "experiment_user_model", "main_gan_user_model.py"),
            f"--data_folder={data}",
            "--dataset=tiny",
            "--num_itrs=1",
            "--batch_size=4",
        ],
        tmp_path,
        expected,
    )


def test_policy_entry_point_refuses_bad_item_features_before_its_run_folder(tmp_path):
    dense = np.ones((12, 2))
    dense[3, 1] = np.inf
    run = _fake_user_model_dir(tmp_path / "um", _compact(dense))
    _refused_by_entry_point(
        [
            os.path.join(ROOT, "experiment_policy", "main_policy.py"),
            f"--user_model_dir={run}",
            f"--test_user_model_dir={run}",
        ],
        tmp_path,
        "um/item_features.pkl: item features, field 'dense'",
    )


def test_curve_row_cut_short_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "curves.csv"
    path.write_text("iteration,phase,train_loss\n0,mle,nan\n2,mle,0.5\n4,ml")
    assert safe_io.read_csv_rows(path) == [
        {"iteration": "0", "phase": "mle", "train_loss": "nan"},
        {"iteration": "2", "phase": "mle", "train_loss": "0.5"},
    ]
    assert safe_io.read_csv_rows(tmp_path / "missing.csv") == []
