"""Turning (geo, day, ...) arrays into contract-shaped polars frames without Python loops over rows.

Every daily table is ordered by date, then geo, then its other key columns, so a calendar month is
a contiguous block of rows when the landing files are written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from mmm_platform.contracts import load_contract

POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us"),
}


def schema(table: str) -> dict[str, pl.DataType]:
    """The polars schema a landing table must have, read from the contract."""
    return {c.name: POLARS_TYPES[c.type] for c in load_contract().tables[table].columns}


def conform(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Exactly the contract's columns, in its order, with its types (a missing column is a bug here)."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema(table).items()])


def date_series(name: str, epoch_days: np.ndarray) -> pl.Series:
    return pl.Series(name, np.asarray(epoch_days, dtype=np.int32)).cast(pl.Date)


def string_series(name: str, values: Sequence[str], codes: np.ndarray) -> pl.Series:
    """values[code] per row, null where code < 0 (a gather, far faster than building Python strings)."""
    lookup = pl.Series(name, [*values, None], dtype=pl.String)
    return lookup.gather(np.where(np.asarray(codes) < 0, len(values), codes))


def panel_values(a: np.ndarray, n_days: int) -> np.ndarray:
    """A (G, T, ...) array's first n_days as rows ordered by day, then geo, then the trailing axes."""
    return np.swapaxes(a[:, :n_days], 0, 1).ravel()


def panel_keys(geo_ids: Sequence[str], epoch_days: np.ndarray, inner: int = 1) -> list[pl.Series]:
    """geo_id and date columns for rows ordered by day, then geo (each repeated `inner` times)."""
    n_g = len(geo_ids)
    geo_codes = np.repeat(np.tile(np.arange(n_g), len(epoch_days)), inner)
    return [
        string_series("geo_id", geo_ids, geo_codes),
        date_series("date", np.repeat(epoch_days, n_g * inner)),
    ]


def panel_frame(
    table: str,
    geo_ids: Sequence[str],
    epoch_days: np.ndarray,
    columns: dict[str, np.ndarray | pl.Series],
    inner: tuple[str, Sequence[str]] | None = None,
) -> pl.DataFrame:
    """A (date, geo[, inner key]) table from (G, T[, K]) arrays (NaN -> null) or ready, flattened series;
    `inner` names the third key column and its values (a sku_id or category_l1 per slot of axis 2)."""
    n_days, n_geos = len(epoch_days), len(geo_ids)
    keys = panel_keys(geo_ids, epoch_days, inner=1 if inner is None else len(inner[1]))
    if inner is not None:
        name, values = inner
        keys.append(string_series(name, values, np.tile(np.arange(len(values)), n_days * n_geos)))
    series = [
        v if isinstance(v, pl.Series) else pl.Series(k, panel_values(v, n_days), nan_to_null=True)
        for k, v in columns.items()
    ]
    return conform(table, pl.DataFrame([*keys, *series]))
