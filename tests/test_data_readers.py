"""Readers on tiny hand-made files (expected counts worked out by hand in the comments), the
released files' published statistics, determinism and shuffling, and the synthetic truth."""

import dataclasses
import hashlib
import json
import os
import zipfile

import numpy as np
import pytest

from ganrl.data import movielens, safe_io
from ganrl.data.convert import IdMap
from ganrl.data.csv_logs import parse_column_mapping, read_csv_logs
from ganrl.data.dataset import DataError, load_dataset, load_split_data, save_dataset
from ganrl.data.pipeline import PrepareConfig, default_names, prepare
from ganrl.data.released import read_released
from ganrl.data.retailrocket import read_retailrocket
from ganrl.data.stats import STATS_KEYS
from ganrl.data.synthetic import (
    SyntheticConfig,
    choice_probabilities,
    make_synthetic,
    world_settings,
)
from tests.data_helpers import ROOT, process_data, write_released
from tests.data_helpers import released_row as row
from tests.tiny_data import tiny_dataset

RELEASED = os.path.join(os.path.dirname(ROOT), "shared", "data", "released")

TINY_ROWS = [
    row(0, 0, 0, 0),
    row(0, 0, 1, 1),
    row(0, 0, 1, 1),  # duplicate row dropped
    row(0, 1, 2, 0),
    row(0, 1, 2, 1),
    row(0, 1, 3, 0),  # item 2 twice: click kept
    row(1, 2, 3, 0, 2),
    row(1, 2, 4, 0, 2),
]  # no click
# TINY_ROWS and a validation user (user 2, one display set), so that every part of the split
# has a user, which `prepare` requires.
TINY_SPLIT_ROWS = TINY_ROWS + [row(2, 3, 0, 1, 1)]


def test_released_reader_by_hand(tmp_path):
    c = read_released(write_released(tmp_path / "t.txt", TINY_ROWS), "t", seed=0)
    s = c.stats
    # 8 rows; 2 removed (the duplicate, item 2's unclicked row); users 0, 1; items 0..4;
    # display sets (0,0), (0,1), (1,2).
    assert (s["rows"], s["rows_kept"], s["users"], s["items"], s["events"]) == (8, 6, 2, 5, 3)
    assert (s["clicks"], s["no_clicks"], s["single_item_sets"]) == (2, 1, 0)
    assert s["display_size"] == {"mean": 2.0, "min": 2, "max": 2}
    assert s["split"] == {"train": 1, "vali": 0, "test": 1}
    assert set(s) == set(STATS_KEYS)
    user0, user1 = c.dataset.behavior
    assert [sorted(d) for d in user0[1]] == [[0, 1], [2, 3]] and user0[2] == [1, 2]
    assert sorted(user1[1][0]) == [3, 4] and user1[2] == [-1]


def test_display_sets_are_shuffled_deterministically(tmp_path):
    # 40 display sets of 6 items, the click always on the last row (item 5).
    path = write_released(
        tmp_path / "t.txt", [row(u, u, i, int(i == 5)) for u in range(40) for i in range(6)]
    )
    a, b = (read_released(path, "t", seed=0) for _ in range(2))
    other = read_released(path, "t", seed=1)
    assert a.dataset.behavior == b.dataset.behavior  # same seed, same order
    assert a.dataset.behavior != other.dataset.behavior  # another seed, another order
    assert a.stats == other.stats
    positions = a.events.clicked_pos
    # Uniform over 6 places: every place is used and the last (5) is no longer the rule.
    assert set(positions.tolist()) == set(range(6)) and (positions == 5).mean() < 0.5


