"""The feature marts as Dagster assets.

- dbt models in two selections: `tag:daily` (staging views of the daily landing tables and the
  incremental marts), partitioned by day and run as one dbt build over the partition window
  (single-run backfills), and `tag:static` (dimension views and the climatology), unpartitioned.
  dbt tests are their asset checks; dbt sources are the ingestion assets ["raw", T].
- Python assets for what dbt does not do well: climate clusters and spatial neighbour weights.
"""

import json
import os
from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from dagster_duckdb import DuckDBResource

from mmm_platform.config import get_settings
from mmm_platform.defs.features.project import dbt_project, ensure_manifest
from mmm_platform.defs.partitions import monthly_partitions
from mmm_platform.defs.resources import DUCKDB_POOL
from mmm_platform.features.climate import write_geo_clusters
from mmm_platform.features.spatial import write_geo_neighbors

GROUP = "features"


class FeaturesTranslator(DagsterDbtTranslator):
    """Models are keyed by their table (["staging", "stg_geo"], ["features", "geo_day"]) in group
    "features"; sources keep the key their meta names (["raw", T], the ingestion assets)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "model":
            return GROUP
        return super().get_group_name(dbt_resource_props)


def export_warehouse() -> None:
    """dbt reads MMM_WAREHOUSE from its environment: hand it the absolute path Python opens."""
    os.environ["MMM_WAREHOUSE"] = str(get_settings().warehouse)


def window_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The dbt vars of a partition window: inclusive dates (Dagster's window end is exclusive)."""
    return {
        "min_date": window.start.date().isoformat(),
        "max_date": (window.end - timedelta(days=1)).date().isoformat(),
    }


@cache
def dbt_feature_assets() -> tuple[dg.AssetsDefinition, dg.AssetsDefinition]:
    """The daily and the static dbt assets; built on first use, once the manifest is ready."""
    manifest = ensure_manifest()
    translator = FeaturesTranslator()

    @dbt_assets(
        manifest=manifest,
        project=dbt_project,
        select="tag:daily",
        name="dbt_features_daily",
        partitions_def=monthly_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        pool=DUCKDB_POOL,
    )
    def dbt_features_daily(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        export_warehouse()
        dbt_vars = json.dumps(window_vars(context.partition_time_window))
        yield from dbt.cli(["build", "--vars", dbt_vars], context=context).stream()

    @dbt_assets(
        manifest=manifest,
        project=dbt_project,
        select="tag:static",
        name="dbt_features_static",
        dagster_dbt_translator=translator,
        pool=DUCKDB_POOL,
    )
    def dbt_features_static(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        export_warehouse()
        yield from dbt.cli(["build"], context=context).stream()

    return dbt_features_daily, dbt_features_static


@dg.asset(
    key=["features", "geo_cluster"],
    deps=[dg.AssetKey(["features", "weather_climatology"])],
    group_name=GROUP,
    kinds={"python", "duckdb"},
    pool=DUCKDB_POOL,
)
def geo_cluster(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Climate cluster of every geo (KMeans on its climatology, k by silhouette)."""
    with duckdb.get_connection() as con:
        clusters = write_geo_clusters(con)
    sizes = clusters.assignments.group_by("cluster_id").len().sort("cluster_id")
    return dg.MaterializeResult(
        metadata={
            "k": clusters.k,
            "silhouette_by_k": dg.MetadataValue.json({str(k): s for k, s in clusters.silhouette_by_k.items()}),
            "cluster_sizes": dg.MetadataValue.md(sizes.to_pandas().to_markdown(index=False)),
            "dagster/row_count": clusters.assignments.height,
        }
    )


@dg.asset(
    key=["features", "geo_neighbors"],
    deps=[dg.AssetKey(["staging", "stg_geo"])],
    group_name=GROUP,
    kinds={"python", "duckdb"},
    pool=DUCKDB_POOL,
)
def geo_neighbors(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Spatial smoothing weights: each geo's nearest geos with Gaussian distance-kernel weights."""
    with duckdb.get_connection() as con:
        neighbors = write_geo_neighbors(con)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": neighbors.height,
            "median_neighbor_km": float(neighbors["distance_km"].median() or 0.0),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[*dbt_feature_assets(), geo_cluster, geo_neighbors],
        resources={"dbt": DbtCliResource(project_dir=dbt_project)},
    )
