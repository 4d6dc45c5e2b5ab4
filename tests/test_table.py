"""The comparison table: mean (std) per method and dataset, Markdown and CSV, record files."""

from __future__ import annotations

import csv

import pytest

from ganrl.data.safe_io import DataError
from ganrl.reporting.tables import (
    Record,
    aggregate,
    load_records,
    markdown,
    save_records,
    write_tables,
)

RECORDS = [
    Record("gan_lstm", "yelp", 0, 0.70, 0.80),
    Record("gan_lstm", "yelp", 1, 0.80, 0.90),
    Record("gan_lstm", "tb", 0, 0.30, 0.50),
    Record("iknn", "yelp", 0, 0.50, 0.70),
]


def test_aggregate_mean_and_population_std():
    cells = aggregate(RECORDS)
    # yelp prec@1 of gan_lstm: mean (0.7 + 0.8) / 2 = 0.75, population std 0.05.
    assert cells[("gan_lstm", "yelp")]["prec1"].mean == pytest.approx(0.75)
    assert cells[("gan_lstm", "yelp")]["prec1"].std == pytest.approx(0.05)
    assert cells[("gan_lstm", "yelp")]["prec2"].n == 2
    assert cells[("iknn", "yelp")]["prec2"].std == 0.0
    assert ("iknn", "tb") not in cells


def test_duplicate_runs_are_refused():
    with pytest.raises(ValueError, match="method 'iknn', dataset 'yelp', seed 0"):
        aggregate(RECORDS + [Record("iknn", "yelp", 0, 0.1, 0.2)])


def test_markdown_layout_methods_by_datasets():
    text = markdown(RECORDS, datasets=["yelp", "tb"])
    lines = text.splitlines()
    assert lines[0] == "| method | yelp prec@1 | yelp prec@2 | tb prec@1 | tb prec@2 |"
    # gan_lstm on tb and iknn on yelp have seed 0 only of the records' seeds 0 and 1.
    assert lines[2] == (
        "| gan_lstm | 0.750 (0.050) | 0.850 (0.050) | 0.300 (0.000), 1 of 2 seeds "
        "| 0.500 (0.000), 1 of 2 seeds |"
    )
    assert (
        lines[3] == "| iknn | 0.500 (0.000), 1 of 2 seeds | 0.700 (0.000), 1 of 2 seeds | - | - |"
    )


NAN = float("nan")
# Seed 3 of "a" has no prec@1 (NaN): its prec@1 is over 4 of the 5 seeds, its prec@2 over 5.
WITH_NAN = [Record("a", "d", s, p1, 0.5) for s, p1 in enumerate([0.40, 0.42, 0.41, NAN, 0.43])]
WITH_NAN += [Record("b", "d", s, 0.3, NAN) for s in range(5)]


def test_a_seed_left_out_for_nan_is_counted_in_markdown_and_csv(tmp_path):
    md, table_csv = tmp_path / "t.md", tmp_path / "t.csv"
    lines = write_tables(WITH_NAN, str(md), str(table_csv)).splitlines()
    # prec@1 of a: mean of 0.40, 0.42, 0.41, 0.43 = 0.415, population std sqrt(0.000125) = 0.011.
    assert lines[2] == "| a | 0.415 (0.011), 4 of 5 seeds | 0.500 (0.000) |"
    assert lines[3] == "| b | 0.300 (0.000) | - |"
    with open(table_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seeds"], r["prec1_seeds"], r["prec2_seeds"]) for r in rows] == [
        ("5", "4", "5"),
        ("5", "5", "0"),
    ]


def test_write_tables_markdown_and_csv(tmp_path):
    md, table_csv = tmp_path / "t.md", tmp_path / "t.csv"
    text = write_tables(RECORDS, str(md), str(table_csv), methods=["iknn", "gan_lstm"])
    assert md.read_text() == text
    assert text.splitlines()[2].startswith("| iknn |")  # the given method order
    with open(table_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["dataset"]) for r in rows] == [
        ("iknn", "yelp"),
        ("gan_lstm", "yelp"),
        ("gan_lstm", "tb"),
    ]
    assert float(rows[1]["prec2_mean"]) == pytest.approx(0.85)
    assert rows[1]["seeds"] == "2"


def test_records_round_trip_and_bad_values(tmp_path):
    path = tmp_path / "records.csv"
    assert load_records(str(path)) == []
    save_records(str(path), RECORDS)
    assert load_records(str(path)) == RECORDS
    path.write_text("method,dataset,seed,prec1,prec2\niknn,yelp,0,0.5,0.7\niknn,tb,x,0.5,0.7\n")
    with pytest.raises(
        DataError,
        match=r"records.csv: line 3, field 'seed': expected an "
        r"integer, got 'x'",
    ):
        load_records(str(path))
    path.write_text("method,dataset,prec1\n")
    with pytest.raises(DataError, match="missing columns"):
        load_records(str(path))