@pytest.mark.skipif(not os.path.isdir(RELEASED), reason="../shared/data/released absent")
@pytest.mark.parametrize(
    "name,expected",
    [
        # rows, rows_kept, users, items, events, size mean/min/max, single-item sets, split
        ("yelp", (6756, 6676, 1406, 804, 1725, 3.87, 1, 10, 293, (703, 351, 352))),
        ("tb", (12824, 10869, 1369, 4042, 2042, 5.32, 1, 10, 226, (685, 341, 343))),
        ("rsc", (14624, 6624, 1082, 890, 2063, 3.21, 1, 10, 505, (541, 270, 271))),
    ],
)
def test_released_files_match_the_published_table(name, expected):
    s = read_released(os.path.join(RELEASED, name + ".txt"), name, seed=0).stats
    got = (
        s["rows"],
        s["rows_kept"],
        s["users"],
        s["items"],
        s["events"],
        round(s["display_size"]["mean"], 2),
        s["display_size"]["min"],
        s["display_size"]["max"],
        s["single_item_sets"],
        (s["split"]["train"], s["split"]["vali"], s["split"]["test"]),
    )
    assert got == expected
    assert s["clicks"] == s["events"] and s["no_clicks"] == 0  # exactly one click per set


def test_generic_csv_reader_with_column_mapping(tmp_path):
    (tmp_path / "logs.csv").write_text(
        "who,when,what,clicked,part\n"
        "ann,5,x,0,0\nann,5,y,1,0\nbob,1,y,0,2\nbob,1,z,0,2\nann,9,z,1,0\n\n"
    )
    c = read_csv_logs(
        str(tmp_path / "logs.csv"),
        "logs",
        0,
        parse_column_mapping("user=who,time=when,item=what,click=clicked,split=part"),
    )
    # users ann=0, bob=1; items x=0, y=1, z=2; sets (ann,5) click y, (ann,9) click z,
    # (bob,1) no click; the blank last line is ignored.
    assert (c.stats["rows"], c.stats["events"], c.stats["no_clicks"]) == (5, 3, 1)
    ann, bob = c.dataset.behavior
    assert ann[2] == [1, 2] and sorted(ann[1][0]) == [0, 1] and bob[2] == [-1]
    assert c.dataset.split == ([0], [], [1])


def test_generic_csv_orders_integer_ids_numerically(tmp_path):
    (tmp_path / "logs.csv").write_text("u,t,i,c\n10,1,9,1\n9,1,10,1\n")
    c = read_csv_logs(
        str(tmp_path / "logs.csv"), "logs", 0, parse_column_mapping("user=u,time=t,item=i,click=c")
    )
    # user 9 -> 0 and item 9 -> 0 (not the string order, where "10" < "9").
    assert c.dataset.behavior == [[0, [[1]], [1]], [1, [[0]], [0]]]


def test_generic_csv_keeps_ids_with_leading_zeros_apart_and_as_written(tmp_path):
    # "007" and "7" are two users, and item "005" is not item "5": with an id that is not
    # an integer as Python writes it, the column is ordered as strings and kept as written.
    (tmp_path / "logs.csv").write_text("u,t,i,c\n007,1,005,1\n7,1,5,1\n7,2,10,1\n")
    c = read_csv_logs(
        str(tmp_path / "logs.csv"), "logs", 0, parse_column_mapping("user=u,time=t,item=i,click=c")
    )
    assert c.dataset.behavior == [[0, [[0]], [0]], [1, [[2], [1]], [2, 1]]]
    assert c.user_map.ids.tolist() == ["007", "7"]
    assert c.item_map.ids.tolist() == ["005", "10", "5"]
    assert c.item_map.dense(["005", "5"]).tolist() == [0, 2]


