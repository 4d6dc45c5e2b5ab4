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
    assert lines[2] == (
        "| gan_lstm | 0.750 (0.050) | 0.850 (0.050) | 0.300 (0.000) | 0.500 (0.000) |"
    )
    assert lines[3] == "| iknn | 0.500 (0.000) | 0.700 (0.000) | - | - |"


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
