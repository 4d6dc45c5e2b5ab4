"""The comparison table: methods x datasets, prec@1 and prec@2 as mean (std) over seeds.

Input is a list of `Record`s, one per (method, dataset, seed) run; `write_tables` writes the
Markdown table and a CSV with the same cells (mean, std and seed count as separate columns).
A seed whose figure is NaN (a run with no clicked test event) is left out of its cell's mean
and std; a Markdown cell over fewer than all the table's seeds says over how many ("0.412
(0.010), 4 of 5 seeds"), and the CSV gives every figure's count (`prec1_seeds`) besides the
seeds with a record (`seeds`). The standard deviation is the population one (numpy's
default, ddof=0), as in `benchmarks/bench_generalisation.py`. Records can be kept in a CSV
between runs (`save_records` / `load_records`), so finished runs are reused rather than
retrained.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import math
import os
from typing import Any, Callable

import numpy as np

from ganrl.data import safe_io
from ganrl.data.safe_io import DataError

METRICS = ("prec1", "prec2")
METRIC_TITLES = {"prec1": "prec@1", "prec2": "prec@2"}
RECORD_FIELDS = ("method", "dataset", "seed", "prec1", "prec2")


@dataclasses.dataclass(frozen=True)
class Record:
    """Test figures of one run."""

    method: str
    dataset: str
    seed: int
    prec1: float
    prec2: float


@dataclasses.dataclass(frozen=True)
class Cell:
    """Mean and population std of one metric over `n` seeds (NaN when n == 0)."""

    mean: float
    std: float
    n: int

    def text(self, table_seeds: int) -> str:
        """`mean (std)`, with ", n of N seeds" when the cell has fewer than the table's N
        seeds; '-' when it has none."""
        if self.n == 0 or math.isnan(self.mean):
            return "-"
        text = f"{self.mean:.3f} ({self.std:.3f})"
        return text if self.n >= table_seeds else f"{text}, {self.n} of {table_seeds} seeds"


def ordered_unique(values: list[str]) -> list[str]:
    """`values` without repeats, in order of first appearance."""
    return list(dict.fromkeys(values))


def aggregate(records: list[Record]) -> dict[tuple[str, str], dict[str, Cell]]:
    """Cells of every (method, dataset) present: `{(method, dataset): {metric: Cell}}`.

    Raises:
      ValueError: two records share method, dataset and seed.
    """
    seen, groups = set(), {}
    for r in records:
        key = (r.method, r.dataset, r.seed)
        if key in seen:
            raise ValueError(
                f"two records for method {r.method!r}, dataset {r.dataset!r}, seed {r.seed}"
            )
        seen.add(key)
        groups.setdefault((r.method, r.dataset), []).append(r)
    out = {}
    for key, group in groups.items():
        out[key] = {}
        for metric in METRICS:
            values = np.array([getattr(r, metric) for r in group], dtype=np.float64)
            values = values[~np.isnan(values)]
            out[key][metric] = (
                Cell(float(values.mean()), float(values.std()), len(values))
                if len(values)
                else Cell(float("nan"), float("nan"), 0)
            )
    return out


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table (a trailing newline included)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table_layout(
    records: list[Record], methods: list[str] | None = None, datasets: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Row (method) and column (dataset) order: the given lists, else first appearance."""
    return (
        list(methods) if methods else ordered_unique([r.method for r in records]),
        list(datasets) if datasets else ordered_unique([r.dataset for r in records]),
    )


def markdown(
    records: list[Record], methods: list[str] | None = None, datasets: list[str] | None = None
) -> str:
    """Methods as rows; per dataset a prec@1 and a prec@2 column, `mean (std)` (`Cell.text`:
    the seed count where a cell has fewer than the records' seeds); '-' where a method has no
    figure on a dataset."""
    cells = aggregate(records)
    table_seeds = len({r.seed for r in records})
    methods, datasets = table_layout(records, methods, datasets)
    header = ["method"] + [f"{d} {METRIC_TITLES[m]}" for d in datasets for m in METRICS]
    empty = {m: Cell(float("nan"), float("nan"), 0) for m in METRICS}
    rows = [
        [method]
        + [cells.get((method, d), empty)[m].text(table_seeds) for d in datasets for m in METRICS]
        for method in methods
    ]
    return markdown_table(header, rows)