def _csv_rows(path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


def test_csv_prepare_writes_the_id_mappings(tmp_path):
    # String ids: users ann, bob, cy -> 0, 1, 2; products "p 10", "p,2", q -> sorted strings
    # "p 10" < "p,2" < "q" -> 0, 1, 2 (a comma inside an id is quoted in the mapping file).
    (tmp_path / "logs.csv").write_text(
        "visitor,ts,product,clicked,part\n"
        'bob,1,q,1,1\nann,5,"p,2",1,0\nann,5,p 10,0,0\ncy,2,q,0,2\n'
    )
    config = PrepareConfig(
        data_folder=str(tmp_path),
        columns="user=visitor,time=ts,item=product,click=clicked,split=part",
    )
    prepared = prepare("logs", config)
    assert _csv_rows(tmp_path / "logs-users.csv") == [
        ["user_id", "visitor"],
        ["0", "ann"],
        ["1", "bob"],
        ["2", "cy"],
    ]
    items = (tmp_path / "logs-items.csv").read_text().splitlines()
    assert items == ["item_id,product", "0,p 10", '1,"p,2"', "2,q"]
    # The mapping is the one the events use: bob's click on q is dense item 2 of user 1.
    assert prepared.converted.dataset.behavior[1][2] == [2]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    # Read back: the user's ids to the dense ones recommend takes, and its slates back.
    item_map = IdMap.load(str(tmp_path / "logs-items.csv"))
    assert item_map.column == "product"
    assert item_map.dense([["q", "p,2"], ["p 10", "q"]]).tolist() == [[2, 1], [0, 2]]
    assert item_map.original([2, 0]).tolist() == ["q", "p 10"]
    with pytest.raises(KeyError, match="product: 'r' is not an id"):
        item_map.dense(["q", "r"])
    with pytest.raises(KeyError, match=r"dense ids must be 0..2"):
        item_map.original([3])
    (tmp_path / "bad-items.csv").write_text("item_id,product\n0,a\n2,b\n")
    with pytest.raises(DataError, match=r"bad-items.csv: line 3: expected '1,ORIGINAL_ID'"):
        IdMap.load(str(tmp_path / "bad-items.csv"))


def test_id_mappings_of_movielens_and_retailrocket(tmp_path):
    # Four users each, so that the 50/25/25 split has one in every part.
    (tmp_path / "u.data").write_text(U_DATA + "3\t10\t5\t80\n4\t20\t4\t90\n")
    (tmp_path / "events.csv").write_text(
        RETAILROCKET_HEADER + "1000,70,view,300,\n2000,70,addtocart,300,\n1000,8,view,100,\n"
        "1000,9,view,100,\n1000,10,view,300,\n"
    )
    config = PrepareConfig(data_folder=str(tmp_path), ml100k_download=False, max_display=3)
    prepare("ml100k", config)
    prepare("retailrocket", config)
    # MovieLens: users 1, 2 and items 10..50 in numeric order; the column is itself named
    # user_id / item_id, so the original id's column is `user` / `item`.
    assert _csv_rows(tmp_path / "ml100k-users.csv") == [
        ["user_id", "user"],
        *[[str(i), str(i + 1)] for i in range(4)],
    ]
    assert _csv_rows(tmp_path / "ml100k-items.csv")[1:] == [
        [str(i), str(10 * (i + 1))] for i in range(5)
    ]
    # Retailrocket: visitors 8, 9, 10, 70 and items 100, 300 in numeric order.
    assert _csv_rows(tmp_path / "retailrocket-users.csv") == [
        ["user_id", "visitorid"],
        ["0", "8"],
        ["1", "9"],
        ["2", "10"],
        ["3", "70"],
    ]
    assert _csv_rows(tmp_path / "retailrocket-items.csv") == [
        ["item_id", "itemid"],
        ["0", "100"],
        ["1", "300"],
    ]


def test_released_format_writes_no_id_mapping_and_drops_a_stale_one(tmp_path):
    # The released format's ids are dense already: no mapping; one left by an earlier CSV of
    # the same name would name ids this dataset does not have.
    write_released(tmp_path / "tiny.txt", TINY_SPLIT_ROWS)
    (tmp_path / "tiny-items.csv").write_text("item_id,product\n0,x\n")
    prepare("tiny", PrepareConfig(data_folder=str(tmp_path)))
    assert not (tmp_path / "tiny-items.csv").exists()
    assert not (tmp_path / "tiny-users.csv").exists()


# MovieLens: users 1, 2; items 10, 20, 30, 40, 50 -> dense 0..4.
U_DATA = "1\t10\t5\t100\n1\t20\t3\t100\n1\t30\t4\t200\n2\t10\t2\t50\n2\t40\t5\t60\n2\t50\t1\t70\n"


def _check_tiny_movielens(c):
    s = c.stats
    # 6 ratings, all kept -> 6 display sets of 3 (the fillers are no input rows); ratings >= 4
    # (three of them) are clicks.
    assert (s["rows"], s["rows_kept"], s["events"], s["clicks"], s["no_clicks"]) == (6, 6, 6, 3, 3)
    assert s["display_size"] == {"mean": 3.0, "min": 3, "max": 3}
    assert s["split"] == {"train": 1, "vali": 0, "test": 1}
    assert s["feature_dim"] == 5 + 20  # one-hot + 19 genres + year
    user1, user2 = c.dataset.behavior
    # User 1 in time order: item 10 and item 20 tie at t=100 (item id first), then item 30.
    # At its last step the user has rated 10 and 20, so the fillers must be 40 and 50.
    assert user1[2] == [0, -1, 2]
    assert sorted(user1[1][2]) == [2, 3, 4]
    # User 2 rates 10, 40, 50; at the last step the only unrated items are 20 and 30.
    assert user2[2] == [-1, 3, -1] and sorted(user2[1][2]) == [1, 2, 4]
    for displays, rated in ((user1[1], [0, 1, 2]), (user2[1], [0, 3, 4])):
        for t, display in enumerate(displays):
            assert rated[t] in display and len(set(display)) == 3
            assert not set(display) & set(rated[:t])  # never an item rated before


def test_movielens_from_grouplens_u_data(tmp_path):
    (tmp_path / "u.data").write_text(U_DATA)
    flags = "|".join(["0"] * 19)
    (tmp_path / "u.item").write_text(
        f"10|A (1990)|01-Jan-1990||url|0|1|{'|'.join(['0'] * 17)}\n"  # Action
        f"20|B (2000)|01-Jan-2000||url|{flags}\n30|C|||url|{flags}\n"
        f"40|D|01-Jan-1995||url|{flags}\n50|E|01-Jan-1995||url|{flags}\n"
    )
    c = movielens.read_ml100k(str(tmp_path / "u.data"), "ml", seed=1, max_display=3)
    _check_tiny_movielens(c)
    features = c.dataset.item_features
    assert features.columns[1] == "genre:Action" and features.dense[0, 1] == 1.0
    # Years scaled over 1990..2000: 0, 1, unknown -> mean of the known (0, 1, .5, .5) = .5.
    np.testing.assert_allclose(features.dense[:, -1], [0.0, 1.0, 0.5, 0.5, 0.5])


def test_movielens_from_recbole_inter_is_the_same(tmp_path):
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    (tmp_path / "ml-100k.inter").write_text(header + U_DATA)
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tA\t1990\tAction\n20\tB\t2000\tDrama Western\n30\tC\t1995\tDrama\n"
    )
    c = movielens.read_ml100k(str(tmp_path / "ml-100k.inter"), "ml", seed=1, max_display=3)
    _check_tiny_movielens(c)
    (tmp_path / "u.data").write_text(U_DATA)
    grouplens = movielens.read_ml100k(str(tmp_path / "u.data"), "ml", seed=1, max_display=3)
    assert c.dataset.behavior == grouplens.dataset.behavior  # same events from either file
    dense, columns = c.dataset.item_features.dense, c.dataset.item_features.columns
    assert dense[1, columns.index("genre:Western")] == 1.0
    assert dense[1, columns.index("genre:Drama")] == 1.0
    np.testing.assert_allclose(dense[:3, -1], [0.0, 1.0, 0.5])


