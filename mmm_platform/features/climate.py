"""Climate clusters: geos grouped on their own climatology.

Geos with the same climate respond to weather alike, so a model can pool weather effects within a
cluster and a sparse geo can borrow from its cluster. The input is the dbt mart
features.weather_climatology (day-of-year normals per geo); each geo is described by the monthly
means of its temperature, precipitation, humidity and snowfall normals, every column standardised
so that each month and variable weighs the same. k is the one with the best mean silhouette (ties go
to the smaller k); KMeans runs with a fixed seed and clusters are numbered from the coldest, so the
same climatology always gives the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

#: climatology columns that describe a geo's climate
CLIMATE_VARIABLES = ("temp_mean_normal_c", "precip_normal_mm", "humidity_normal_pct", "snowfall_normal_cm")


@dataclass(frozen=True)
class ClimateClusters:
    #: geo_id, cluster_id (0 = coldest cluster), silhouette (of the geo, in the chosen clustering)
    assignments: pl.DataFrame
    k: int
    #: mean silhouette of every k tried; empty when there are too few geos to choose
    silhouette_by_k: dict[int, float]


def climate_profiles(climatology: pl.DataFrame) -> pl.DataFrame:
    """One row per geo and one column per variable and month: the monthly means of its normals."""
    months = (pl.date(2001, 1, 1) + pl.duration(days=pl.col("doy") - 1)).dt.month()
    monthly = climatology.group_by("geo_id", months.alias("month")).agg(pl.col(CLIMATE_VARIABLES).mean())
    wide = monthly.pivot(on="month", index="geo_id", values=list(CLIMATE_VARIABLES), sort_columns=True)
    return wide.sort("geo_id")


def cluster_climates(profiles: pl.DataFrame, k_max: int = 8, seed: int = 0) -> ClimateClusters:
    """Cluster the geos of `profiles` (climate_profiles) with KMeans, k chosen by silhouette."""
    # imported here, not at the top: scikit-learn costs 3 s to import, and every process that loads
    # the Dagster definitions (each CLI call, each run) would pay it
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_samples, silhouette_score

    geo_ids = profiles["geo_id"]
    features = profiles.drop("geo_id").to_numpy().astype(float)
    # a month without normals (short history) takes the variable's mean over geos for that month
    features = np.where(np.isnan(features), np.nanmean(features, axis=0), features)
    features = np.nan_to_num(features)
    spread = features.std(axis=0)
    standardized = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)

    n_geos = len(geo_ids)
    candidates = range(2, min(k_max, n_geos - 1) + 1)
    fits = {k: KMeans(n_clusters=k, n_init=10, random_state=seed).fit(standardized) for k in candidates}
    scores = {k: float(silhouette_score(standardized, fit.labels_)) for k, fit in fits.items()}
    if not scores:  # two geos or fewer: one cluster
        labels, k, per_geo = np.zeros(n_geos, dtype=int), 1, np.zeros(n_geos)
    else:
        k = max(scores, key=lambda c: (round(scores[c], 9), -c))
        labels = fits[k].labels_
        per_geo = silhouette_samples(standardized, labels)

    temperature = profiles.select(pl.selectors.starts_with("temp_mean_normal_c")).to_numpy().mean(axis=1)
    order = sorted(set(labels), key=lambda label: (np.nanmean(temperature[labels == label]), label))
    renumber = {label: rank for rank, label in enumerate(order)}
    assignments = pl.DataFrame(
        {
            "geo_id": geo_ids,
            "cluster_id": [renumber[label] for label in labels],
            "silhouette": per_geo,
        }
    )
    return ClimateClusters(assignments=assignments, k=k, silhouette_by_k=scores)


def write_geo_clusters(con: duckdb.DuckDBPyConnection, k_max: int = 8, seed: int = 0) -> ClimateClusters:
    """Cluster the geos of features.weather_climatology and replace features.geo_cluster with them."""
    climatology = con.sql("SELECT * FROM features.weather_climatology").pl()
    clusters = cluster_climates(climate_profiles(climatology), k_max=k_max, seed=seed)
    assignments = clusters.assignments.with_columns(pl.lit(clusters.k).alias("k"))
    con.register("assignments", assignments)
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    con.execute("CREATE OR REPLACE TABLE features.geo_cluster AS SELECT * FROM assignments")
    con.unregister("assignments")
    return clusters
