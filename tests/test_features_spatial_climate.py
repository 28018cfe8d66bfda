"""Climate clusters and spatial smoothing (mmm_platform.features) on small inputs with known answers."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from mmm_platform.features.climate import climate_profiles, cluster_climates, write_geo_clusters
from mmm_platform.features.spatial import haversine_km, neighbor_weights, spatial_smooth, write_geo_neighbors

#: three climates: cold and snowy, hot and dry, mild and wet; three geos each
CLIMATES = {"cold": (0.0, 2.0, 70.0, 2.0), "hot": (28.0, 0.5, 30.0, 0.0), "mild": (15.0, 5.0, 85.0, 0.0)}


def climatology(seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for zone, (temp, precip, humidity, snow) in CLIMATES.items():
        for i in range(3):
            for doy in range(1, 366):
                season = 10 * np.sin(2 * np.pi * (doy - 100) / 365)
                rows.append(
                    {
                        "geo_id": f"{zone}{i}",
                        "doy": doy,
                        "temp_mean_normal_c": temp + season + rng.normal(0, 0.5),
                        "precip_normal_mm": precip + rng.normal(0, 0.1),
                        "humidity_normal_pct": humidity + rng.normal(0, 1),
                        "snowfall_normal_cm": snow,
                    }
                )
    return pl.DataFrame(rows)


def test_profiles_are_monthly_means_per_geo() -> None:
    profiles = climate_profiles(climatology())
    assert profiles.height == 9
    assert profiles.width == 1 + 4 * 12
    january = profiles.filter(pl.col("geo_id") == "hot0")["precip_normal_mm_1"][0]
    assert january == pytest.approx(0.5, abs=0.1)


def test_clusters_recover_the_climates_by_silhouette() -> None:
    clusters = cluster_climates(climate_profiles(climatology()))
    assert clusters.k == 3
    assert max(clusters.silhouette_by_k, key=clusters.silhouette_by_k.get) == 3
    by_geo = dict(clusters.assignments.select("geo_id", "cluster_id").iter_rows())
    # numbered from the coldest: cold 0, mild 1, hot 2
    assert {by_geo[f"cold{i}"] for i in range(3)} == {0}
    assert {by_geo[f"mild{i}"] for i in range(3)} == {1}
    assert {by_geo[f"hot{i}"] for i in range(3)} == {2}
    # deterministic: another run (and another noise draw of the same climates) gives the same labels
    again = cluster_climates(climate_profiles(climatology(seed=1)))
    assert dict(again.assignments.select("geo_id", "cluster_id").iter_rows()) == by_geo


def test_two_geos_make_one_cluster() -> None:
    few = climatology().filter(pl.col("geo_id").is_in(["cold0", "hot0"]))
    clusters = cluster_climates(climate_profiles(few))
    assert clusters.k == 1 and clusters.silhouette_by_k == {}
    assert clusters.assignments["cluster_id"].to_list() == [0, 0]


def test_haversine_known_distances() -> None:
    assert haversine_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(111.195, abs=0.01)  # one degree on the equator
    assert haversine_km(40.7128, -74.0060, 34.0522, -118.2437) == pytest.approx(3936, abs=5)  # NYC - LA
    assert haversine_km(10.0, 20.0, 10.0, 20.0) == 0.0


GEO = pl.DataFrame(
    {
        "geo_id": ["A", "B", "C", "D"],
        "latitude": [0.0, 0.0, 0.0, 0.0],
        "longitude": [0.0, 1.0, 2.0, 10.0],
    }
)


def test_neighbor_weights_nearest_first_and_normalised() -> None:
    weights = neighbor_weights(GEO, k=2, bandwidth_km=100.0)
    a = weights.filter(pl.col("geo_id") == "A")
    assert a["neighbor_geo_id"].to_list() == ["B", "C"] and a["rank"].to_list() == [1, 2]
    # Gaussian kernel: exp(-d^2 / 2h^2) at ~111 km and ~222 km, normalised
    near, far = np.exp(-0.5 * (111.195 / 100) ** 2), np.exp(-0.5 * (222.39 / 100) ** 2)
    assert a["weight"].to_list() == pytest.approx([near / (near + far), far / (near + far)], rel=1e-3)
    sums = weights.group_by("geo_id").agg(pl.col("weight").sum())["weight"]
    assert sums.to_list() == pytest.approx([1.0] * 4)
    assert weights.filter(pl.col("geo_id") == pl.col("neighbor_geo_id")).is_empty()
    # D is far from everyone: it still gets its nearest neighbours
    assert weights.filter(pl.col("geo_id") == "D")["neighbor_geo_id"].to_list() == ["C", "B"]
    assert neighbor_weights(GEO.head(1)).is_empty()


def test_spatial_smoothing_shrinks_sparse_geos_most() -> None:
    weights = pl.DataFrame(
        {
            "geo_id": ["A", "A", "B", "B", "C", "C"],
            "neighbor_geo_id": ["B", "C", "A", "C", "A", "B"],
            "weight": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        }
    )
    values = pl.DataFrame({"geo_id": ["A", "B"], "value": [10.0, 20.0], "days": [9.0, 0.0]})
    out = {r["geo_id"]: r for r in spatial_smooth(values, weights, evidence="days", prior_strength=1.0).to_dicts()}
    assert out["A"]["neighbor_mean"] == 20.0  # C has no value: B alone, weights renormalised
    assert out["A"]["smoothed"] == pytest.approx((9 * 10 + 20) / 10)
    assert out["B"]["smoothed"] == 10.0  # no evidence of its own: its neighbours' mean
    assert out["C"]["value"] is None and out["C"]["smoothed"] == 15.0


def test_spatial_smoothing_of_a_series_is_per_date() -> None:
    weights = neighbor_weights(GEO.head(3), k=2, bandwidth_km=1000.0)
    series = pl.DataFrame(
        {"date": [1, 1, 1, 2, 2], "geo_id": ["A", "B", "C", "A", "B"], "value": [1.0, 1.0, 1.0, 5.0, 5.0]}
    )
    out = spatial_smooth(series, weights, by=["date"])
    assert out.filter(pl.col("date") == 1)["smoothed"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert out.filter(pl.col("date") == 2)["smoothed"].to_list() == pytest.approx([5.0, 5.0, 5.0])


def test_tables_written_to_the_warehouse() -> None:
    with duckdb.connect() as con:
        con.register("geo", GEO)
        con.register("climatology", climatology())
        con.execute("CREATE SCHEMA staging")
        con.execute("CREATE TABLE staging.stg_geo AS SELECT * FROM geo")
        con.execute("CREATE SCHEMA features")
        con.execute("CREATE TABLE features.weather_climatology AS SELECT * FROM climatology")
        write_geo_clusters(con)
        write_geo_neighbors(con, k=2)
        assert con.sql("SELECT count(*), max(k) FROM features.geo_cluster").fetchone() == (9, 3)
        assert con.sql("SELECT count(*) FROM features.geo_neighbors").fetchone() == (8,)