def _fake_wheel(folder, inter: bytes, item: bytes) -> str:
    path = os.path.join(folder, "recbole-1.2.1-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(movielens.WHEEL_FOLDER + "ml-100k.inter", inter)
        wheel.writestr(movielens.WHEEL_FOLDER + "ml-100k.item", item)
    return path


def test_movielens_download_is_checked_and_cached(tmp_path, monkeypatch):
    # No network: `download_wheel` is replaced by a fake wheel maker.
    header = b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    inter, item = header + U_DATA.encode(), b"item_id:token\trelease_year:token\tclass:token_seq\n"
    monkeypatch.setattr(movielens, "download_wheel", lambda d: _fake_wheel(d, inter, item))
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DataError, match=r"ml-100k.inter has sha256 .*expected 4edb74e2"):
        movielens.find_ml100k(str(data))
    assert os.listdir(data) == []  # nothing cached from a wheel that failed the check
    monkeypatch.setattr(
        movielens,
        "SHA256",
        {
            "ml-100k.inter": hashlib.sha256(inter).hexdigest(),
            "ml-100k.item": hashlib.sha256(item).hexdigest(),
        },
    )
    path = movielens.find_ml100k(str(data))
    assert path == str(data / "ml-100k.inter") and sorted(os.listdir(data)) == [
        "ml-100k.inter",
        "ml-100k.item",
    ]
    monkeypatch.setattr(movielens, "download_wheel", lambda d: pytest.fail("downloaded"))
    assert movielens.find_ml100k(str(data)) == path  # the cached copy is used