CSV_FIELDS = (
    "method",
    "dataset",
    "seeds",
    *(f"{m}_{s}" for m in METRICS for s in ("mean", "std", "seeds")),
)


def csv_rows(
    records: list[Record], methods: list[str] | None = None, datasets: list[str] | None = None
) -> list[dict]:
    """One row per (method, dataset) that has records, in table order (`CSV_FIELDS`): `seeds`
    the seeds with a record, `{metric}_seeds` those whose figure the mean and std are over."""
    cells = aggregate(records)
    recorded = collections.Counter((r.method, r.dataset) for r in records)
    methods, datasets = table_layout(records, methods, datasets)
    rows = []
    for method in methods:
        for dataset in datasets:
            if (method, dataset) not in cells:
                continue
            c = cells[(method, dataset)]
            rows.append(
                {
                    "method": method,
                    "dataset": dataset,
                    "seeds": recorded[(method, dataset)],
                    **{f"{m}_{s}": getattr(c[m], s) for m in METRICS for s in ("mean", "std")},
                    **{f"{m}_seeds": c[m].n for m in METRICS},
                }
            )
    return rows


def write_tables(
    records: list[Record],
    markdown_path: str,
    csv_path: str,
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
) -> str:
    """Writes the Markdown and the CSV table (atomically); returns the Markdown."""
    text = markdown(records, methods, datasets)
    with safe_io.atomic_open(markdown_path, "w") as f:
        f.write(text)
    safe_io.write_csv_rows(
        csv_path, CSV_FIELDS, csv_rows(records, methods, datasets), lineterminator="\n"
    )
    return text


def save_records(path: str, records: list[Record]) -> None:
    """Writes the per-run records as CSV (`RECORD_FIELDS`), atomically."""
    safe_io.write_csv_rows(
        path, RECORD_FIELDS, (dataclasses.asdict(r) for r in records), lineterminator="\n"
    )


def read_typed_csv(path: str, parsers: dict[str, Callable[[str], Any]]) -> list[dict]:
    """Rows of a CSV with a header, each column of `parsers` converted by its parser (`int`,
    `float`, `str`, ...); other columns are dropped. A last row with fewer fields than the
    header, which a run killed while appending leaves, is dropped (as a resumed run drops it,
    `safe_io.read_csv_rows`).

    Raises:
      DataError: a missing column, a row of the wrong width before the last, or a value its
        parser refuses, naming file, line, field.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in parsers if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path}: line 1: missing columns {missing}; expected the header "
                f"to hold {','.join(parsers)}"
            )
        rows, cut = [], None
        for raw in reader:
            if cut is not None:
                raise DataError(
                    f"{path}: line {cut}: expected {len(reader.fieldnames)} fields as in the "
                    "header, got fewer"
                )
            if None in raw:  # more fields than the header: never a cut row
                raise DataError(
                    f"{path}: line {reader.line_num}: expected {len(reader.fieldnames)} "
                    "fields as in the header, got more"
                )
            if None in raw.values():  # fewer: a cut row if it is the last
                cut = reader.line_num
                continue
            row = {}
            for column, parse in parsers.items():
                try:
                    row[column] = parse(raw[column])
                except (TypeError, ValueError):
                    kind = "an integer" if parse is int else "a number"
                    raise DataError(
                        f"{path}: line {reader.line_num}, field '{column}': "
                        f"expected {kind}, got {raw[column]!r}"
                    ) from None
            rows.append(row)
    return rows


def load_records(path: str) -> list[Record]:
    """Reads records written by `save_records` (an absent file: none).

    Raises:
      DataError: a missing column or a value that is not a number, naming file, line, field.
    """
    if not os.path.exists(path):
        return []
    parsers = {"method": str, "dataset": str, "seed": int, "prec1": float, "prec2": float}
    return [Record(**row) for row in read_typed_csv(path, parsers)]
