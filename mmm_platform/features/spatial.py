"""Spatial smoothing between geos: neighbour weights from latitude and longitude, and a shrinkage of
each geo's value towards its neighbours' so that a sparse geo borrows strength from the geos near it.

Weights are Gaussian kernel weights over the k nearest neighbours (great-circle distance), each
geo's weights summing to 1. The bandwidth defaults to the median distance to the k-th nearest
neighbour, so it adapts to how dense the geo network is.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import polars as pl

#: mean Earth radius (IUGG), km
EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts like numpy)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = phi2 - phi1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def neighbor_weights(geo: pl.DataFrame, k: int = 5, bandwidth_km: float | None = None) -> pl.DataFrame:
    """geo_id, neighbor_geo_id, rank (1 = nearest), distance_km, weight for the k nearest neighbours of
    every geo in `geo` (columns geo_id, latitude, longitude); a geo is never its own neighbour."""
    geo = geo.sort("geo_id")
    ids = geo["geo_id"].to_list()
    lat, lon = geo["latitude"].to_numpy(), geo["longitude"].to_numpy()
    distances = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    k = min(k, len(ids) - 1)
    if k < 1:
        return pl.DataFrame(
            schema={
                "geo_id": pl.String,
                "neighbor_geo_id": pl.String,
                "rank": pl.Int64,
                "distance_km": pl.Float64,
                "weight": pl.Float64,
            }
        )
    np.fill_diagonal(distances, np.inf)
    # ties broken by geo_id (the sort above), so the neighbours are deterministic
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    nearest_km = np.take_along_axis(distances, nearest, axis=1)
    if bandwidth_km is None:
        bandwidth_km = float(np.median(nearest_km[:, -1])) or 1.0
    kernel = np.exp(-0.5 * (nearest_km / bandwidth_km) ** 2)
    # a geo whose neighbours are all far beyond the bandwidth still gets the nearest ones, equally
    kernel = np.where(kernel.sum(axis=1, keepdims=True) > 0, kernel, 1.0)
    weights = kernel / kernel.sum(axis=1, keepdims=True)
    return pl.DataFrame(
        {
            "geo_id": np.repeat(ids, k),
            "neighbor_geo_id": [ids[j] for j in nearest.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(ids)),
            "distance_km": nearest_km.ravel(),
            "weight": weights.ravel(),
        }
    )


def spatial_smooth(
    values: pl.DataFrame,
    weights: pl.DataFrame,
    value: str = "value",
    evidence: str | None = None,
    prior_strength: float = 1.0,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """Shrink each geo's `value` towards the weighted mean of its neighbours' values.

    smoothed = (n * value + prior_strength * neighbor_mean) / (n + prior_strength), where n is the
    geo's `evidence` column (e.g. days observed, or an estimate's precision; 1 when not given), so a
    geo with little evidence moves most. A geo with no value of its own gets its neighbours' mean;
    neighbours without a value are left out and the remaining weights renormalised. With `by` (e.g.
    ["date"]) every slice is smoothed on its own, which smooths a series day by day.
    Returns *by, geo_id, value, neighbor_mean, smoothed.
    """
    keys = [*by, "geo_id"]
    own = values.select(
        *keys,
        pl.col(value).alias("own"),
        (pl.col(evidence) if evidence else pl.lit(1.0)).cast(pl.Float64).alias("n"),
    )
    neighbours = own.filter(pl.col("own").is_not_null()).rename({"geo_id": "neighbor_geo_id"})
    pooled = (
        weights.join(neighbours, on="neighbor_geo_id")
        .group_by(keys)
        .agg(((pl.col("weight") * pl.col("own")).sum() / pl.col("weight").sum()).alias("neighbor_mean"))
    )
    slices = values.select(*by).unique() if by else pl.DataFrame({"_all": [0]})
    every_geo = weights.select("geo_id").unique().join(slices, how="cross").drop("_all", strict=False)
    grid = pl.concat([every_geo, own.select(keys)], how="diagonal").unique()
    smoothed = (
        grid.join(own, on=keys, how="left")
        .join(pooled, on=keys, how="left")
        .with_columns(
            pl.when(pl.col("own").is_null())
            .then(pl.col("neighbor_mean"))
            .when(pl.col("neighbor_mean").is_null())
            .then(pl.col("own"))
            .otherwise(
                (pl.col("n") * pl.col("own") + prior_strength * pl.col("neighbor_mean"))
                / (pl.col("n") + prior_strength)
            )
            .alias("smoothed")
        )
    )
    return smoothed.select(*keys, pl.col("own").alias(value), "neighbor_mean", "smoothed").sort(keys)


def write_geo_neighbors(con: duckdb.DuckDBPyConnection, k: int = 5, bandwidth_km: float | None = None) -> pl.DataFrame:
    """Replace features.geo_neighbors with the neighbour weights of the geos in staging.stg_geo."""
    geo = con.sql("SELECT geo_id, latitude, longitude FROM staging.stg_geo").pl()
    neighbors = neighbor_weights(geo, k=k, bandwidth_km=bandwidth_km)
    con.register("neighbors", neighbors)
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    con.execute("CREATE OR REPLACE TABLE features.geo_neighbors AS SELECT * FROM neighbors")
    con.unregister("neighbors")
    return neighbors