def test_movielens_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "WHEEL", "recbole==0.0.0.does-not-exist")
    monkeypatch.setattr(
        movielens.subprocess,
        "run",
        lambda *a, **k: type(
            "Proc", (), {"returncode": 1, "stderr": "ERROR: No matching distribution"}
        )(),
    )
    with pytest.raises(DataError, match=r"No matching distribution.*--ml100k_path"):
        movielens.find_ml100k(str(tmp_path))


RETAILROCKET_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"


def test_retailrocket_sessions_clicks_and_no_clicks(tmp_path):
    (tmp_path / "events.csv").write_text(
        RETAILROCKET_HEADER
        + "1000,7,view,100,\n2000,7,view,101,\n3000,7,addtocart,101,\n4000,7,transaction,101,5\n"
        "5000,7,view,102,\n9000000,7,view,103,\n1000,8,view,100,\n1500,8,view,100,\n"
    )
    c = read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0)
    # Visitor 7: {100, 101} then click 101 (the transaction repeats it); {102} no click;
    # 9000 s later (> 30 min) a new session: {103} no click. Visitor 8: {100} no click.
    assert (c.stats["rows"], c.stats["events"], c.stats["clicks"]) == (8, 4, 1)
    visitor7 = c.dataset.behavior[0]
    assert [sorted(d) for d in visitor7[1]] == [[0, 1], [2], [3]]
    assert visitor7[2] == [1, -1, -1]
    # A 200-minute gap keeps visitor 7 in one session: {102, 103} is one no-click set.
    merged = read_retailrocket(str(tmp_path / "events.csv"), "rr", 0, session_gap_minutes=200)
    assert [sorted(d) for d in merged.dataset.behavior[0][1]] == [[0, 1], [2, 3]]


