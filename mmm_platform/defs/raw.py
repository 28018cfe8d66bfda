"""Ingestion: one asset per landing table (raw/<table>), each with its data-quality checks, and
one asset for the landing zone as a whole (ingest/landing_zone) with its layout check.

Generated from the landing contract, so a new table in the contract is a new asset here.
"""

import datetime as dt

import dagster as dg

from mmm_platform.config import get_settings
from mmm_platform.contracts import Table, load_contract
from mmm_platform.defs.checks import check_result
from mmm_platform.defs.partitions import PARTITION_START, monthly_partitions, window_of
from mmm_platform.defs.resources import DUCKDB_POOL, WarehouseResource
from mmm_platform.ingest.landing import scan_zone
from mmm_platform.ingest.load import LoadResult, ingest_table
from mmm_platform.quality.checks import (
    CHECKS,
    CheckContext,
    landing_zone_layout,
    null_coverage,
)
from mmm_platform.quality.gx_suite import prefetch
from mmm_platform.quality.suites import load_suite
from mmm_platform.warehouse import Window

GEO_KEY = dg.AssetKey(["raw", "geo"])
LANDING_ZONE_KEY = dg.AssetKey(["ingest", "landing_zone"])


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def _window(start_key: str, end_key: str) -> Window:
    return Window(*window_of(start_key, end_key))


def asset_window(context: dg.AssetExecutionContext, table: Table) -> Window | None:
    if not table.is_partitioned:
        return None
    keys = context.partition_key_range
    return _window(keys.start, keys.end)


def _metadata(result: LoadResult, coverage: dict[str, float], total_rows: int, latest: dt.date | None) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(total_rows),
        "rows_written": dg.MetadataValue.int(result.rows_written),
        "source_files": dg.MetadataValue.json(result.loaded_from),
        "refused_files": dg.MetadataValue.json({f.file.name: f.reason for f in result.refused}),
        "missing_files": dg.MetadataValue.json(result.missing),
        "files_checked": dg.MetadataValue.int(result.checked),
        "null_coverage": dg.MetadataValue.json({k: round(v, 4) for k, v in coverage.items()}),
        "freshness_latest_date": dg.MetadataValue.text(str(latest) if latest else "no rows"),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        **({"skipped": dg.MetadataValue.text(result.skipped)} if result.skipped else {}),
    }


def _check_context(con, table: Table, window: Window | None) -> CheckContext:  # con: duckdb connection
    settings = get_settings()
    return CheckContext(
        con, table, window, dt.date.today(), PARTITION_START, settings.freshness_days, settings.landing_dir
    )


def build_raw_asset(table: Table) -> dg.AssetsDefinition:
    """raw/<table>, with its four checks evaluated in the same step, on the same connection, over
    the window it just loaded: one step per table instead of five (each step costs a connection,
    events and Dagster's step overhead; about 7 s over the 17 tables of a run)."""
    contract = load_contract()
    key = raw_key(table.name)

    @dg.asset(
        key=key,
        group_name="raw",
        kinds={"duckdb"},
        description=f"Landing table `{table.name}` loaded from MMM_LANDING_DIR/{table.name}/, "
        f"key ({', '.join(table.key)}). Refused files go to ingest.quarantine.",
        partitions_def=monthly_partitions if table.is_partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if table.is_partitioned else None,
        deps=[GEO_KEY] if table.references_geo else None,
        metadata={"partition_expr": table.partition_column} if table.is_partitioned else None,
        check_specs=[
            dg.AssetCheckSpec(spec.name, asset=key, description=spec.description, blocking=spec.blocking)
            for spec in CHECKS
        ],
        pool=DUCKDB_POOL,
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
        window = asset_window(context, table)
        if load_suite(table.name).expectations:
            prefetch()  # GX's worker imports while the files load (the CLI started it already)
        with duckdb.get_connection() as con:
            result = ingest_table(
                con,
                contract,
                table.name,
                get_settings().landing_dir,
                window=window,
                run_id=context.run_id,
                partition_start=PARTITION_START,
            )
            ctx = _check_context(con, table, window)
            checks = [check_result(spec.run(ctx), check_name=spec.name) for spec in CHECKS]
            coverage = null_coverage(ctx)
            total = con.execute(f'SELECT count(*) FROM raw."{table.name}"').fetchone()[0]
            latest = (
                con.execute(f'SELECT max("{table.partition_column}") FROM raw."{table.name}"').fetchone()[0]
                if table.is_partitioned
                else None
            )
        context.log.info(
            f"raw/{table.name}: {result.rows_written} rows from {len(result.loaded_from)} file(s), "
            f"{len(result.refused)} refused, {result.seconds:.2f}s"
        )
        return dg.MaterializeResult(metadata=_metadata(result, coverage, total, latest), check_results=checks)

    return _asset


@dg.asset(
    key=LANDING_ZONE_KEY,
    group_name="raw",
    kinds={"python"},
    description="The landing zone (MMM_LANDING_DIR) as a whole: table folders, files and bytes, and "
    "anything at its root that no landing table claims (reported by the layout check, never read).",
    check_specs=[
        dg.AssetCheckSpec(
            "landing_zone_layout",
            asset=LANDING_ZONE_KEY,
            description="Every folder at the landing root is a table folder (misspellings are named).",
        )
    ],
)
def landing_zone() -> dg.MaterializeResult:
    settings = get_settings()
    contract = load_contract()
    zone = scan_zone(settings.landing_dir, set(contract.tables))
    files = {t: [p for p in (settings.landing_dir / t).iterdir() if p.is_file()] for t in zone.table_folders}
    outcome = landing_zone_layout(settings.landing_dir, list(zone.table_folders), zone.describe())
    return dg.MaterializeResult(
        metadata={
            "landing_dir": dg.MetadataValue.path(str(settings.landing_dir)),
            "files": dg.MetadataValue.int(sum(len(v) for v in files.values())),
            "bytes": dg.MetadataValue.int(sum(p.stat().st_size for v in files.values() for p in v)),
            "files_by_table": dg.MetadataValue.json({t: len(v) for t, v in files.items()}),
            "ignored_entries": dg.MetadataValue.json(zone.describe()),
        },
        check_results=[check_result(outcome, check_name="landing_zone_layout")],
    )


raw_assets = [build_raw_asset(t) for t in load_contract().tables.values()]
