"""Writing a world into a landing zone: one file per table and calendar month, plus truth.json."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mmm_platform.contracts import load_contract
from mmm_platform.simulate.world import World

#: in "mixed" format these tables are written as CSV, the rest as Parquet
CSV_IN_MIXED = frozenset({"calendar", "macro", "operations", "digital"})
FILE_FORMATS = ("parquet", "csv", "mixed")


def _write(frame: pl.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.write_csv(path, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S%.6f")
    else:
        frame.write_parquet(path, compression="zstd", statistics=True)
    return path


def write_landing(world: World, landing_dir: Path, file_format: str = "parquet") -> list[Path]:
    """`<landing_dir>/<table>/<table>_<YYYY-MM>.<ext>` per partition month (`<table>.<ext>` when the
    table has no partition column) and `<landing_dir>/truth.json`; returns the written paths."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, not {file_format!r}")
    contract = load_contract()
    landing_dir = Path(landing_dir)
    written = []
    for name, frame in world.tables.items():
        csv = file_format == "csv" or (file_format == "mixed" and name in CSV_IN_MIXED)
        ext = "csv" if csv else "parquet"
        folder = landing_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        column = contract.tables[name].partition_column
        if column is None:
            written.append(_write(frame, folder / f"{name}.{ext}"))
            continue
        months = frame.get_column(column).dt.strftime("%Y-%m")
        for (month,), part in (
            frame.with_columns(months.alias("__month"))
            .partition_by("__month", as_dict=True, maintain_order=True, include_key=False)
            .items()
        ):
            written.append(_write(part, folder / f"{name}_{month}.{ext}"))
    truth = landing_dir / "truth.json"
    truth.write_text(json.dumps(world.truth, indent=2) + "\n")
    written.append(truth)
    return written