def test_retailrocket_pages_keep_every_view(tmp_path):
    # Visitor 5, lines out of time order: views 1, 2, 3, 2, add-to-cart 3, views 4, 5, 6.
    lines = [
        "3000,5,addtocart,3,",
        "0,5,view,1,",
        "2500,5,view,2,",
        "1000,5,view,2,",
        "2000,5,view,3,",
        "6000,5,view,6,",
        "4000,5,view,4,",
        "5000,5,view,5,",
    ]
    (tmp_path / "events.csv").write_text(RETAILROCKET_HEADER + "\n".join(lines) + "\n")
    c = read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0, max_display=2)
    # Segment 1 (closed by the click on 3): distinct items by last row 1, 2, 3 -> pages of 2
    # from the end: {1} no click, {2, 3} click 3. Open segment 4, 5, 6: {4}, {5, 6}.
    # Items 1..6 -> 0..5.
    _, displays, clicks = c.dataset.behavior[0]
    assert [sorted(d) for d in displays] == [[0], [1, 2], [3], [4, 5]]
    assert clicks == [-1, 2, -1, -1]
    assert (c.stats["rows"], c.stats["rows_kept"], c.stats["clicks"]) == (8, 6, 1)


def test_every_reader_keeps_at_most_its_input_rows(tmp_path):
    # `rows_kept` counts input rows (never rows a reader adds, such as MovieLens' fillers), so
    # it is at most `rows`: the printed `"rows": 100000, "rows_kept": 1000000` on ml100k was
    # the displayed rows.
    (tmp_path / "u.data").write_text(U_DATA)
    (tmp_path / "logs.csv").write_text("u,t,i,c\n1,5,x,0\n1,5,y,1\n2,1,y,0\n")
    (tmp_path / "events.csv").write_text(RETAILROCKET_HEADER + "0,5,view,1,\n1000,5,view,1,\n")
    converted = {
        "released": read_released(write_released(tmp_path / "t.txt", TINY_ROWS), "t", seed=0),
        "ml100k": movielens.read_ml100k(str(tmp_path / "u.data"), "ml", 1, max_display=3),
        "csv": read_csv_logs(
            str(tmp_path / "logs.csv"),
            "logs",
            0,
            parse_column_mapping("user=u,time=t,item=i,click=c"),
        ),
        "retailrocket": read_retailrocket(str(tmp_path / "events.csv"), "rr", seed=0),
        "synthetic": make_synthetic(
            str(tmp_path),
            "syn",
            0,
            SyntheticConfig(users=20, items=30, events_per_user=3, posterior_samples=50),
        )[0],
    }
    counts = {name: (c.stats["rows"], c.stats["rows_kept"]) for name, c in converted.items()}
    # released: the duplicate and item 2's unclicked row dropped; MovieLens: 6 ratings, each
    # shown with 2 fillers; retailrocket: item 1's two views in one segment are one row.
    assert counts == {
        "released": (8, 6),
        "ml100k": (6, 6),
        "csv": (3, 3),
        "retailrocket": (2, 1),
        "synthetic": (counts["synthetic"][0],) * 2,
    }
    synthetic = converted["synthetic"].stats
    assert counts["synthetic"][0] == synthetic["display_size"]["mean"] * synthetic["events"]


SMALL = SyntheticConfig(users=160, items=40, events_per_user=6, posterior_samples=1500)


