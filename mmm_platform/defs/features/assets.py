"""The feature marts as Dagster assets.

- every dbt model, monthly-partitioned, run as one dbt build over the partition window
  (single-run backfills): the incremental marts rewrite the window, views and the climatology are
  rebuilt whole.
  dbt tests are their asset checks; dbt sources are the ingestion assets ["raw", T].
- Python assets for what dbt does not do well: climate clusters and spatial neighbour weights.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import cache, cached_property
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, dbt_assets
from packaging import version

from mmm_platform.config import get_settings
from mmm_platform.defs.features.in_process import environment, invocations_in_process
from mmm_platform.defs.features.project import dbt_project, ensure_manifest
from mmm_platform.defs.figures import table_metadata
from mmm_platform.defs.partitions import monthly_partitions
from mmm_platform.defs.resources import DUCKDB_POOL, WarehouseResource
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


def window_env(window: dg.TimeWindow | None) -> dict[str, str]:
    """The environment a dbt run reads its window from (macros/windows.sql): inclusive dates
    (Dagster's window end is exclusive); no window, all history. Not `--vars`: changed vars make
    dbt re-parse the whole project on every run (5-8 s here)."""
    if window is None:
        return {"MMM_DBT_MIN_DATE": "", "MMM_DBT_MAX_DATE": ""}
    return {
        "MMM_DBT_MIN_DATE": window.start.date().isoformat(),
        "MMM_DBT_MAX_DATE": (window.end - timedelta(days=1)).date().isoformat(),
    }


@contextmanager
def dbt_environment(window: dg.TimeWindow | None) -> Iterator[None]:
    """dbt reads this process's environment (dagster-dbt copies it into the invocation's): the
    warehouse Python opens (absolute) and the window, for the length of one invocation."""
    with environment({"MMM_WAREHOUSE": str(get_settings().warehouse)} | window_env(window)):
        yield


#: one target folder for every invocation (dagster-dbt's default is a new one per run), so dbt's
#: partial-parse state survives from one run to the next; runs of the pool never overlap
TARGET = dbt_project.project_dir / dbt_project.target_path


class DbtResource(DbtCliResource):
    """dagster-dbt's resource without two costs this platform never uses, about 9 s per dbt step
    measured here: it runs `dbt --version` in a subprocess on each invocation (a Python start-up
    that imports dbt: 2-7 s) to learn a version the installed package states, and it builds a dbt
    adapter inside this process (profile, project and adapter loading: 2-4 s) that only serves
    fetch_row_counts / fetch_column_metadata, which need their own connection to the DuckDB file
    while dbt holds its write lock, so they are not used here.
    Both are private hooks of dagster-dbt 0.29 (pinned); tests/test_features_dagster.py checks them."""

    @cached_property
    def _cli_version(self) -> version.Version:
        import dbt.version

        return version.parse(dbt.version.__version__)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None

    def cli(self, args: Sequence[str], **kwargs: Any) -> DbtCliInvocation:
        """dbt in this process (defs/features/in_process.py): about 2.5 s less per dbt step."""
        with invocations_in_process():
            return super().cli(args, **kwargs)


@cache
def dbt_features() -> dg.AssetsDefinition:
    """Every dbt model as one monthly-partitioned multi-asset, run as one `dbt build` per run
    (one dbt start-up and parse, not one per selection): the incremental marts rewrite the run's
    window, the staging views and the climatology are rebuilt whole (they take well under a second).
    Built on first use, once the manifest is ready."""

    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project,
        name="dbt_features",
        partitions_def=monthly_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=FeaturesTranslator(),
        pool=DUCKDB_POOL,
    )
    def _dbt(context: dg.AssetExecutionContext, dbt: DbtResource) -> Iterator[Any]:
        with dbt_environment(context.partition_time_window):
            yield from dbt.cli(["build"], context=context, target_path=TARGET).stream()

    return _dbt


@dg.asset(
    key=["features", "geo_cluster"],
    deps=[dg.AssetKey(["features", "weather_climatology"])],
    group_name=GROUP,
    kinds={"python", "duckdb"},
    pool=DUCKDB_POOL,
)
def geo_cluster(duckdb: WarehouseResource) -> dg.MaterializeResult:
    """Climate cluster of every geo (KMeans on its climatology, k by silhouette)."""
    with duckdb.get_connection() as con:
        clusters = write_geo_clusters(con)
    sizes = clusters.assignments.group_by("cluster_id").len().sort("cluster_id")
    return dg.MaterializeResult(
        metadata={
            "k": clusters.k,
            "silhouette_by_k": dg.MetadataValue.json({str(k): s for k, s in clusters.silhouette_by_k.items()}),
            "cluster_sizes": table_metadata(sizes.to_pandas()),
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
def geo_neighbors(duckdb: WarehouseResource) -> dg.MaterializeResult:
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
        assets=[dbt_features(), geo_cluster, geo_neighbors],
        resources={"dbt": DbtResource(project_dir=dbt_project)},
    )