@pytest.mark.parametrize("world", ["mean_uniform_noclick", "lag_popular_always"])
def test_synthetic_truth(tmp_path, world):
    config = dataclasses.replace(SMALL, **world_settings(world))
    c, truth = make_synthetic(str(tmp_path), "syn", seed=3, config=config)
    ev = c.events
    assert c.stats["users"] == 160 and c.stats["events"] == 160 * 6
    assert 2 <= c.stats["display_size"]["min"] and c.stats["display_size"]["max"] <= 10
    assert (c.stats["no_clicks"] == 0) == config.always_click
    # Alignment: event e is step event_step[e] of user event_user[e], as in data_behavior.
    behavior = c.dataset.behavior
    for e in (0, 7, 500, ev.n_events - 1):
        user, step = truth["event_user"][e], truth["event_step"][e]
        display = behavior[user][1][step]
        assert list(truth["display"][e][: len(display)]) == display
    # true_prob recomputed by hand for one event: softmax of theta.v + h.v + b, with the
    # no-click option at 0.5 in the noclick world. h: the mean vector of the user's earlier
    # clicks (beta 1), or the last three clicks weighted 1, 0.5, 0.25, the latest first.
    e = 500
    user, step = truth["event_user"][e], truth["event_step"][e]
    earlier = [k for k in behavior[user][2][:step] if k >= 0]
    v = truth["item_vectors"]
    if config.history == "mean":
        h = v[earlier].mean(axis=0) if earlier else np.zeros(v.shape[1])
    else:
        h = sum(w * v[k] for w, k in zip([1.0, 0.5, 0.25], earlier[::-1]))
    display = behavior[user][1][step]
    u = v[display] @ (truth["user_taste"][user] + h) + truth["item_bias"][display]
    no_click = 0.0 if config.always_click else np.exp(0.5)
    expected = np.exp(u) / (np.exp(u).sum() + no_click)
    np.testing.assert_allclose(truth["true_prob"][e][: len(display)], expected, rtol=1e-9)
    row_sums = truth["true_prob"].sum(axis=1)
    assert np.allclose(row_sums, 1) if config.always_click else np.all(row_sums < 1)
    assert np.all(truth["bayes_prob"][~ev.display_mask] == 0)
    # Chance < reachable limit < oracle on the training split (460 or so clicked events).
    assert truth["train_chance_prec1"] + 0.1 < truth["train_bayes_prec1"]
    assert truth["train_bayes_prec1"] < truth["train_oracle_prec1"]
    assert truth["train_bayes_prec2"] > truth["train_bayes_prec1"]


def test_synthetic_is_deterministic_for_a_seed(tmp_path):
    config = SyntheticConfig(users=20, items=30, events_per_user=3, posterior_samples=50)
    a, truth_a = make_synthetic(str(tmp_path), "s", 5, config)
    b, truth_b = make_synthetic(str(tmp_path), "s", 5, config)
    other, _ = make_synthetic(str(tmp_path), "s", 6, config)
    assert a.dataset.behavior == b.dataset.behavior != other.dataset.behavior
    np.testing.assert_array_equal(truth_a["bayes_prob"], truth_b["bayes_prob"])


def test_choice_probabilities_by_hand():
    # Utilities [0, ln 2] and no-click 0: weights 1, 2 and 1 -> 1/4, 1/2 (padding -> 0).
    p = choice_probabilities(
        np.array([[0.0, np.log(2.0), 9.0]]), np.array([[True, True, False]]), 0.0
    )
    np.testing.assert_allclose(p, [[0.25, 0.5, 0.0]])


def test_prepare_writes_every_output(tmp_path):
    write_released(tmp_path / "tiny.txt", TINY_SPLIT_ROWS)
    prepared = prepare("tiny", PrepareConfig(data_folder=str(tmp_path)))
    assert sorted(f for f in os.listdir(tmp_path)) == [
        "tiny-events",
        "tiny-split.pkl",
        "tiny-stats.json",
        "tiny.pkl",
        "tiny.txt",
    ]
    stats = json.loads((tmp_path / "tiny-stats.json").read_text())
    assert stats == prepared.converted.stats and stats["events"] == 4
    loaded = load_dataset(str(tmp_path), "tiny")
    assert loaded.behavior == prepared.converted.dataset.behavior
    assert load_split_data(str(tmp_path), "tiny").splits["test"].n_events == 1
    assert oct(os.stat(tmp_path / "tiny.pkl").st_mode & 0o777) != "0o600"


def test_default_names_skip_builtin_names(tmp_path):
    write_released(tmp_path / "yelp.txt", TINY_ROWS)
    write_released(tmp_path / "synthetic.txt", TINY_ROWS)  # the generator's own log
    (tmp_path / "notes.txt").write_text("not a log\n")
    assert default_names(str(tmp_path)) == ["ml100k", "yelp"]


def test_process_data_synthetic_end_to_end(tmp_path):
    proc = process_data(
        tmp_path,
        "--dataset=synthetic",
        "--users=12",
        "--items=20",
        "--events_per_user=3",
        "--max_display=4",
        "--feature_dim=3",
        "--posterior_samples=20",
        "--seed=2",
        "--world=lag_uniform_noclick",
        "--synthetic_true_features",
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "synthetic-stats.json").read_text())
    assert (stats["users"], stats["items"], stats["events"], stats["feature_dim"]) == (
        12,
        20,
        36,
        20 + 3,
    )
    assert stats["display_size"]["max"] <= 4 and stats["split"] == {
        "train": 6,
        "vali": 3,
        "test": 3,
    }
    truth = np.load(tmp_path / "synthetic-truth.npz")
    assert truth["true_prob"].shape[0] == 36 and "test_bayes_prec1" in truth.files
    config_line, stats_line = proc.stdout.splitlines()
    synthetic = json.loads(config_line.split(": ", 1)[1])["synthetic"]
    assert (synthetic["users"], synthetic["history"], synthetic["always_click"]) == (
        12,
        "lag",
        False,
    )
    assert json.loads(stats_line.split(": ", 1)[1])["truth"]["test_chance_prec1"] > 0
    # The reference rankers of the synthetic benchmark read that truth file.
    import subprocess
    import sys

    bench = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "bench_synthetic_limits.py"),
            f"--truth={tmp_path / 'synthetic-truth.npz'}",
            "--samples=20",
            f"--out={tmp_path / 'limits'}",
        ],
        capture_output=True,
        text=True,
    )
    assert bench.returncode == 0, bench.stderr
    limits = {
        r["ranker"]: r
        for r in json.loads((tmp_path / "limits" / "limits.json").read_text())["rows"]
    }
    assert set(limits) == {
        "oracle",
        "bayes",
        "posterior_mean",
        "chance",
        "surprise_p0",
        "surprise_uniform",
        "clicks_only",
    }
    assert limits["bayes"]["prec1"] == pytest.approx(float(truth["test_bayes_prec1"]))


def test_dataset_round_trip_with_compact_features(tmp_path):
    dataset = tiny_dataset(n_items=1500)
    save_dataset(str(tmp_path), dataset)
    with open(tmp_path / "tiny.pkl", "rb") as f:
        objects = [safe_io.SafeUnpickler(f).load() for _ in range(2)]
    assert isinstance(objects[1], dict) and objects[1]["n_items"] == 1500  # no dense one-hot
    loaded = load_dataset(str(tmp_path), "tiny")
    assert loaded.behavior == dataset.behavior and loaded.split == dataset.split


def test_posterior_mean_taste_by_hand():
    from ganrl.data.synthetic import posterior_mean_taste, posterior_predictive

    # One user, two events, one item shown alone each time; two equally likely tastes, +1 and
    # -1 on a 1-d vector v = 2. Before any event the mean is 0; after a click on the item the
    # weights are the click probabilities under each taste, sigmoid(2) and sigmoid(-2) (the
    # no-click option has utility 0).
    vd = np.array([[[2.0]], [[2.0]]])
    base, mask = np.zeros((2, 1)), np.ones((2, 1), bool)
    choice, offsets, draws = np.array([0, 0]), np.array([0, 2]), np.array([[1.0], [-1.0]])
    mean = posterior_mean_taste(vd, base, mask, choice, offsets, draws, 0.0)
    p_plus, p_minus = 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(2.0))
    np.testing.assert_allclose(mean[:, 0], [0.0, (p_plus - p_minus) / (p_plus + p_minus)])
    predictive = posterior_predictive(vd, base, mask, choice, offsets, draws, 0.0)
    np.testing.assert_allclose(
        predictive[:, 0], [0.5, (p_plus**2 + p_minus**2) / (p_plus + p_minus)]
    )
